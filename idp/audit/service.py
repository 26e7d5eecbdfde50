"""Write and verify the audit chain.

Each event's hash is SHA-256 over the previous hash and the event's canonical JSON, so an edit,
insertion or deletion anywhere breaks every later link (``idp audit verify`` finds it). Writers
are serialised (a PostgreSQL advisory lock; SQLite serialises writers itself) so the chain stays
linear across nodes. Personal data never goes in ``detail``.
"""
from __future__ import annotations

import hashlib
import json

from flask import has_request_context, request
from sqlalchemy import false, or_, select, text

from ..db import db, utcnow
from .models import AuditEvent

GENESIS = "0" * 64
_LOCK_ID = 0x1D9A0D17


def _canonical(ev) -> bytes:  # an AuditEvent, or a row of its table
    body = {
        "at": ev.at.isoformat(timespec="microseconds"),
        "action": ev.action,
        "actor": ev.actor,
        "target": ev.target,
        "outcome": ev.outcome,
        "ip": ev.ip,
        "detail": ev.detail or {},
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _digest(prev_hash: str, ev) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + _canonical(ev)).hexdigest()


def record(action: str, *, actor: str, target: str | None = None, outcome: str = "success",
           detail: dict | None = None) -> AuditEvent:
    """Append an event inside the caller's transaction (committed with the change it records)."""
    session = db.session
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_ID})
    else:
        # Take SQLite's write lock before reading the previous hash (a no-op write does it).
        session.execute(text("UPDATE audit_event SET id = id WHERE id = -1"))
    prev = session.execute(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)).scalar()
    ip = request.remote_addr if has_request_context() else None
    ev = AuditEvent(at=utcnow(), action=action, actor=actor, target=target, outcome=outcome,
                    ip=ip, detail=detail or {}, prev_hash=prev or GENESIS)
    ev.hash = _digest(ev.prev_hash, ev)
    session.add(ev)
    session.flush()
    return ev


def verify_chain(progress=None, batch: int = 5000) -> tuple[int, int | None]:
    """Returns (events checked, id of the first broken event or None).

    Reads the log in batches of ``batch`` rows by id, as plain rows, so its memory stays the same
    however long the log is (a portal's grows by millions of events); ``progress(checked)`` is called
    after each batch. Events appended meanwhile are checked too (writers append in id order)."""
    prev, count = GENESIS, 0
    for ev in events(batch=batch):
        count += 1
        if ev.prev_hash != prev or _digest(prev, ev) != ev.hash:
            return count, ev.id
        prev = ev.hash
        if progress is not None and count % batch == 0:
            progress(count)
    if progress is not None and count % batch:
        progress(count)
    return count, None


def events(*, since=None, until=None, actions=(), actor: str | None = None, target: str | None = None,
           batch: int = 1000):
    """The events that match, oldest first (``idp audit list``): ``since`` <= at < ``until`` (naive
    UTC), ``actions`` each an action or a prefix ending in ``*``. Read in batches by id, so an export
    of the whole log takes the same memory as a page of it."""
    table = AuditEvent.__table__
    conditions = []
    if since is not None:
        conditions.append(table.c.at >= since)
    if until is not None:
        conditions.append(table.c.at < until)
    if actions:
        exact = [a for a in actions if not a.endswith("*")]
        prefixes = [a[:-1] for a in actions if a.endswith("*")]
        conditions.append(or_(table.c.action.in_(exact) if exact else false(),
                              *(table.c.action.startswith(p, autoescape=True) for p in prefixes)))
    if actor is not None:
        conditions.append(table.c.actor == actor)
    if target is not None:
        conditions.append(table.c.target == target)
    last = 0
    while True:
        rows = db.session.execute(select(table).where(table.c.id > last, *conditions)
                                  .order_by(table.c.id).limit(batch)).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].id
