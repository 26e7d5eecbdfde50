"""CPU per request at the WSGI entry, in-process: what our code costs without the server, the
network or the load generator.

Sets up a throwaway hub as ``bench/run.py`` does (a user with a real login, three clients), then
calls the app's WSGI callable (every middleware, the lean path included) N times per scenario on
one thread and prints process CPU time and wall time per request. Compare two commits by running
it on each; the figures are robust to other load on the machine than the served benchmark is
(process CPU time, one thread), though not immune to it.

    .venv/bin/python bench/wsgi_cpu.py --postgres
    .venv/bin/python bench/wsgi_cpu.py --postgres --scenario userinfo -n 5000
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as R  # noqa: E402 - bench/run.py: the hub, the plans, the PostgreSQL helper
from hub import Hub  # noqa: E402

SCENARIOS = ("discovery", "jwks", "client_credentials", "userinfo", "introspect")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--postgres", action="store_true", help="a throwaway PostgreSQL (default: SQLite)")
    ap.add_argument("--scenario", action="append", choices=SCENARIOS, help="repeatable; default: all")
    ap.add_argument("-n", type=int, default=3000, help="requests per scenario (after 300 unmeasured)")
    args = ap.parse_args(argv)
    pg = None
    if args.postgres:
        pg = R.load_postgres_module().PostgresServer()
        pg.start()
    hub = Hub(database_url=pg.url if pg else None, workers=1, threads=1, keep=False, log=lambda *a: None)
    try:
        hub.setup()
        hub.start()
        ours = R.Ours(hub)  # the scripted login gives a real user's tokens
        hub.stop()
        for k, v in hub.env.items():
            if k.startswith("IDP_"):
                os.environ[k] = v
        from werkzeug.test import EnvironBuilder

        from idp import create_app

        app = create_app()
        print(f"CPU per request at the WSGI entry, one thread, {hub.backend}, {args.n} requests each")
        for scenario in args.scenario or SCENARIOS:
            plan = ours.plan(scenario)
            u = urlsplit(plan.url)
            base = EnvironBuilder(path=u.path, base_url=f"{u.scheme}://{u.netloc}", method=plan.method,
                                  headers=plan.headers, data=plan.body or None).get_environ()
            body = plan.body or b""

            def one():
                env = dict(base)
                env["wsgi.input"] = io.BytesIO(body)
                status = []
                out = b"".join(app.wsgi_app(env, lambda s, h, e=None: status.append(s)))
                if not status[0].startswith("200") or (plan.expect and plan.expect not in out):
                    raise SystemExit(f"{scenario}: {status[0]} {out[:200]!r}")

            for _ in range(300):
                one()
            c0, t0 = time.process_time(), time.perf_counter()
            for _ in range(args.n):
                one()
            cpu, wall = time.process_time() - c0, time.perf_counter() - t0
            print(f"  {scenario:<20} {1e3 * cpu / args.n:7.3f} ms CPU  {1e3 * wall / args.n:7.3f} ms wall")
    finally:
        hub.stop()
        hub.cleanup()
        if pg is not None:
            pg.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
