"""Ending SSO sessions and logging out everywhere (OIDC Back-Channel and Front-Channel Logout 1.0).

Every way a session ends (RP-initiated logout, the citizen's sessions page, an operator, expiry,
an account disabled or closed, an agent's authorization or a login certificate revoked) comes
through ``end_sessions``: one transaction ends the sessions, expires their unused authorization
codes, revokes their session-bound tokens and stores one pending back-channel delivery per
participating client; the deliveries are attempted afterwards, off the request (see ``delivery.py``).
"""
from __future__ import annotations

import secrets
from urllib.parse import urlencode

from flask import current_app
from sqlalchemy import select, update

from ..audit.service import record
from ..db import db, transaction, utcnow
from ..oauth.claims import subject_for
from ..oauth.models import Client
from ..oauth.tokens import revoke_issued
from .models import LogoutDelivery, SessionClient, SsoSession


def end_sessions(sessions: list[SsoSession], *, reason: str, actor: str) -> list[str]:
    """End the live sessions given; returns the front-channel logout URLs to render (§2 of that spec)."""
    live = [s for s in sessions if s.ended_at is None]
    if not live:
        return []
    now = utcnow()
    front: list[str] = []
    with transaction():
        for s in live:
            # Claimed by a guarded UPDATE: when two processes end the same session at once (the expiry
            # sweeps of several nodes, a logout meeting an operator's), the second waits for the
            # first's row lock, then finds it ended and does nothing, so the subsites are told once.
            if not db.session.execute(update(SsoSession).where(SsoSession.id == s.id, SsoSession.ended_at.is_(None))
                                      .values(ended_at=now, end_reason=reason)).rowcount:
                continue
            # Its codes and session-bound tokens die with it; offline_access grants outlive it by design.
            revoke_issued(now, session_id=s.id, keep_offline=True)
            client_ids = db.session.execute(select(SessionClient.client_id).where(SessionClient.session_id == s.id)).scalars().all()
            clients = db.session.execute(select(Client).where(Client.client_id.in_(client_ids))).scalars().all() if client_ids else []
            queued = 0
            for c in clients:
                if c.backchannel_logout_uri:
                    db.session.add(LogoutDelivery(client_id=c.client_id, uri=c.backchannel_logout_uri, sid=s.sid,
                                                  sub=subject_for(s.person, c), jti=secrets.token_urlsafe(24), next_attempt_at=now))
                    queued += 1
                if c.frontchannel_logout_uri:
                    sep = "&" if "?" in c.frontchannel_logout_uri else "?"
                    front.append(c.frontchannel_logout_uri + sep + urlencode({"iss": current_app.config["ISSUER"], "sid": s.sid}))
            record("session.ended", actor=actor, target=f"session:{s.sid}",
                   detail={"reason": reason, "clients": len(clients), "backchannel_queued": queued})
    from .delivery import wake

    wake()
    return front


def live_sessions_of(person_id: int) -> list[SsoSession]:
    now = utcnow()
    return list(db.session.execute(select(SsoSession).where(
        SsoSession.person_id == person_id, SsoSession.ended_at.is_(None),
        SsoSession.idle_expires_at > now, SsoSession.absolute_expires_at > now).order_by(SsoSession.created_at.desc())).scalars())


def clients_of(session: SsoSession) -> list[Client]:
    ids = db.session.execute(select(SessionClient.client_id).where(SessionClient.session_id == session.id)).scalars().all()
    return list(db.session.execute(select(Client).where(Client.client_id.in_(ids))).scalars()) if ids else []


def end_expired_sessions(limit: int = 100) -> int:
    """Sessions past their idle or absolute expiry are ended (and their clients told) once."""
    now = utcnow()
    expired = list(db.session.execute(select(SsoSession).where(
        SsoSession.ended_at.is_(None),
        (SsoSession.idle_expires_at <= now) | (SsoSession.absolute_expires_at <= now)).limit(limit)).scalars())
    end_sessions(expired, reason="expired", actor="system")
    return len(expired)
