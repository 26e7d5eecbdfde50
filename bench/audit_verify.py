#!/usr/bin/env python3
"""Benchmark of ``idp audit verify`` on a long audit log: time and peak memory.

Seeds ``--events`` chained audit events (default 200,000; each with a detail like a login's) straight
into the table, hashed exactly as ``audit.service.record`` hashes them, then runs ``idp audit verify``
as its own process (wall time, CPU, peak RSS through ``os.wait4``) and checks it reports the chain
intact and every event checked.

    .venv/bin/python bench/audit_verify.py                     # SQLite
    .venv/bin/python bench/audit_verify.py --postgres --events 1000000

See bench/README.md.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from offline import run_idp, set_up_hub  # noqa: E402

CHUNK = 10_000


def seed(n: int, log) -> None:
    from sqlalchemy import select

    from idp.audit import service
    from idp.audit.models import AuditEvent
    from idp.db import db, utcnow

    prev = db.session.execute(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)).scalar() or service.GENESIS
    columns = ("at", "action", "actor", "target", "outcome", "ip", "detail", "prev_hash", "hash")
    rows = []
    for i in range(n):
        ev = AuditEvent(at=utcnow(), action="login.succeeded", actor=f"person:p{i % 5000}", target=f"person:p{i % 5000}",
                        outcome="success", ip="192.0.2.10", detail={"method": "password", "n": i}, prev_hash=prev)
        ev.hash = prev = service._digest(prev, ev)
        rows.append({c: getattr(ev, c) for c in columns})
        if len(rows) == CHUNK or i == n - 1:
            db.session.execute(AuditEvent.__table__.insert(), rows)
            db.session.commit()
            rows = []
            log(f"  seeded {i + 1:,} / {n:,} events")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--postgres", action="store_true", help="a throwaway PostgreSQL (default: SQLite)")
    ap.add_argument("--events", type=int, default=200_000)
    args = ap.parse_args()

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    with set_up_hub(args.postgres, log) as (app, env, hub):
        with app.app_context():
            t0 = time.perf_counter()
            seed(args.events, log)
            log(f"  seeding took {time.perf_counter() - t0:.1f} s")
        run = run_idp(["audit", "verify"], env)
        report = json.loads(run.stdout.strip().splitlines()[-1])
        if run.exit_code != 0 or not report["intact"] or report["events"] < args.events:
            log(f"idp audit verify did not report the chain intact: {run.stdout} {run.stderr}")
            return 1
        progress = [line for line in run.stderr.splitlines() if "events checked" in line]
        print(f"idp audit verify on {hub.backend}, {report['events']:,} events")
        print(f"  wall {run.wall:.1f} s, {report['events'] / run.wall:,.0f} events/s, CPU {run.cpu:.1f} s, "
              f"peak RSS {run.peak_rss_mib:.0f} MiB, {len(progress)} progress lines on stderr")
        return 0

if __name__ == "__main__":
    sys.exit(main())
