"""Closing an account (账号注销): the person's own decision, on ``/account/close``, or an operator's on
their written request (``idp users close``).

GB/T 35273-2020 §8.5 and the Personal Information Protection Law (art. 47) expect a person to be
able to close their account and have their personal information deleted. Closing:

- ends every session (back-channel logout to every subsite), revokes every token (``offline_access``
  grants included) and expires the unused codes;
- deletes the consents, the second factor and its recovery codes, and pending verification codes;
  ends the person's authorizations to act for businesses;
- erases the personal data on the account: name, ID number, phone, e-mail (and their blind indexes,
  so they can be registered again), the password, the identity verification; the username is freed;
- tells the person, at the phone or address it had, that the account was closed;
- keeps a tombstone: the ``sub`` (never given to anyone else, so subsites and the audit log still mean
  the same person) with status ``closed``, and the records the law requires to be kept (the audit log,
  seal applications), which name people by ``sub`` only.

Refused while the person is a business's legal representative (the business needs one: the service
desk changes it first) or an active official (their department removes the membership first).
"""
from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy import delete, select, update

from ..audit.service import record
from ..db import db, transaction, utcnow
from ..errors import Conflict
from .models import Business, Person, Representation
from .officials import active_memberships

CLOSED = "closed"


def obstacles(person: Person) -> list[str]:
    """Why the account cannot be closed now (empty if it can), as sentences for the person."""
    reasons = []
    represented = db.session.execute(select(Business.name).where(
        Business.representative_id == person.id, Business.status == "active")).scalars().all()
    if represented:
        reasons.append(_("You are the legal representative of %(businesses)s. A business needs its representative: "
                         "ask the service desk to record the new one, then close your account.",
                         businesses="、".join(represented)))
    if active_memberships(person.id):
        reasons.append(_("Your account is an official's account. Your department removes your membership "
                         "when you leave; then you can close it."))
    return reasons


def close_account(person: Person, *, actor: str) -> dict:
    """Close the account (see the module's docstring); returns what was done, for the audit and the CLI."""
    from ..authn.models import RecoveryCode, TotpCredential, VerificationCode
    from ..oauth.models import Consent
    from ..oauth.tokens import revoke_issued
    from ..sessions.logout import end_sessions, live_sessions_of

    if person.status == CLOSED:
        raise Conflict(_("This account is already closed."))
    if reasons := obstacles(person):
        raise Conflict(" ".join(reasons), code="account_not_closable")
    from . import notices

    sessions = live_sessions_of(person.id)
    contact = notices.contact_of(person)  # read before it is erased
    now = utcnow()
    with transaction():
        tokens = revoke_issued(now, person_id=person.id)
        consents = db.session.execute(delete(Consent).where(Consent.person_id == person.id)).rowcount
        for model in (TotpCredential, RecoveryCode, VerificationCode):
            db.session.execute(delete(model).where(model.person_id == person.id))
        authorizations = db.session.execute(update(Representation).where(
            Representation.person_id == person.id, Representation.status.in_(("pending", "active")))
            .values(status="revoked", revoked_at=now)).rowcount
        person.username = "~" + person.sub[:63]  # not a valid username: the real one is free again
        person.password_hash = None
        person.name = None
        person.id_number_enc = person.id_number_index = None
        person.phone_enc = person.phone_index = None
        person.email_enc = person.email_index = None
        person.phone_verified = person.email_verified = False
        person.level, person.identity_verified_at, person.identity_method = 1, None, None
        person.status = CLOSED
        done = {"tokens_revoked": tokens, "consents_deleted": consents, "authorizations_ended": authorizations,
                "sessions_ended": len(sessions)}
        record("account.closed", actor=actor, target=f"person:{person.sub}", detail=done)
    front_channel = end_sessions(sessions, reason="account_closed", actor=actor)
    if contact is not None:
        notices.send_account_closed(*contact)
    return {"sub": person.sub, "status": CLOSED, **done, "front_channel": front_channel}
