"""What happened to a person's account, told to the person (``/account/activity``): the audit events
they made or that concern them, newest first, each named in words, with when, from which address,
whether it succeeded, and the site or business it was about. Read-only: the audit log is the one
record; this only chooses and names its entries. Events a person has no use for (a session's
internal bookkeeping, the start of a two-step set-up) are left out; the data copy has them all."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select

from ..audit.models import AuditEvent
from ..db import db

LIMIT = 50

# The events shown, by action, and what the person is told each one was.
LABELS = {
    "account.created": _l("Account created"),
    "login.succeeded": _l("Signed in"),
    "login.failed": _l("Sign-in refused: wrong password"),
    "login.password_verified": _l("Password accepted, second step asked"),
    "session.stepped_up": _l("Signed in at a higher level"),
    "mfa.failed": _l("Wrong two-step code"),
    "mfa.enrolled": _l("Two-step sign-in turned on"),
    "mfa.disabled": _l("Two-step sign-in turned off"),
    "mfa.recovery_used": _l("Recovery code used"),
    "mfa.recovery_regenerated": _l("New recovery codes made"),
    "password.changed": _l("Password changed"),
    "password.change_failed": _l("Password change refused: wrong current password"),
    "password_reset.requested": _l("Password reset asked for"),
    "password.reset": _l("Password reset"),
    "identity.verified": _l("Real name verified"),
    "consent.granted": _l("Site allowed"),
    "consent.denied": _l("Site refused"),
    "consent.withdrawn": _l("Site's access withdrawn"),
    "representation.granted": _l("Agent authorized for a business"),
    "representation.confirmed": _l("Agent authorization accepted"),
    "representation.declined": _l("Agent authorization declined"),
    "representation.revoked": _l("Agent authorization revoked"),
    "representation.acting_changed": _l("Switched whom you act for"),
    "business.registered": _l("Business registered"),
    "official_login.succeeded": _l("Officials' tool signed in"),
    "seal.applied": _l("Seal applied"),
    "account.data_copied": _l("Copy of your data downloaded"),
    "account.disabled": _l("Account disabled"),
    "account.enabled": _l("Account enabled again"),
}
# The ``method`` of a ``login.succeeded`` event (``authn.service``, ``authn.certificate``).
METHODS = {"pwd": _l("password"), "pwd+totp": _l("password and two-step code"),
           "pwd+recovery_code": _l("password and recovery code"), "swk": _l("certificate")}


@dataclass(frozen=True)
class Entry:
    at: datetime
    what: object  # a lazy, translated label
    how: object | None  # the sign-in method, for sign-ins
    about: str | None  # the site or business concerned
    address: str | None
    succeeded: bool


def recent_activity(person, limit: int = LIMIT) -> list[Entry]:
    """The person's last ``limit`` shown events, newest first (found through the audit log's indexes
    on ``actor`` and ``target``)."""
    from ..oauth.models import Client
    from .models import Business

    me = f"person:{person.sub}"
    events = list(db.session.execute(
        select(AuditEvent).where(or_(AuditEvent.actor == me, AuditEvent.target == me),
                                 AuditEvent.action.in_(LABELS)).order_by(AuditEvent.id.desc()).limit(limit)).scalars())
    client_ids = {_named(e, "client") for e in events} - {None}
    businesses = ({_named(e, "business") for e in events} | {(e.detail or {}).get("business") for e in events}) - {None}
    sites = dict(db.session.execute(select(Client.client_id, Client.name).where(Client.client_id.in_(client_ids))).all()
                 ) if client_ids else {}
    names = dict(db.session.execute(select(Business.public_id, Business.name).where(Business.public_id.in_(businesses))
                                    ).all()) if businesses else {}
    entries = []
    for e in events:
        detail = e.detail or {}
        if (client_id := _named(e, "client")) is not None:
            about = sites.get(client_id)
        else:
            about = names.get(_named(e, "business") or detail.get("business"))
        how = METHODS.get(detail.get("method")) if e.action == "login.succeeded" else None
        entries.append(Entry(at=e.at, what=LABELS[e.action], how=how, about=about, address=e.ip,
                             succeeded=e.outcome not in ("failure", "refused")))
    return entries


def _named(event: AuditEvent, kind: str) -> str | None:
    """The id in the event's target ``kind:id``, if it names a ``kind``."""
    prefix = kind + ":"
    return event.target[len(prefix):] if (event.target or "").startswith(prefix) else None
