"""A copy of what the hub holds about a person (PIPL art. 45: the right to consult and copy one's
personal information), for the download on ``/account/data``: the account with its identifiers in
the clear, the sites allowed and what each may receive, the live sessions, the roles for businesses
and departments, and the audit events about the person. Read-only; the download is audited."""
from __future__ import annotations

from sqlalchemy import or_, select

from ..audit.models import AuditEvent
from ..audit.service import record
from ..db import db, transaction
from .models import Business, Person, Representation
from .officials import active_memberships
from .protection import protector


def _time(value):
    return value.isoformat(timespec="seconds") + "Z" if value is not None else None


def personal_data(person: Person) -> dict:
    from ..authn.totp import has_totp
    from ..oauth.consent import list_consents
    from ..sessions.logout import clients_of, live_sessions_of

    p = protector()
    sub = f"person:{person.sub}"
    roles = db.session.execute(
        select(Representation, Business).join(Business, Business.id == Representation.business_id)
        .where(Representation.person_id == person.id).order_by(Representation.id)).all()
    events = db.session.execute(select(AuditEvent).where(or_(AuditEvent.actor == sub, AuditEvent.target == sub))
                                .order_by(AuditEvent.id)).scalars()
    copy = {
        "account": {
            "sub": person.sub, "username": person.username, "name": person.name,
            "id_number": p.decrypt(person.id_number_enc, "id_number"),
            "phone": p.decrypt(person.phone_enc, "phone"), "phone_verified": person.phone_verified,
            "email": p.decrypt(person.email_enc, "email"), "email_verified": person.email_verified,
            "identity_level": person.level, "identity_verified_at": _time(person.identity_verified_at),
            "identity_method": person.identity_method, "two_step_verification": has_totp(person),
            "created_at": _time(person.created_at), "password_changed_at": _time(person.password_changed_at),
        },
        "sites_allowed": [{"site": c["client_name"], "may_receive": c["scopes"], "allowed_at": _time(c["granted_at"])}
                          for c in list_consents(person)],
        "signed_in": [{"since": _time(s.created_at), "last_seen": _time(s.last_seen_at), "address": s.ip,
                       "browser": s.user_agent, "sites": [c.name for c in clients_of(s)]}
                      for s in live_sessions_of(person.id)],
        "businesses": [{"business": b.name, "uscc": b.uscc, "role": r.role, "status": r.status,
                        "valid_from": _time(r.valid_from), "valid_until": _time(r.valid_until)} for r, b in roles],
        "departments": [{"department": d.name, "code": d.code, "role": o.role}
                        for o, d in active_memberships(person.id)],
        "activity": [{"at": _time(e.at), "action": e.action, "outcome": e.outcome, "address": e.ip,
                      "detail": e.detail or {}} for e in events],
    }
    with transaction():
        record("account.data_copied", actor=sub, target=sub)
    from .notices import contact_of, send_data_copied

    if contact := contact_of(person):
        send_data_copied(*contact)  # the file holds the identifiers in full: the holder should know
    return copy
