"""Departments of the city and their officials (staff memberships of citizens' accounts)."""
from __future__ import annotations

import re

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..audit.service import record
from ..db import db, transaction, utcnow
from ..errors import Conflict, DomainError, NotFound
from .businesses import find_person
from .models import Department, Official, Person

CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
ROLE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
DEFAULT_ROLE = "staff"


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


def remove_official(*, username: str, department: str, actor: str = "cli") -> Official:
    dept = get_department(department)
    person = find_person(username)
    row = None
    if person is not None:
        row = db.session.execute(select(Official).where(Official.person_id == person.id,
                                                        Official.department_id == dept.id,
                                                        Official.status == "active")).scalars().first()
    if row is None:
        raise NotFound(_("%(username)s is not an official of %(code)s", username=username, code=dept.code))
    with transaction():
        row.status, row.ended_at = "ended", utcnow()
        record("official.removed", actor=actor, target=f"person:{person.sub}", detail={"department": dept.code})
    return row


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
