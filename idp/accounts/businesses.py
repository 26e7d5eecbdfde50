"""Businesses (legal persons): registered by their legal representative, a real-name verified citizen.

The representative's own ``Representation`` row (role ``legal_representative``, active at once) is
created with the business; agents are authorized in ``representation``.
"""
from __future__ import annotations

import secrets

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..audit.service import record
from ..db import db, transaction, utcnow
from ..errors import Conflict, DomainError, NotFound
from .identifiers import InvalidIdentifier, normalize_uscc
from .models import Business, Person, Representation

VERIFIED_LEVEL = 2  # identity proofing level of a real-name verified citizen (Person.level)


def _check_name(name: str | None) -> str:
    name = " ".join((name or "").split())
    if not 1 <= len(name) <= 200:
        raise DomainError(_("the business name must have 1-200 characters"))
    return name


def find_person(username: str) -> Person | None:
    """An active account by its username (representatives and agents are named by username)."""
    username = (username or "").strip()
    if not username or len(username) > 64:
        return None
    person = db.session.execute(select(Person).where(Person.username == username)).scalars().first()
    return person if person is not None and person.active else None


def _check_representative(person: Person | None) -> None:
    """A legal representative has an active account and a real name verified at a service counter."""
    if person is None or not person.active:
        raise DomainError(_("the legal representative must have an active account"))
    if (person.level or 1) < VERIFIED_LEVEL:
        raise DomainError(_("only a citizen whose real name has been verified (at a service counter) can "
                            "register a business as its legal representative"), code="verification_required",
                          status=403)


def register_business(*, representative: Person, uscc: str, name: str, actor: str | None = None) -> Business:
    """Register a business whose legal representative is ``representative`` (GB 32100 code, unique)."""
    _check_representative(representative)
    try:
        uscc = normalize_uscc(uscc)
    except InvalidIdentifier as exc:
        raise DomainError(_("invalid unified social credit code: %(reason)s", reason=str(exc))) from exc
    name = _check_name(name)
    taken = _("a business with this unified social credit code is already registered")
    business = Business(public_id=secrets.token_urlsafe(16), uscc=uscc, name=name,
                        representative_id=representative.id)
    try:
        with transaction():
            if db.session.execute(select(Business.id).where(Business.uscc == uscc)).first():
                raise Conflict(taken)
            db.session.add(business)
            db.session.flush()
            now = utcnow()
            rep = Representation(business_id=business.id, person_id=representative.id, role="legal_representative",
                                 status="active", valid_from=now, confirmed_at=now)
            db.session.add(rep)
            db.session.flush()
            record("business.registered", actor=actor or f"person:{representative.sub}",
                   target=f"business:{business.public_id}",
                   detail={"representative": f"person:{representative.sub}", "representation": rep.id})
    except IntegrityError as exc:  # registered concurrently by another request
        raise Conflict(taken) from exc
    return business


def change_representative(business: Business, new: Person, *, actor: str) -> dict:
    """Record a new legal representative (the business registry says so; done at the service desk):
    the previous one's role ends, with the tokens and sessions acting through it (as an agent's
    revocation does); the new one, real-name verified, acts for the business at once (an agent's
    authorization of theirs, if any, ends: the new role covers it)."""
    from .representation import (AGENT, LEGAL_REPRESENTATIVE, _end_acting_sessions, end_representation,
                                 sessions_acting_through)

    _check_representative(new)
    if business.representative_id == new.id:
        raise Conflict(_("this person is already the legal representative"))
    ending = list(db.session.execute(select(Representation).where(
        Representation.business_id == business.id, Representation.status.in_(("pending", "active")),
        ((Representation.role == LEGAL_REPRESENTATIVE) & (Representation.person_id == business.representative_id))
        | ((Representation.role == AGENT) & (Representation.person_id == new.id)))).scalars())
    acting = [s for rep in ending for s in sessions_acting_through(rep.id)]
    previous = db.session.get(Person, business.representative_id)
    now = utcnow()
    with transaction():
        revoked = sum(end_representation(rep) for rep in ending)
        business.representative_id = new.id
        rep = Representation(business_id=business.id, person_id=new.id, role=LEGAL_REPRESENTATIVE, status="active",
                             valid_from=now, confirmed_at=now)
        db.session.add(rep)
        db.session.flush()
        record("business.representative_changed", actor=actor, target=f"business:{business.public_id}",
               detail={"previous": f"person:{previous.sub}" if previous else None,
                       "representative": f"person:{new.sub}", "representation": rep.id,
                       "tokens_revoked": revoked, "sessions_ended": len(acting)})
    _end_acting_sessions(acting, actor=actor)
    return {"id": business.public_id, "representative": new.username, "tokens_revoked": revoked,
            "sessions_ended": len(acting)}


def get_business(public_id: str | None) -> Business:
    if not public_id or len(public_id) > 32:
        raise NotFound(_("no such business"))
    business = db.session.execute(select(Business).where(Business.public_id == public_id)).scalars().first()
    if business is None:
        raise NotFound(_("no such business"))
    return business


def list_businesses() -> list[Business]:
    return list(db.session.execute(select(Business).order_by(Business.id)).scalars())
