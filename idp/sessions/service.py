"""Create, find, slide and end SSO sessions."""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from flask import current_app, request
from sqlalchemy import bindparam, inspect, select
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import instance_dict, set_committed_value

from ..accounts.models import Person
from ..audit.service import record
from ..db import db, transaction, unless_present, utcnow
from ..dbread import DirectRead, DirectWrite, holding, session_in_use
from .models import SessionClient, SsoSession


_BY_COOKIE = select(SsoSession).where(SsoSession.cookie_digest == bindparam("digest"))


def _columns(model, prefix: str) -> list[tuple[str, object]]:
    # The table's columns (their attributes have the same names): asking the mapper here, at import,
    # would configure every mapper before all the models are imported.
    return [(col.key, col.label(f"{prefix}{col.key}")) for col in model.__table__.c]


_SESSION_COLUMNS, _PERSON_COLUMNS = _columns(SsoSession, "s_"), _columns(Person, "p_")
# The session and its person in one read on the driver connection (``idp.dbread``): every request
# with the cookie starts here, and the ORM's load of the two cost more than the rest of a
# single sign-on /authorize. The rows become the same ORM objects the query would give.
_SESSION_WITH_PERSON = DirectRead(
    select(*(col for _, col in _SESSION_COLUMNS), *(col for _, col in _PERSON_COLUMNS))
    .join_from(SsoSession, Person, Person.id == SsoSession.person_id)
    .where(SsoSession.cookie_digest == bindparam("digest")))


def _load(digest: str) -> SsoSession | None:
    """The session with this cookie digest and its person, as persistent ORM objects of this request's
    session: built from one direct read when the session holds no connection and neither object yet
    (else the ORM's own query, which knows what it already holds)."""
    orm = db.session()
    if not session_in_use():
        row = _SESSION_WITH_PERSON.first(db.engine, {"digest": digest}, held=holding())
        if row is None:
            return None
        keys = (orm.identity_key(SsoSession, row.s_id), orm.identity_key(Person, row.p_id))
        if not any(key in orm.identity_map for key in keys):
            sso = _detached(SsoSession, _SESSION_COLUMNS, row)
            set_committed_value(sso, "person", _detached(Person, _PERSON_COLUMNS, row))
            orm.add(sso)  # both persistent, as if loaded: attribute changes flush as UPDATEs
            return sso
    return orm.execute(_BY_COOKIE, {"digest": digest}).scalars().first()


def _detached(model, columns, row):
    # As the ORM's own loading does: the values into the new instance's dict, then committed as
    # loaded, all at once (``make_transient_to_detached``); one ``set_committed_value`` per column
    # cost as much as the read.
    obj = inspect(model).class_manager.new_instance()
    instance_dict(obj).update((key, getattr(row, col.key)) for key, col in columns)
    make_transient_to_detached(obj)
    return obj


def _digest(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


def start_session(person: Person, *, acr: str, amr: list[str], replaces: SsoSession | None = None,
                  certificate_fingerprint: str | None = None, login: dict | None = None) -> tuple[SsoSession, str]:
    """A new session with a new identifier at every login (no fixation); returns it and the cookie value.

    ``login``: the detail of the ``login.succeeded`` event, recorded in the same transaction as the
    session, so a crash or a database outage never leaves a login recorded without its session.
    """
    cfg = current_app.config
    now = utcnow()
    cookie = secrets.token_urlsafe(32)
    s = SsoSession(
        sid=secrets.token_urlsafe(16), cookie_digest=_digest(cookie), person_id=person.id,
        auth_time=now, acr=acr, amr=amr, created_at=now, last_seen_at=now,
        idle_expires_at=now + timedelta(seconds=cfg["SESSION_IDLE_TTL"]),
        absolute_expires_at=now + timedelta(seconds=cfg["SESSION_ABSOLUTE_TTL"]),
        ip=request.remote_addr, user_agent=(request.user_agent.string or "")[:256],
        certificate_fingerprint=certificate_fingerprint,
    )
    with transaction():
        if login is not None:
            record("login.succeeded", actor=f"person:{person.sub}", target=f"person:{person.sub}", detail=login)
        if replaces is not None and replaces.ended_at is None:
            replaces.ended_at, replaces.end_reason = now, "replaced"
            record("session.ended", actor=f"person:{person.sub}", target=f"session:{replaces.sid}", detail={"reason": "replaced"})
        db.session.add(s)
        db.session.flush()
        record("session.started", actor=f"person:{person.sub}", target=f"session:{s.sid}", detail={"acr": acr, "amr": amr})
    return s, cookie


def raise_session(s: SsoSession, *, acr: str, amr: list[str], certificate_fingerprint: str | None = None,
                  login: dict | None = None) -> str:
    """Step-up: the same session, re-authenticated now at a higher assurance; returns the new cookie value.

    ``sid`` stays (subsites' ID tokens and logout tokens still match it); the cookie value changes, so
    a copy of the old one taken before the step-up does not carry the higher assurance. ``login``: as
    for ``start_session``, the ``login.succeeded`` detail, recorded in the same transaction.
    """
    cookie = secrets.token_urlsafe(32)
    now = utcnow()
    with transaction():
        if login is not None:
            record("login.succeeded", actor=f"person:{s.person.sub}", target=f"person:{s.person.sub}", detail=login)
        s.cookie_digest, s.acr, s.amr, s.auth_time = _digest(cookie), acr, amr, now
        if certificate_fingerprint:
            s.certificate_fingerprint = certificate_fingerprint
        s.last_seen_at = now
        s.idle_expires_at = min(now + timedelta(seconds=current_app.config["SESSION_IDLE_TTL"]), s.absolute_expires_at)
        record("session.stepped_up", actor=f"person:{s.person.sub}", target=f"session:{s.sid}", detail={"acr": acr, "amr": amr})
    return cookie


def find_session(cookie: str | None) -> SsoSession | None:
    """The live session for a cookie, slid forward; None if missing, ended or expired."""
    if not cookie or len(cookie) > 128:
        return None
    s = _load(_digest(cookie))
    if s is None or s.ended_at is not None or not s.person.active:
        return None
    now = utcnow()
    if now >= s.idle_expires_at or now >= s.absolute_expires_at:
        return None
    # Slide the idle expiry, but write at most once a minute.
    if (now - s.last_seen_at).total_seconds() >= 60:
        with transaction():
            s.last_seen_at = now
            s.idle_expires_at = min(now + timedelta(seconds=current_app.config["SESSION_IDLE_TTL"]), s.absolute_expires_at)
    return s


def note_client_insert(dialect: str):
    """The INSERT behind ``note_client``, for a statement that makes it part of another write."""
    return unless_present(SessionClient.__table__, ["session_id", "client_id"], dialect)


_NOTE_CLIENT = DirectWrite(note_client_insert)


def note_client(session_id: int, client_id: str) -> tuple:
    """The write that remembers ``client_id`` took part in the session, for ``dbread.write_together``
    with what the client gets (its code).

    INSERT ... ON CONFLICT DO NOTHING: two tabs authorizing the same client at once must not collide.
    """
    return _NOTE_CLIENT, {"session_id": session_id, "client_id": client_id, "first_at": utcnow()}, False
