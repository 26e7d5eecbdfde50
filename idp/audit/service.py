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
from sqlalchemy import select, text

from ..db import db, utcnow
from .models import AuditEvent

GENESIS = "0" * 64
_LOCK_ID = 0x1D9A0D17


def _canonical(ev: AuditEvent) -> bytes:
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


def _digest(prev_hash: str, ev: AuditEvent) -> str:
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


def verify_chain() -> tuple[int, int | None]:
    """Returns (events checked, id of the first broken event or None)."""
    prev = GENESIS
    count = 0
    for ev in db.session.execute(select(AuditEvent).order_by(AuditEvent.id)).scalars():
        count += 1
        if ev.prev_hash != prev or _digest(prev, ev) != ev.hash:
            return count, ev.id
        prev = ev.hash
    return count, None
