"""Deleting what has expired and can no longer matter (``idp prune``), so the tables a portal writes
on every sign-on stay the size of what is live.

Each rule names the rows that are dead for good, ``keep`` after they stopped mattering (a margin
for investigations: the audit log keeps the events themselves, and is never pruned):

- authorization codes past their expiry: a replayed code is still recognised (and what it issued
  revoked, RFC 6749 §4.1.2) for ``keep`` after its two minutes;
- tokens whose whole refresh family is past every expiry, so a rotated refresh token presented
  again still revokes its family while any member lives (RFC 9700 §4.14.2);
- SSO sessions ended before the cutoff (expired sessions are ended, and their subsites told, by the
  delivery worker first) that no live token names: a refresh token checks its session is still
  there, and a deleted session would read as none;
- back-channel logout deliveries delivered before the cutoff (failed ones wait for ``idp logout
  retry``);
- pushed authorization requests (RFC 9126) past their expiry, used or not;
- verification codes past their expiry, used assertion ``jti``s past theirs (replay caches), and
  login throttling counters whose window has passed and that lock nothing.

Rows go in batches, each its own transaction walking the primary key once, so a large first run
neither holds long locks nor rescans what it already passed; several nodes may run it at once
(deleting a row twice deletes it once). One audit event records the counts.

The servers run it themselves every ``IDP_PRUNE_INTERVAL`` seconds (``PruneWorker``, a thread in
each server process): one process at a time across the nodes (a PostgreSQL advisory lock), and only
when the audit log's last ``data.pruned`` event is older than the interval, so a cluster prunes once
per interval however many processes it runs.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import Flask, current_app
from sqlalchemy import and_, delete, exists, func, or_, select, text

from ..audit.models import AuditEvent
from ..audit.service import record
from ..authn.models import LoginThrottle, VerificationCode
from ..authn.throttle import longest_window
from ..db import db, utcnow
from ..oauth.models import AuthorizationCode, PushedRequest, Token, UsedAssertion
from ..sessions.models import LogoutDelivery, SsoSession


@dataclass(frozen=True)
class Rule:
    name: str
    table: object
    key: object  # the primary key column the batches walk
    dead: Callable[[datetime, datetime], object]  # (now, cutoff) -> WHERE clause


def _expired(token, cutoff: datetime):
    return and_(token.c.access_expires_at < cutoff,
                or_(token.c.refresh_expires_at.is_(None), token.c.refresh_expires_at < cutoff))


def _token_dead(token, cutoff: datetime):
    """Expired, and so is every member of its refresh family."""
    member = Token.__table__.alias("member")
    return and_(_expired(token, cutoff), ~exists().where(member.c.family == token.c.family, ~_expired(member, cutoff)))


def _dead_sessions(now: datetime, cutoff: datetime):
    s, token = SsoSession.__table__, Token.__table__.alias("named")
    return and_(s.c.ended_at.is_not(None), s.c.ended_at < cutoff,
                ~exists().where(token.c.session_id == s.c.id, ~_token_dead(token, cutoff)))


def _idle_counters(now: datetime, cutoff: datetime):
    c = LoginThrottle.__table__.c
    return and_(c.window_start < now - timedelta(seconds=longest_window()),
                or_(c.locked_until.is_(None), c.locked_until < now))


# In this order: tokens before the codes and sessions they name (deleting a code or a session sets
# the ``code_id``/``session_id`` of the rows that name it to NULL: an UPDATE per row left), codes
# before the sessions they name.
RULES = (
    Rule("tokens", Token.__table__, Token.__table__.c.id, lambda now, cutoff: _token_dead(Token.__table__, cutoff)),
    Rule("authorization_codes", AuthorizationCode.__table__, AuthorizationCode.__table__.c.id,
         lambda now, cutoff: AuthorizationCode.__table__.c.expires_at < cutoff),
    Rule("sso_sessions", SsoSession.__table__, SsoSession.__table__.c.id, _dead_sessions),
    Rule("pushed_requests", PushedRequest.__table__, PushedRequest.__table__.c.id,
         lambda now, cutoff: PushedRequest.__table__.c.expires_at < cutoff),
    Rule("logout_deliveries", LogoutDelivery.__table__, LogoutDelivery.__table__.c.id,
         lambda now, cutoff: and_(LogoutDelivery.__table__.c.status == "delivered",
                                  LogoutDelivery.__table__.c.delivered_at < cutoff)),
    Rule("verification_codes", VerificationCode.__table__, VerificationCode.__table__.c.id,
         lambda now, cutoff: VerificationCode.__table__.c.expires_at < cutoff),
    Rule("used_assertions", UsedAssertion.__table__, UsedAssertion.__table__.c.id,
         lambda now, cutoff: UsedAssertion.__table__.c.expires_at < now),
    Rule("login_throttle", LoginThrottle.__table__, LoginThrottle.__table__.c.key, _idle_counters),
)


def prune(keep: timedelta, *, batch: int = 1000, dry_run: bool = False, actor: str = "cli",
          progress: Callable[[str, int], None] = lambda name, n: None) -> dict[str, int]:
    """Delete (or, with ``dry_run``, count) the dead rows of every rule; returns the counts by rule.
    ``progress(rule, rows so far)`` after each batch."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    now = utcnow()
    cutoff = now - keep
    counts: dict[str, int] = {}
    for rule in RULES:
        where = rule.dead(now, cutoff)
        if dry_run:
            counts[rule.name] = db.session.execute(select(func.count()).select_from(rule.table).where(where)).scalar()
            db.session.rollback()
            continue
        counts[rule.name] = done = 0
        after = None
        while True:
            page = select(rule.key).where(where).order_by(rule.key).limit(batch)
            if after is not None:
                page = page.where(rule.key > after)
            keys = db.session.execute(page).scalars().all()
            if not keys:
                break
            # Deleted by key, the condition checked again: a row that came alive since is kept.
            done += db.session.execute(delete(rule.table).where(rule.key.in_(keys), where)).rowcount
            db.session.commit()
            counts[rule.name], after = done, keys[-1]
            progress(rule.name, done)
            if len(keys) < batch:
                break
    if not dry_run:
        record("data.pruned", actor=actor, detail={"keep_hours": keep.total_seconds() / 3600, **counts})
        db.session.commit()
    return counts


log = logging.getLogger(__name__)
_LOCK_ID = 0x1D9A0D18  # PostgreSQL advisory lock: one automatic prune at a time across the nodes


@contextmanager
def _one_at_a_time() -> Iterator[bool]:
    """True if this process may prune now: on PostgreSQL, it holds the advisory lock (taken without
    waiting, held on a connection of its own for the whole prune, released after); elsewhere always."""
    if db.engine.dialect.name != "postgresql":
        yield True
        return
    with db.engine.connect() as conn:
        held = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _LOCK_ID}).scalar())
        conn.commit()
        try:
            yield held
        finally:
            if held:
                try:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_ID})
                    conn.commit()
                except Exception:  # the database went away: closing the connection releases the lock
                    conn.invalidate()
                    raise


def prune_if_due() -> dict[str, int] | None:
    """The automatic prune (``IDP_PRUNE_INTERVAL``, ``IDP_PRUNE_KEEP_HOURS``): runs ``prune`` unless
    automatic prunes are off, another process is pruning, or a prune ran within the interval (the
    last ``data.pruned`` event says when: ``idp prune`` counts too). Returns the counts, or None."""
    cfg = current_app.config
    interval = int(cfg["PRUNE_INTERVAL"])
    if interval <= 0:
        return None
    with _one_at_a_time() as mine:
        if not mine:
            return None
        last = db.session.execute(select(func.max(AuditEvent.at)).where(AuditEvent.action == "data.pruned")).scalar()
        db.session.rollback()
        if last is not None and utcnow() - last < timedelta(seconds=interval):
            return None
        counts = prune(timedelta(hours=int(cfg["PRUNE_KEEP_HOURS"])), actor="system")
        log.info("pruned expired rows: %s", ", ".join(f"{k} {v}" for k, v in counts.items()))
        return counts


class PruneWorker(threading.Thread):
    """One per server process: tries ``prune_if_due`` every ``IDP_PRUNE_INTERVAL`` seconds, the first
    time one interval after it starts (not all at once when a cluster boots). Its own thread, so a
    long first prune delays no logout delivery."""

    def __init__(self, app: Flask):
        super().__init__(name="idp-prune", daemon=True)
        self.app = app
        self.stopping = threading.Event()

    def run(self) -> None:
        interval = int(self.app.config["PRUNE_INTERVAL"])
        while not self.stopping.wait(interval):
            try:
                with self.app.app_context():
                    prune_if_due()
            except Exception:  # a database outage: try again next interval
                log.exception("automatic prune failed")

    def stop(self) -> None:
        self.stopping.set()
