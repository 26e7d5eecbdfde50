"""Departments of the city and their officials (staff memberships of citizens' accounts)."""
from __future__ import annotations

import re

from flask_babel import gettext as _
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from ..audit.service import record
from ..db import db, transaction, utcnow
from ..errors import Conflict, DomainError, NotFound
from .businesses import find_person
from .models import Department, Official, Person

CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
ROLE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
DEFAULT_ROLE = "staff"
OFFICIAL_SCOPE = "official"  # the scope that releases the ``official`` claim


def create_department(*, code: str, name: str, actor: str = "cli") -> Department:
    code = (code or "").strip()
    name = " ".join((name or "").split())
    if not CODE_RE.match(code):
        raise DomainError(_("a department code has 1-32 letters, digits, '.', '_' or '-', starting with a letter or digit"))
    if not 1 <= len(name) <= 128:
        raise DomainError(_("the department name must have 1-128 characters"))
    taken = _("a department with the code %(code)s exists", code=code)
    dept = Department(code=code, name=name)
    try:
        with transaction():
            if db.session.execute(select(Department.id).where(Department.code == code)).first():
                raise Conflict(taken)
            db.session.add(dept)
            db.session.flush()
            record("department.created", actor=actor, target=f"department:{code}")
    except IntegrityError as exc:
        raise Conflict(taken) from exc
    return dept


def get_department(code: str) -> Department:
    dept = db.session.execute(select(Department).where(Department.code == (code or "").strip())).scalars().first()
    if dept is None:
        raise NotFound(_("no department with the code %(code)s", code=code))
    return dept


def list_departments() -> list[Department]:
    return list(db.session.execute(select(Department).order_by(Department.code)).scalars())


def add_official(*, username: str, department: str, role: str | None = None, actor: str = "cli") -> Official:
    """Make the account ``username`` an official of ``department`` (again, if the membership had ended)."""
    role = (role or DEFAULT_ROLE).strip()
    if not ROLE_RE.match(role):
        raise DomainError(_("a role has 1-32 letters, digits, '_' or '-', starting with a letter"))
    dept = get_department(department)
    if dept.status != "active":
        raise DomainError(_("the department %(code)s is not active", code=dept.code))
    person = find_person(username)
    if person is None:
        raise NotFound(_("there is no active account with the username %(username)s", username=username))
    with transaction():
        row = db.session.execute(select(Official).where(Official.person_id == person.id,
                                                        Official.department_id == dept.id)).scalars().first()
        if row is not None and row.status == "active":
            raise Conflict(_("%(username)s is already an official of %(code)s", username=username, code=dept.code))
        if row is None:
            row = Official(person_id=person.id, department_id=dept.id)
            db.session.add(row)
        row.role, row.status, row.ended_at, row.created_at = role, "active", None, utcnow()
        db.session.flush()
        record("official.added", actor=actor, target=f"person:{person.sub}",
               detail={"department": dept.code, "role": role})
    return row


def remove_official(*, username: str, department: str, actor: str = "cli") -> dict:
    """End a staff membership, and what it opened (``_end_memberships``). Returns how many sessions
    and tokens."""
    dept = get_department(department)
    person = find_person(username)
    row = None
    if person is not None:
        row = db.session.execute(select(Official).where(Official.person_id == person.id,
                                                        Official.department_id == dept.id,
                                                        Official.status == "active")).scalars().first()
    if row is None:
        raise NotFound(_("%(username)s is not an official of %(code)s", username=username, code=dept.code))
    ended = _end_memberships([(row, person)], dept, actor=actor)
    if ended is None:  # a removal racing this one got there first
        raise NotFound(_("%(username)s is not an official of %(code)s", username=username, code=dept.code))
    return ended


def close_department(code: str, *, actor: str = "cli") -> dict:
    """Close a department (merged or dissolved): it leaves the ``official`` claim, and every staff
    membership in it ends as ``remove_official`` ends one. Refused while it has an active seal: a
    closed department's seal must not look usable, so it is revoked (``idp seals revoke``, reason
    ``cessationOfOperation``) or suspended first. Returns the counts."""
    from ..seals.models import Seal

    dept = get_department(code)
    if dept.status != "active":
        raise Conflict(_("the department %(code)s is already closed", code=dept.code))
    seals = db.session.execute(select(Seal.id).where(Seal.department_id == dept.id, Seal.status == "active")).scalars().all()
    if seals:
        raise Conflict(_("the department %(code)s still has active seals (%(ids)s): revoke or suspend them first "
                         "(idp seals revoke ID --reason cessationOfOperation)",
                         code=dept.code, ids=", ".join(str(i) for i in seals)))
    rows = [tuple(r) for r in db.session.execute(
        select(Official, Person).join(Person, Person.id == Official.person_id)
        .where(Official.department_id == dept.id, Official.status == "active")).all()]
    with transaction():
        if not db.session.execute(update(Department).where(Department.id == dept.id, Department.status == "active")
                                  .values(status="closed")).rowcount:
            raise Conflict(_("the department %(code)s is already closed", code=dept.code))
        record("department.closed", actor=actor, target=f"department:{dept.code}", detail={"officials": len(rows)})
    ended = _end_memberships(rows, dept, actor=actor) or {"sessions_ended": 0, "tokens_revoked": 0}
    return {"code": dept.code, "status": "closed", "officials_removed": len(rows), **ended}


def _end_memberships(rows: list[tuple[Official, Person]], dept: Department, *, actor: str) -> dict | None:
    """End these memberships (one audit event each) and what they opened: the people's sessions that
    hold the role (``_sessions_holding_the_role``; their subsites get a back-channel logout), and what
    was issued bound to the keys of the certificates issued for them (the officials' tool's tokens).
    The certificates stay: they map to no official while the membership is ended (``pki.validation``)
    and serve again if it is renewed. Each membership is claimed by a guarded UPDATE; None if none
    was still active (a racing removal got there first)."""
    from ..pki.models import Certificate
    from ..pki.service import revoke_tokens_bound_to
    from ..sessions.logout import end_sessions

    sessions: dict[int, object] = {}
    for row, person in rows:
        for s in _sessions_holding_the_role(person.id, row.id):
            sessions[s.id] = s
    claimed, tokens = 0, 0
    with transaction():
        for row, person in rows:
            if not db.session.execute(update(Official).where(Official.id == row.id, Official.status == "active")
                                      .values(status="ended", ended_at=utcnow())).rowcount:
                continue
            claimed += 1
            certificates = db.session.execute(select(Certificate).where(Certificate.official_id == row.id)).scalars()
            revoked = sum(revoke_tokens_bound_to(c) for c in certificates)
            tokens += revoked
            ended_here = [s for s in sessions.values() if s.person_id == person.id]
            record("official.removed", actor=actor, target=f"person:{person.sub}",
                   detail={"department": dept.code, "sessions_ended": len(ended_here), "tokens_revoked": revoked})
    if rows and not claimed:
        return None
    end_sessions(list(sessions.values()), reason="official_removed", actor=actor)
    return {"sessions_ended": len(sessions), "tokens_revoked": tokens}


def _sessions_holding_the_role(person_id: int, official_id: int) -> list:
    """The person's live sessions in which the membership counts: signed in with a certificate that is
    not one issued for another membership (those of this one, and an external CA's mapped by its
    subject, which maps only a person with a single membership), or in which a subsite received the
    ``official`` claim (it holds the claim from its sign-in and would otherwise go on treating the
    person as the department's official)."""
    from ..oauth.models import Token
    from ..pki.models import Certificate
    from ..sessions.logout import live_sessions_of

    sessions = live_sessions_of(person_id)
    if not sessions:
        return []
    others = set(db.session.execute(select(Certificate.fingerprint).where(
        Certificate.official_id.isnot(None), Certificate.official_id != official_id)).scalars())
    ids = [s.id for s in sessions]
    scopes = db.session.execute(select(Token.session_id, Token.scope).where(
        Token.session_id.in_(ids), Token.scope.contains(OFFICIAL_SCOPE))).all()
    claimed = {sid for sid, scope in scopes if OFFICIAL_SCOPE in scope.split()}
    return [s for s in sessions
            if (s.certificate_fingerprint and s.certificate_fingerprint not in others) or s.id in claimed]


def list_officials(department: str | None = None) -> list[tuple[Official, Person, Department]]:
    q = (select(Official, Person, Department).join(Person, Person.id == Official.person_id)
         .join(Department, Department.id == Official.department_id).where(Official.status == "active"))
    if department:
        q = q.where(Department.id == get_department(department).id)
    return [tuple(r) for r in db.session.execute(q.order_by(Department.code, Person.username)).all()]


def active_memberships(person_id: int, department: str | None = None) -> list[tuple[Official, Department]]:
    """The person's active memberships in active departments (the one rule for "is an official"),
    optionally only in the department with code ``department``."""
    q = (select(Official, Department).join(Department, Department.id == Official.department_id)
         .where(Official.person_id == person_id, Official.status == "active", Department.status == "active"))
    if department:
        q = q.where(Department.code == department.strip())
    return [tuple(r) for r in db.session.execute(q.order_by(Department.code)).all()]


def official_claim(person: Person) -> list[dict]:
    """The ``official`` claim: the person's active memberships in active departments."""
    return [{"department": d.code, "department_name": d.name, "role": o.role}
            for o, d in active_memberships(person.id)]
