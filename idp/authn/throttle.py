"""Password guessing limits, shared by every node (rows in the database, not process memory).

Two counters per attempt: the login name typed (stored as a keyed hash, and counted whether or not
the account exists, so a lockout reveals nothing) and the client address. Too many failures within
the window lock that name or address for a while; a success clears the name's counter.
"""
from __future__ import annotations

from datetime import timedelta

from flask import current_app, request
from sqlalchemy import select, update

from ..accounts.protection import protector
from ..audit.service import record
from ..db import db, insert_unless_present, transaction, utcnow
from ..errors import DomainError
from .models import LoginThrottle


def keys_for(login: str) -> dict[str, int]:
    """Throttle keys of this attempt, each with its failure limit."""
    cfg = current_app.config
    name = protector().blind_index((login or "").strip().lower(), "login-throttle")
    return {f"name:{name}": cfg["LOGIN_MAX_FAILURES"], f"ip:{request.remote_addr}": cfg["LOGIN_IP_MAX_FAILURES"]}


def check(keys: dict[str, int]) -> None:
    """Refuse (429) while any key is locked."""
    now = utcnow()
    until = db.session.execute(select(LoginThrottle.locked_until).where(
        LoginThrottle.key.in_(list(keys)), LoginThrottle.locked_until > now)).scalars().all()
    if until:
        minutes = max(1, int((max(until) - now).total_seconds() // 60) + 1)
        raise DomainError(f"尝试次数过多，请 {minutes} 分钟后再试 / Too many failed attempts; try again in {minutes} "
                          f"minute{'s' if minutes > 1 else ''}.", code="too_many_attempts", status=429)


def record_failure(keys: dict[str, int]) -> None:
    """Count a failure on each key (caller's transaction); lock a key that reached its limit."""
    cfg = current_app.config
    now = utcnow()
    window_start = now - timedelta(seconds=cfg["LOGIN_WINDOW_SECONDS"])
    for key, limit in keys.items():
        insert_unless_present(LoginThrottle, {"key": key, "failures": 0, "window_start": now}, ["key"])
        # A window that has passed starts again; then count atomically (concurrent nodes add up).
        db.session.execute(update(LoginThrottle).where(LoginThrottle.key == key, LoginThrottle.window_start < window_start)
                           .values(failures=0, window_start=now))
        db.session.execute(update(LoginThrottle).where(LoginThrottle.key == key)
                           .values(failures=LoginThrottle.failures + 1))
        row = db.session.get(LoginThrottle, key, populate_existing=True)
        if row.failures >= limit and (row.locked_until is None or row.locked_until <= now):
            row.locked_until = now + timedelta(seconds=cfg["LOGIN_LOCK_SECONDS"])
            row.failures, row.window_start = 0, now
            record("login.throttled", actor="system", outcome="locked",
                   detail={"kind": key.split(":", 1)[0], "seconds": cfg["LOGIN_LOCK_SECONDS"]})


def clear_name(keys: dict[str, int]) -> None:
    with transaction():
        for key in keys:
            if key.startswith("name:"):
                db.session.execute(LoginThrottle.__table__.delete().where(LoginThrottle.key == key))
