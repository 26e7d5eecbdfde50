"""Reliable back-channel logout delivery (OIDC Back-Channel Logout 1.0 §2.5, §2.8).

Deliveries are rows written with the logout itself. Any worker on any node claims a due row with
an atomic UPDATE (a lease, ``locked_until``), POSTs the logout token, and records the outcome;
timeouts and non-2xx answers are retried with exponential backoff; a row whose lease expired
(its worker died mid-delivery) is claimed again. After the last attempt the row is ``failed``,
audited, and listed by ``idp logout deliveries --status failed``.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import timedelta

import requests
from flask import Flask, current_app
from sqlalchemy import or_, select, update

from ..audit.service import record
from ..db import db, transaction, utcnow
from ..keystore.jwt import sign_jwt
from ..ops.metrics import record_logout_delivery
from .models import LogoutDelivery

log = logging.getLogger(__name__)
EVENT = "http://schemas.openid.net/event/backchannel-logout"
_wakeup = threading.Event()


def logout_token(d: LogoutDelivery, alg: str) -> str:
    """§2.4: iss, aud, iat, exp, jti, events, sid, sub; explicitly typed; never a nonce."""
    now = int(time.time())
    claims = {"iss": current_app.config["ISSUER"], "aud": d.client_id, "iat": now, "exp": now + 120,
              "jti": d.jti, "events": {EVENT: {}}, "sid": d.sid, "sub": d.sub}
    return sign_jwt({"typ": "logout+jwt"}, claims, alg)


def _due_ids(limit: int) -> list[int]:
    now = utcnow()
    return list(db.session.execute(select(LogoutDelivery.id).where(
        LogoutDelivery.status == "pending", LogoutDelivery.next_attempt_at <= now,
        or_(LogoutDelivery.locked_until.is_(None), LogoutDelivery.locked_until < now))
        .order_by(LogoutDelivery.id).limit(limit)).scalars())


def _claim(delivery_id: int) -> LogoutDelivery | None:
    now = utcnow()
    with transaction():
        res = db.session.execute(update(LogoutDelivery).where(
            LogoutDelivery.id == delivery_id, LogoutDelivery.status == "pending",
            or_(LogoutDelivery.locked_until.is_(None), LogoutDelivery.locked_until < now))
            .values(locked_until=now + timedelta(seconds=current_app.config["LOGOUT_LEASE"]),
                    attempts=LogoutDelivery.attempts + 1))
    if res.rowcount != 1:
        return None
    return db.session.get(LogoutDelivery, delivery_id)


def _post(uri: str, token: str, timeout: float) -> str | None:
    """None on success (any 2xx), else a short reason. Never follows redirects (§2.5)."""
    try:
        r = requests.post(uri, data={"logout_token": token}, timeout=(min(3.0, timeout), timeout),
                          allow_redirects=False, headers={"Cache-Control": "no-cache"})
    except requests.Timeout:
        return "timeout"
    except requests.RequestException as exc:
        return f"connection error: {type(exc).__name__}"
    return None if 200 <= r.status_code < 300 else f"HTTP {r.status_code}"


def _record(d: LogoutDelivery, error: str | None) -> None:
    cfg = current_app.config
    now = utcnow()
    with transaction():
        d.locked_until = None
        if error is None:
            d.status, d.delivered_at, d.last_error = "delivered", now, None
        else:
            d.last_error = error[:255]
            if d.attempts >= cfg["LOGOUT_MAX_ATTEMPTS"]:
                d.status = "failed"
                record("logout.delivery_failed", actor="system", target=f"client:{d.client_id}", outcome="failure",
                       detail={"sid": d.sid, "attempts": d.attempts, "error": d.last_error})
            else:
                d.next_attempt_at = now + timedelta(seconds=min(cfg["LOGOUT_RETRY_BASE"] * 2 ** (d.attempts - 1),
                                                                300))
    record_logout_delivery("retry" if d.status == "pending" else d.status)


def deliver_due(limit: int = 50) -> int:
    """Attempt every due delivery once, several at a time; returns how many were attempted."""
    from ..oauth.models import Client

    app = current_app._get_current_object()
    claimed = [d for d in (_claim(i) for i in _due_ids(limit)) if d is not None]
    if not claimed:
        return 0
    jobs = []
    for d in claimed:
        client = db.session.execute(select(Client).where(Client.client_id == d.client_id)).scalars().first()
        alg = client.id_token_signed_response_alg if client else "RS256"
        jobs.append((d, logout_token(d, alg)))
    timeout = float(app.config["LOGOUT_TIMEOUT"])
    with ThreadPoolExecutor(max_workers=min(16, len(jobs))) as pool:
        futures = {pool.submit(_post, d.uri, token, timeout): d for d, token in jobs}
        # Record each outcome as soon as it is known: a slow subsite must not hold back the
        # record of the others (a crash then re-sends only what was not acknowledged).
        for fut in as_completed(futures):
            _record(futures[fut], fut.result())
    return len(jobs)


def wake() -> None:
    """Ask this process's worker to run now (the logout response does not wait for it)."""
    _wakeup.set()


class DeliveryWorker(threading.Thread):
    """One per process: delivers due logout tokens and ends expired sessions, every second or on wake()."""

    def __init__(self, app: Flask):
        super().__init__(name="idp-logout-delivery", daemon=True)
        self.app = app
        self.stopping = threading.Event()

    def run(self) -> None:
        from .logout import end_expired_sessions

        last_sweep = 0.0
        while not self.stopping.is_set():
            _wakeup.wait(self.app.config["LOGOUT_POLL_INTERVAL"])
            _wakeup.clear()
            try:
                with self.app.app_context():
                    if (self.app.config["LOGOUT_ON_EXPIRY"]
                            and time.monotonic() - last_sweep >= self.app.config["EXPIRY_SWEEP_INTERVAL"]):
                        last_sweep = time.monotonic()
                        end_expired_sessions()
                    while deliver_due():
                        pass
            except Exception:  # keep the worker alive through database outages; it retries next tick
                log.exception("logout delivery pass failed")

    def stop(self) -> None:
        self.stopping.set()
        _wakeup.set()


def list_deliveries(status: str | None = None, limit: int = 200) -> list[LogoutDelivery]:
    q = select(LogoutDelivery).order_by(LogoutDelivery.id.desc()).limit(limit)
    if status:
        q = q.where(LogoutDelivery.status == status)
    return list(db.session.execute(q).scalars())


def retry_failed(delivery_id: int | None = None, actor: str = "cli") -> int:
    """Put failed deliveries back in the queue (after the subsite is fixed)."""
    q = update(LogoutDelivery).where(LogoutDelivery.status == "failed")
    if delivery_id is not None:
        q = q.where(LogoutDelivery.id == delivery_id)
    with transaction():
        n = db.session.execute(q.values(status="pending", attempts=0, next_attempt_at=utcnow(), locked_until=None)).rowcount
        record("logout.delivery_requeued", actor=actor, detail={"count": n, "id": delivery_id})
    wake()
    return n


def describe(d: LogoutDelivery) -> dict:
    return {"id": d.id, "client_id": d.client_id, "uri": d.uri, "sid": d.sid, "status": d.status,
            "attempts": d.attempts, "last_error": d.last_error, "created_at": d.created_at,
            "delivered_at": d.delivered_at, "next_attempt_at": None if d.status != "pending" else d.next_attempt_at}
