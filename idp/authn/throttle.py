"""Guessing and abuse limits, shared by every node (rows in the database, not process memory).

An attempt is counted under two keys: the account it aims at and the client address. Keys are
stored as keyed hashes (HMAC-SHA-256 under the data key), never as the name, number or address, and
an account key is counted whether or not the account exists, so a limit reveals nothing.

| scope    | account key (hash of)                       | address key | counts                         |
|----------|---------------------------------------------|-------------|--------------------------------|
| `login`  | `name`: the login name typed                | `ip`        | failed passwords (and factors) |
| `code`   | `code`: the destination or identifier typed | `code-ip`   | one-time codes requested       |
| `verify` | `verify`: the destination of the code       | `verify-ip` | wrong one-time codes           |

An account key slows down, then locks: after ``THROTTLE_DELAY_AFTER`` failures each further attempt
must wait 2^n seconds (n = failures so far; 8 s, 16 s, …) and at its limit the key is locked for the
lock time (``login.throttled`` etc. in the audit log). Address keys only lock, at a higher limit: many
people share one address (an office, a service counter, a carrier's NAT), and three typos there must
not slow everyone down. A refused attempt is told when it may try again (Beijing time).
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

from flask import current_app, request
from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy import delete, select, update

from ..accounts.protection import protector
from ..audit.service import record
from ..db import db, insert_unless_present, transaction, utcnow
from ..errors import DomainError
from .models import LoginThrottle

# scope: ((account kind, limit setting), (address kind, limit setting))
SCOPES = {
    "login": (("name", "LOGIN_MAX_FAILURES"), ("ip", "LOGIN_IP_MAX_FAILURES")),
    "code": (("code", "CODE_MAX_REQUESTS"), ("code-ip", "CODE_IP_MAX_REQUESTS")),
    "verify": (("verify", "VERIFY_MAX_FAILURES"), ("verify-ip", "VERIFY_IP_MAX_FAILURES")),
}
_SCOPE_OF = {kind: scope for scope, kinds in SCOPES.items() for kind, _setting in kinds}
ADDRESS_KINDS = frozenset(kinds[1][0] for kinds in SCOPES.values())
BEIJING = timezone(timedelta(hours=8), "CST")  # China has one time zone and no daylight saving


class Throttled(DomainError):
    """Refused for now; ``until`` is when the attempt may be made again (naive UTC)."""

    code = "too_many_attempts"
    status = 429

    def __init__(self, message: str, until: datetime):
        super().__init__(message)
        self.until = until


def _kind(key: str) -> str:
    return key.split(":", 1)[0]


def _scope(key: str) -> str:
    return _SCOPE_OF.get(_kind(key), "login")  # keys of other parts (e.g. a second factor) count as login


def _times(kind: str) -> tuple[int, int]:
    """(window, lock) seconds of a kind of key."""
    cfg = current_app.config
    if _SCOPE_OF.get(kind) == "code":
        return cfg["CODE_WINDOW_SECONDS"], cfg["CODE_LOCK_SECONDS"]
    return cfg["LOGIN_WINDOW_SECONDS"], cfg["LOGIN_LOCK_SECONDS"]


def longest_window() -> int:
    """Seconds after which any counter's window has passed (a failure then starts a new one)."""
    return max(_times(kind)[0] for kind in (*_SCOPE_OF, "login"))


def _digest(kind: str, value: str) -> str:
    field = "login-throttle" if kind == "name" else f"throttle-{kind}"
    return protector().blind_index(value, field)


def keys_for_scope(scope: str, subject: str) -> dict[str, int]:
    """Throttle keys of one attempt in ``scope`` aimed at ``subject``, each with its limit."""
    cfg = current_app.config
    (account, account_limit), (address, address_limit) = SCOPES[scope]
    return {f"{account}:{_digest(account, (subject or '').strip().lower())}": cfg[account_limit],
            f"{address}:{_digest(address, request.remote_addr or '')}": cfg[address_limit]}


def keys_for(login: str) -> dict[str, int]:
    """Throttle keys of a login attempt (the login name typed, and the address), each with its limit."""
    return keys_for_scope("login", login)


def beijing_time(moment: datetime) -> str:
    """A naive UTC time as people here read it: 14:05:09, with the date when it is not today."""
    local = moment.replace(tzinfo=timezone.utc).astimezone(BEIJING)
    today = datetime.now(BEIJING).date()
    return local.strftime("%H:%M:%S" if local.date() == today else "%Y-%m-%d %H:%M:%S")


def refusal(scope: str, until: datetime, now: datetime | None = None) -> str:
    """The message for a refused attempt: what happened and the time it may be tried again."""
    wait = max(1, math.ceil((until - (now or utcnow())).total_seconds()))
    if wait < 120:
        span = ngettext("%(num)d second", "%(num)d seconds", wait)
    else:
        span = ngettext("%(num)d minute", "%(num)d minutes", math.ceil(wait / 60))
    if scope == "code":
        return _("Too many codes were requested. You can request another one at %(time)s Beijing time "
                 "(in %(wait)s).", time=beijing_time(until), wait=span)
    return _("Too many failed attempts. You can try again at %(time)s Beijing time (in %(wait)s).",
             time=beijing_time(until), wait=span)


def check(keys: dict[str, int]) -> None:
    """Refuse (429, ``Throttled``) while any key is delayed or locked, saying until when."""
    now = utcnow()
    rows = db.session.execute(select(LoginThrottle.key, LoginThrottle.locked_until).where(
        LoginThrottle.key.in_(list(keys)), LoginThrottle.locked_until > now)).all()
    if rows:
        key, until = max(rows, key=lambda r: r.locked_until)
        raise Throttled(refusal(_scope(key), until, now), until)


def record_failure(keys: dict[str, int]) -> None:
    """Count one failure (or, for ``code``, one request) on each key, in the caller's transaction;
    delay or lock a key that reached its threshold."""
    now = utcnow()
    delay_after = current_app.config["THROTTLE_DELAY_AFTER"]
    for key, limit in keys.items():
        kind = _kind(key)
        window, lock = _times(kind)
        insert_unless_present(LoginThrottle, {"key": key, "failures": 0, "window_start": now}, ["key"])
        # A window that has passed starts again; then count atomically (concurrent nodes add up).
        db.session.execute(update(LoginThrottle).where(LoginThrottle.key == key,
                                                       LoginThrottle.window_start < now - timedelta(seconds=window))
                           .values(failures=0, window_start=now))
        db.session.execute(update(LoginThrottle).where(LoginThrottle.key == key)
                           .values(failures=LoginThrottle.failures + 1))
        row = db.session.get(LoginThrottle, key, populate_existing=True)
        scope = _scope(key)
        if row.failures >= limit:
            row.locked_until = now + timedelta(seconds=lock)
            row.failures, row.window_start = 0, now
            record(f"{scope}.throttled", actor="system", outcome="locked", detail={"kind": kind, "seconds": lock})
        elif kind not in ADDRESS_KINDS and delay_after and row.failures >= delay_after:
            wait = min(2 ** row.failures, lock)
            row.locked_until = max(row.locked_until or now, now + timedelta(seconds=wait))
            record(f"{scope}.delayed", actor="system", outcome="delayed", detail={"kind": kind, "seconds": wait})


def clear_name(keys: dict[str, int]) -> None:
    """After a success: forget the failures of the login name (never of the address)."""
    with transaction():
        for key in keys:
            if key.startswith("name:"):
                db.session.execute(delete(LoginThrottle).where(LoginThrottle.key == key))


def clear_accounts(keys: dict[str, int]) -> None:
    """Forget the account keys of ``keys`` (the caller's transaction); address keys stay."""
    for key in keys:
        if _kind(key) not in ADDRESS_KINDS:
            db.session.execute(delete(LoginThrottle).where(LoginThrottle.key == key))


def clear_logins(*logins: str | None) -> None:
    """Forget login failures under each of these login names (caller's transaction), e.g. after a reset."""
    for login in logins:
        if login:
            key = f"name:{_digest('name', login.strip().lower())}"
            db.session.execute(delete(LoginThrottle).where(LoginThrottle.key == key))
