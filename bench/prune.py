#!/usr/bin/env python3
"""Benchmark of ``idp prune``: how long the first run takes on a backlog, and its peak memory.

Seeds ``--sign-ons`` finished sign-ons (default 100,000), each as the hub stores them: an SSO session
ended three days ago with its client list, an expired code, a refresh family of two expired token rows
(a rotated one and its successor) and a delivered logout notice; a tenth of the families have a
live member, so their rows and their sessions must stay. Then runs ``idp prune`` as its own process
(wall time, CPU, peak RSS through ``os.wait4``) and checks what is left.

    .venv/bin/python bench/prune.py                     # SQLite
    .venv/bin/python bench/prune.py --postgres          # a throwaway PostgreSQL
    .venv/bin/python bench/prune.py --postgres --sign-ons 1000000 --batch 5000

See bench/README.md.
"""
from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from offline import run_idp, set_up_hub  # noqa: E402

CHUNK = 5000


def seed(n: int, log) -> dict:
    from idp.accounts.service import create_citizen
    from idp.db import db, utcnow
    from idp.oauth.models import AuthorizationCode, Token
    from idp.sessions.models import LogoutDelivery, SessionClient, SsoSession

    person = create_citizen(username="prune-bench", password="correct horse battery")
    now = utcnow()
    old, ended = now - timedelta(days=2), now - timedelta(days=3)
    live_families = 0
    for start in range(0, n, CHUNK):
        count = min(CHUNK, n - start)
        sessions = [{"sid": secrets.token_urlsafe(12), "cookie_digest": secrets.token_hex(32), "person_id": person.id,
                     "auth_time": ended, "acr": "urn:idp:loa:1", "amr": ["pwd"], "created_at": ended,
                     "last_seen_at": ended, "idle_expires_at": ended, "absolute_expires_at": ended,
                     "ended_at": ended, "end_reason": "logout"} for _ in range(count)]
        ids = db.session.execute(SsoSession.__table__.insert().returning(SsoSession.__table__.c.id), sessions).scalars().all()
        db.session.execute(SessionClient.__table__.insert(),
                           [{"session_id": i, "client_id": "bench", "first_at": ended} for i in ids])
        db.session.execute(AuthorizationCode.__table__.insert(), [
            {"code_digest": secrets.token_hex(32), "client_id": "bench", "person_id": person.id, "session_id": i,
             "redirect_uri": "https://rp.example/cb", "scope": "openid", "auth_time": ended, "acr": "urn:idp:loa:1",
             "amr": ["pwd"], "created_at": ended, "expires_at": ended} for i in ids])
        tokens = []
        for k, i in enumerate(ids):
            family, live = secrets.token_hex(16), (start + k) % 10 == 0
            live_families += live
            for rotated in (True, False):
                tokens.append({
                    "client_id": "bench", "person_id": person.id, "session_id": i, "family": family,
                    "grant_type": "authorization_code", "scope": "openid", "access_digest": secrets.token_hex(32),
                    "jti": secrets.token_hex(8), "access_expires_at": old, "refresh_digest": secrets.token_hex(32),
                    "refresh_expires_at": now + timedelta(days=1) if live and not rotated else old,
                    "rotated_at": old if rotated else None, "offline": False, "amr": ["pwd"], "issued_at": ended})
        db.session.execute(Token.__table__.insert(), tokens)
        db.session.execute(LogoutDelivery.__table__.insert(), [
            {"client_id": "bench", "uri": "https://rp.example/logout", "sid": "s", "sub": "u", "jti": secrets.token_hex(16),
             "status": "delivered", "attempts": 1, "next_attempt_at": ended, "created_at": ended, "delivered_at": ended}
            for _ in ids])
        db.session.commit()
        log(f"  seeded {start + count:,} / {n:,} sign-ons")
    return {"sessions": n, "live_families": live_families}


def counts() -> dict:
    from sqlalchemy import func, select

    from idp.db import db
    from idp.oauth.models import AuthorizationCode, Token
    from idp.sessions.models import LogoutDelivery, SessionClient, SsoSession

    db.session.remove()
    return {m.__tablename__: db.session.execute(select(func.count()).select_from(m)).scalar()
            for m in (SsoSession, SessionClient, AuthorizationCode, Token, LogoutDelivery)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--postgres", action="store_true", help="a throwaway PostgreSQL (default: SQLite)")
    ap.add_argument("--sign-ons", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=1000, help="idp prune --batch")
    args = ap.parse_args()

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    with set_up_hub(args.postgres, log) as (app, env, hub):
        with app.app_context():
            t0 = time.perf_counter()
            seeded = seed(args.sign_ons, log)
            log(f"  seeding took {time.perf_counter() - t0:.1f} s")
            before = counts()
        run = run_idp(["prune", "--batch", str(args.batch)], env)
        if run.exit_code != 0:
            log(f"idp prune failed: {run.stdout} {run.stderr[-2000:]}")
            return 1
        deleted = json.loads(run.stdout.strip().splitlines()[-1])["deleted"]
        with app.app_context():
            after = counts()
        rows = sum(deleted.values()) + before["session_client"] - after["session_client"]  # cascaded
        print(f"idp prune on {hub.backend}, {args.sign_ons:,} finished sign-ons, --batch {args.batch}")
        print(f"  deleted {json.dumps(deleted)} (+ {before['session_client'] - after['session_client']:,} "
              f"session_client rows by cascade)")
        print(f"  left {json.dumps(after)}; live families {seeded['live_families']:,}")
        print(f"  wall {run.wall:.1f} s, {rows / run.wall:,.0f} rows/s, CPU {run.cpu:.1f} s, "
              f"peak RSS {run.peak_rss_mib:.0f} MiB")
        ok = (after["token"] == 2 * seeded["live_families"] and after["sso_session"] == seeded["live_families"]
              and after["authorization_code"] == 0 and after["logout_delivery"] == 0)
        print("  check: " + ("what lives was kept, the rest deleted" if ok else "UNEXPECTED rows left"))
        return 0 if ok else 1

if __name__ == "__main__":
    sys.exit(main())
