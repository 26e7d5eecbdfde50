"""CPU per request at the WSGI entry, in-process: what our code costs without the server, the
network or the load generator.

Sets up a throwaway hub as ``bench/run.py`` does (a user with a real login, three clients), then
calls the app's WSGI callable (every middleware, the lean path included) N times per scenario on
one thread and prints process CPU time and wall time per request. Compare two commits by running
it on each; the figures are robust to other load on the machine than the served benchmark is
(process CPU time, one thread), though not immune to it.

    .venv/bin/python bench/wsgi_cpu.py --postgres
    .venv/bin/python bench/wsgi_cpu.py --postgres --scenario userinfo -n 5000
    .venv/bin/python bench/wsgi_cpu.py --postgres --scenario sso_round_trip -n 1000

``sso_round_trip`` is the second subsite's sign-in: GET /authorize with the hub's session cookie
(302 with a code) then the code exchange at /token (ID token, access and refresh token); its two
halves are printed apart.

``--batches`` (one scenario) is the mode ``bench/ab.py`` drives: after the warm-up it prints
``ready``, then for each number N read from stdin runs N more requests and prints one JSON line
with the CPU milliseconds per request (and per half of the SSO round trip).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as R  # noqa: E402 - bench/run.py: the hub, the plans, the PostgreSQL helper
from hub import Hub  # noqa: E402

SCENARIOS = ("discovery", "jwks", "client_credentials", "userinfo", "introspect", "sso_round_trip")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--postgres", action="store_true", help="a throwaway PostgreSQL (default: SQLite)")
    ap.add_argument("--scenario", action="append", choices=SCENARIOS, help="repeatable; default: all")
    ap.add_argument("-n", type=int, default=3000, help="requests per scenario (after 300 unmeasured)")
    ap.add_argument("--batches", action="store_true",
                    help="one scenario, batch sizes read from stdin, one JSON line per batch (bench/ab.py)")
    args = ap.parse_args(argv)
    if args.batches and len(args.scenario or ()) != 1:
        ap.error("--batches takes exactly one --scenario")
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
        from idp import create_app

        app = create_app()
        if args.batches:
            return _batches(runner(app, hub, ours, args.scenario[0]))
        print(f"CPU per request at the WSGI entry, one thread, {hub.backend}, {args.n} requests each")
        for scenario in args.scenario or SCENARIOS:
            one, parts = runner(app, hub, ours, scenario)
            for i in range(100 if parts else 300):  # unmeasured
                one(i)
            parts.update(dict.fromkeys(parts, 0.0))
            c0, t0 = time.process_time(), time.perf_counter()
            for i in range(args.n):
                one(i)
            cpu, wall = time.process_time() - c0, time.perf_counter() - t0
            split = ", ".join(f"{k} {1e3 * v / args.n:.2f}" for k, v in parts.items())
            print(f"  {scenario:<20} {1e3 * cpu / args.n:7.3f} ms CPU  {1e3 * wall / args.n:7.3f} ms wall"
                  + (f"  ({split} ms CPU)" if split else ""))
    finally:
        hub.stop()
        hub.cleanup()
        if pg is not None:
            pg.close()
    return 0


def _batches(run) -> int:
    one, parts = run
    for i in range(100 if parts else 300):  # unmeasured
        one(i)
    print("ready", flush=True)
    done = 0
    for line in sys.stdin:
        n = int(line)
        parts.update(dict.fromkeys(parts, 0.0))
        c0 = time.process_time()
        for i in range(done, done + n):
            one(i)
        cpu = time.process_time() - c0
        done += n
        print(json.dumps({"cpu_ms": 1e3 * cpu / n, **{k: 1e3 * v / n for k, v in parts.items()}}), flush=True)
    return 0


def runner(app, hub, ours, scenario: str):
    """``(one, parts)``: ``one(i)`` makes the scenario's i-th request through the app's WSGI callable
    and checks its answer; ``parts`` collects CPU seconds per half for a round trip (else empty)."""
    if scenario == "sso_round_trip":
        return _sso_round_trip(app, hub, ours)
    from werkzeug.test import EnvironBuilder

    plan = ours.plan(scenario)
    u = urlsplit(plan.url)
    base = EnvironBuilder(path=u.path, base_url=f"{u.scheme}://{u.netloc}", method=plan.method,
                          headers=plan.headers, data=plan.body or None).get_environ()
    body = plan.body or b""

    def one(_i):
        env = dict(base)
        env["wsgi.input"] = io.BytesIO(body)
        status = []
        out = b"".join(app.wsgi_app(env, lambda s, h, e=None: status.append(s)))
        if not status[0].startswith("200") or (plan.expect and plan.expect not in out):
            raise SystemExit(f"{scenario}: {status[0]} {out[:200]!r}")

    return one, {}


def _sso_round_trip(app, hub, ours):
    from urllib.parse import parse_qs, urlencode

    from werkzeug.test import EnvironBuilder

    u = urlsplit(hub.issuer)
    base_url, client = f"{u.scheme}://{u.netloc}", hub.sso_client

    def call(method, path, query, headers, body=b""):
        env = EnvironBuilder(path=path, query_string=query, base_url=base_url, method=method, headers=headers,
                             data=body or None).get_environ()
        status, headers = [], []
        out = b"".join(app.wsgi_app(env, lambda s, h, e=None: (status.append(s), headers.append(h))))
        return status[0], dict(headers[0]), out

    spent = {"authorize": 0.0, "token": 0.0}

    def one(i):
        verifier, challenge = ours.pairs[i % len(ours.pairs)]
        query = urlencode({"response_type": "code", "client_id": client["client_id"], "redirect_uri": hub.sso_redirect,
                           "scope": "openid profile email", "state": f"s{i}", "code_challenge": challenge,
                           "code_challenge_method": "S256"})
        c0 = time.process_time()
        status, headers, out = call("GET", "/authorize", query, {"Cookie": ours.cookie, "Accept": "text/html"})
        c1 = time.process_time()
        if not status.startswith("302") or "code=" not in headers.get("Location", ""):
            raise SystemExit(f"sso_round_trip /authorize: {status} {out[:200]!r}")
        code = parse_qs(urlsplit(headers["Location"]).query)["code"][0]
        body = urlencode({"grant_type": "authorization_code", "code": code, "redirect_uri": hub.sso_redirect,
                          "code_verifier": verifier}).encode()
        c2 = time.process_time()
        status, _, out = call("POST", "/token", None, ours.form_headers(ours.sso_auth), body)
        c3 = time.process_time()
        if not status.startswith("200") or b"id_token" not in out:
            raise SystemExit(f"sso_round_trip /token: {status} {out[:200]!r}")
        spent["authorize"] += c1 - c0
        spent["token"] += c3 - c2

    return one, spent


if __name__ == "__main__":
    sys.exit(main())
