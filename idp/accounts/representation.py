"""Acting for a business: the legal representative authorizes agents (经办人) for a period, the agent
confirms (or declines), the representative revokes; a signed-in person chooses whom they act for.

A representation is usable only while it is active, inside its validity period, and its business
and person are active; every use re-checks this (``usable``), so a revoked or expired authorization
stops at once, even in sessions that chose it earlier and in tokens that carry it. Revoking also ends
the agent's sessions acting for the business (so every subsite is told, by back-channel logout) and
revokes the tokens obtained while acting for it.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from flask_babel import gettext as _
from sqlalchemy import or_, select, update

from ..audit.service import record
from ..db import db, transaction, utcnow
from ..errors import Conflict, DomainError, NotFound
from .businesses import find_person
from .models import Business, Person, Representation

LEGAL_REPRESENTATIVE, AGENT = "legal_representative", "agent"
# Validity dates are calendar days in China (UTC+8, no daylight saving); times are stored in UTC.
CHINA = timezone(timedelta(hours=8))


def start_of_day(day: date) -> datetime:
    """The first instant of ``day`` in China, as naive UTC (how times are stored)."""
    return datetime.combine(day, time(), CHINA).astimezone(timezone.utc).replace(tzinfo=None)


def end_of_day(day: date) -> datetime:
    """The instant ``day`` ends in China (an authorization "until" a date includes that day)."""
    return start_of_day(day + timedelta(days=1))


def first_day(dt: datetime | None) -> date | None:
    """The day in China that a stored (UTC) start falls on."""
    return (dt + timedelta(hours=8)).date() if dt else None


def last_day(dt: datetime | None) -> date | None:
    """The last day in China covered by a stored (UTC, exclusive) end."""
    return (dt + timedelta(hours=8) - timedelta(microseconds=1)).date() if dt else None


def usable(rep: Representation | None, business: Business | None, person: Person | None,
           now: datetime | None = None) -> bool:
    now = now or utcnow()
    return (rep is not None and business is not None and person is not None
            and rep.status == "active" and business.status == "active" and person.active
            and rep.person_id == person.id and rep.business_id == business.id
            and rep.valid_from <= now and (rep.valid_until is None or now < rep.valid_until))


def state(rep: Representation, now: datetime | None = None) -> str:
    """For display: pending, active, not_yet_valid, expired, declined or revoked."""
    now = now or utcnow()
    if rep.status in ("pending", "active") and rep.valid_until is not None and now >= rep.valid_until:
        return "expired"
    if rep.status == "active" and now < rep.valid_from:
        return "not_yet_valid"
    return rep.status


def _not_past_end():
    return or_(Representation.valid_until.is_(None), Representation.valid_until > utcnow())


def _live():
    """Representations that are not over: pending or active, and not past their end."""
    return Representation.status.in_(("pending", "active")), _not_past_end()


def usable_representations(person: Person) -> list[tuple[Representation, Business]]:
    """Whom ``person`` may act for now, legal representative roles first."""
    now = utcnow()
    rows = db.session.execute(
        select(Representation, Business).join(Business, Business.id == Representation.business_id)
        .where(Representation.person_id == person.id, Representation.status == "active",
               Representation.valid_from <= now, _not_past_end(), Business.status == "active")
        .order_by(Representation.role.desc(), Business.name)).all()
    return [(r, b) for r, b in rows if usable(r, b, person, now)]


def represented_by(person: Person) -> list[tuple[Representation, Business]]:
    """The confirmed roles of ``person`` (including expired or not yet valid ones), newest first."""
    rows = db.session.execute(
        select(Representation, Business).join(Business, Business.id == Representation.business_id)
        .where(Representation.person_id == person.id, Representation.status == "active")
        .order_by(Representation.id.desc())).all()
    return [(r, b) for r, b in rows]


def pending_for(person: Person) -> list[tuple[Representation, Business]]:
    """Agent authorizations waiting for ``person`` to confirm or decline."""
    rows = db.session.execute(
        select(Representation, Business).join(Business, Business.id == Representation.business_id)
        .where(Representation.person_id == person.id, Representation.role == AGENT,
               Representation.status == "pending", Business.status == "active", _not_past_end())
        .order_by(Representation.id)).all()
    return [(r, b) for r, b in rows]


def agents_of(business: Business) -> list[tuple[Representation, Person]]:
    rows = db.session.execute(
        select(Representation, Person).join(Person, Person.id == Representation.person_id)
        .where(Representation.business_id == business.id, Representation.role == AGENT)
        .order_by(Representation.id.desc())).all()
    return [(r, p) for r, p in rows]


def is_legal_representative(person: Person, business: Business) -> bool:
    rep = db.session.execute(select(Representation).where(
        Representation.business_id == business.id, Representation.person_id == person.id,
        Representation.role == LEGAL_REPRESENTATIVE)).scalars().first()
    return usable(rep, business, person)


def authorize_agent(*, business: Business, username: str, valid_from: datetime | None = None,
                    valid_until: datetime | None = None, by: Person | None, actor: str | None = None) -> Representation:
    """Authorize the account ``username`` as an agent of ``business``; pending until the agent confirms.

    ``by`` is the legal representative acting on their own page; None for an operator (CLI).
    """
    if by is not None and not is_legal_representative(by, business):
        raise DomainError(_("only the legal representative of a business can authorize its agents"),
                          code="forbidden", status=403)
    if business.status != "active":
        raise DomainError(_("this business is not active"))
    agent = find_person(username)
    if agent is None:
        raise DomainError(_("there is no active account with the username %(username)s", username=username),
                          code="not_found", status=404)
    if agent.id == business.representative_id:
        raise DomainError(_("the legal representative already acts for the business"))
    now = utcnow()
    valid_from = valid_from or now
    if valid_until is not None and (valid_until <= valid_from or valid_until <= now):
        raise DomainError(_("the end of the authorization must be after its start and in the future"))
    with transaction():
        # Serialise grants for one business (PostgreSQL row lock) so two requests cannot both pass the check.
        db.session.execute(select(Business.id).where(Business.id == business.id).with_for_update())
        existing = db.session.execute(select(Representation.id).where(
            Representation.business_id == business.id, Representation.person_id == agent.id, *_live())).first()
        if existing:
            raise Conflict(_("this person is already an agent of the business, or has an authorization to confirm"))
        rep = Representation(business_id=business.id, person_id=agent.id, role=AGENT, status="pending",
                             granted_by_id=by.id if by else None, valid_from=valid_from, valid_until=valid_until)
        db.session.add(rep)
        db.session.flush()
        record("representation.granted", actor=actor or f"person:{by.sub}", target=f"representation:{rep.id}",
               detail={"business": business.public_id, "agent": f"person:{agent.sub}", "role": AGENT,
                       "valid_from": valid_from.isoformat(timespec="seconds"),
                       "valid_until": valid_until.isoformat(timespec="seconds") if valid_until else None})
    return rep


def _own_pending(rep_id: int, person: Person) -> tuple[Representation, Business]:
    row = db.session.execute(
        select(Representation, Business).join(Business, Business.id == Representation.business_id)
        .where(Representation.id == rep_id, Representation.person_id == person.id,
               Representation.role == AGENT)).first()
    if row is None:
        raise NotFound(_("no such authorization"))
    rep, business = row
    if rep.status != "pending":
        raise Conflict(_("this authorization is no longer waiting for an answer"))
    return rep, business


def confirm(rep_id: int, person: Person) -> Representation:
    """The agent accepts: pending → active."""
    rep, business = _own_pending(rep_id, person)
    if state(rep) == "expired":
        raise DomainError(_("this authorization has expired; ask the legal representative for a new one"))
    if business.status != "active":
        raise DomainError(_("this business is not active"))
    with transaction():
        rep.status, rep.confirmed_at = "active", utcnow()
        record("representation.confirmed", actor=f"person:{person.sub}", target=f"representation:{rep.id}",
               detail={"business": business.public_id})
    return rep


def decline(rep_id: int, person: Person) -> Representation:
    """The agent refuses: pending → declined."""
    rep, business = _own_pending(rep_id, person)
    with transaction():
        rep.status = "declined"
        record("representation.declined", actor=f"person:{person.sub}", target=f"representation:{rep.id}",
               detail={"business": business.public_id})
    return rep


def revoke(rep_id: int, by: Person) -> Representation:
    """The legal representative withdraws an agent's authorization (pending or active)."""
    row = db.session.execute(
        select(Representation, Business).join(Business, Business.id == Representation.business_id)
        .where(Representation.id == rep_id, Representation.role == AGENT)).first()
    if row is None or not is_legal_representative(by, row[1]):
        raise NotFound(_("no such authorization"))
    rep, business = row
    if rep.status not in ("pending", "active"):
        raise Conflict(_("this authorization has already ended"))
    acting = sessions_acting_through(rep.id)
    with transaction():
        revoked = end_representation(rep)
        record("representation.revoked", actor=f"person:{by.sub}", target=f"representation:{rep.id}",
               detail={"business": business.public_id, "tokens_revoked": revoked, "sessions_ended": len(acting)})
    _end_acting_sessions(acting, actor=f"person:{by.sub}")
    return rep


def sessions_acting_through(rep_id: int) -> list:
    """The live SSO sessions acting for a business through this representation."""
    from ..sessions.models import SsoSession

    return list(db.session.execute(select(SsoSession).where(
        SsoSession.acting_representation_id == rep_id, SsoSession.ended_at.is_(None))).scalars())


def end_representation(rep: Representation) -> int:
    """End a representation (caller's transaction): revoked, the codes issued while acting through
    it expired and the tokens obtained so revoked, ``offline_access`` grants included (they outlive
    sessions). Returns how many tokens. Its sessions are ended after the commit (``_end_acting_sessions``).

    Claimed by a guarded UPDATE: if another request ended it meanwhile (a second click, another
    tab), this one raises ``Conflict`` and its transaction writes nothing, so it is audited once."""
    from ..oauth.tokens import revoke_issued

    now = utcnow()
    if not db.session.execute(update(Representation).where(
            Representation.id == rep.id, Representation.status.in_(("pending", "active")))
            .values(status="revoked", revoked_at=now)).rowcount:
        raise Conflict(_("this authorization has already ended"))
    # The codes too: one issued while acting through it and redeemed between this commit and the
    # sessions' end would otherwise give an ``offline_access`` token that outlives both.
    return revoke_issued(now, representation_id=rep.id)


def _end_acting_sessions(sessions: list, *, actor: str) -> None:
    """Those sessions end, which logs the person out of every subsite (back-channel logout): a subsite
    holds the ``org`` claim from its sign-in and would otherwise go on acting for the business until
    its own session ends."""
    from ..sessions.logout import end_sessions

    end_sessions(sessions, reason="representation_revoked", actor=actor)


# --- acting for a business in an SSO session --------------------------------------------------------

def acting_representation(sso) -> tuple[Representation, Business] | None:
    """The business the session acts for, if that representation is still usable."""
    if sso is None or sso.acting_representation_id is None:
        return None
    return _usable_by_id(sso.acting_representation_id, sso.person)


def _usable_by_id(rep_id: int | None, person: Person) -> tuple[Representation, Business] | None:
    if rep_id is None or person is None:
        return None
    row = db.session.execute(
        select(Representation, Business).join(Business, Business.id == Representation.business_id)
        .where(Representation.id == rep_id)).first()
    if row is None or not usable(row[0], row[1], person):
        return None
    return row[0], row[1]


def act_as(sso, business_id: str | None) -> Representation | None:
    """Make the session act for the business ``business_id`` (its public id), or for the person
    themself when None. Audited as ``representation.acting_changed`` when it changes."""
    person = sso.person
    chosen = None
    if business_id:
        chosen = next((r for r, b in usable_representations(person) if b.public_id == business_id), None)
        if chosen is None:
            raise DomainError(_("you cannot act for this business"), code="forbidden", status=403)
    new_id = chosen.id if chosen else None
    if sso.acting_representation_id == new_id:
        return chosen
    with transaction():
        sso.acting_representation_id = new_id
        record("representation.acting_changed", actor=f"person:{person.sub}", target=f"session:{sso.sid}",
               detail={"business": business_id if chosen else None, "role": chosen.role if chosen else None})
    return chosen


def org_claim(representation_id: int | None, person: Person) -> dict | None:
    """The ``org`` claim: the business acted for and the person's role, if still usable."""
    found = _usable_by_id(representation_id, person)
    if found is None:
        return None
    rep, business = found
    return {"id": business.public_id, "name": business.name, "uscc": business.uscc, "role": rep.role}
