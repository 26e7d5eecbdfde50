"""Citizen accounts: create, find by any login name, check a password."""
from __future__ import annotations

import re
import secrets

from sqlalchemy import or_, select

from ..audit.service import record
from ..db import db, transaction
from ..errors import Conflict, DomainError
from .identifiers import InvalidIdentifier, normalize_id_number
from .models import Person
from .passwords import check_policy, hash_password, needs_rehash, verify_password
from .protection import protector

USERNAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{2,31}$")
PHONE_RE = re.compile(r"^1\d{10}$")
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{2,}$")


def new_subject() -> str:
    """A public, stable, non-guessable subject identifier (OIDC Core §2 ``sub``)."""
    return secrets.token_urlsafe(16)


def create_citizen(*, username: str, password: str, name: str | None = None, id_number: str | None = None,
                   phone: str | None = None, email: str | None = None, actor: str = "cli") -> Person:
    if not USERNAME_RE.match(username or ""):
        raise DomainError("the username must be 3-32 letters, digits, '.', '_' or '-', starting with a letter")
    if problem := check_policy(password or ""):
        raise DomainError(problem)
    if name is not None and not (1 <= len(name.strip()) <= 128):
        raise DomainError("the name must have 1-128 characters")
    if phone is not None and not PHONE_RE.match(phone):
        raise DomainError("the mobile phone number must be 11 digits starting with 1")
    if email is not None and not EMAIL_RE.match(email):
        raise DomainError("the email address is not valid")
    if id_number is not None:
        try:
            id_number = normalize_id_number(id_number)
        except InvalidIdentifier as exc:
            raise DomainError(f"invalid resident ID number: {exc}") from exc

    p = protector()
    person = Person(
        sub=new_subject(), username=username, password_hash=hash_password(password),
        name=name.strip() if name else None,
        id_number_enc=p.encrypt(id_number, "id_number"),
        id_number_index=p.blind_index(id_number, "id_number") if id_number else None,
        phone_enc=p.encrypt(phone, "phone"), phone_index=p.blind_index(phone, "phone") if phone else None,
        email_enc=p.encrypt(email.lower() if email else None, "email"),
        email_index=p.blind_index(email.lower(), "email") if email else None,
    )
    checks = [(Person.username == username, "the username is taken")]
    if person.id_number_index:
        checks.append((Person.id_number_index == person.id_number_index, "an account with this ID number exists"))
    if person.phone_index:
        checks.append((Person.phone_index == person.phone_index, "an account with this phone number exists"))
    with transaction():
        for cond, message in checks:
            if db.session.execute(select(Person.id).where(cond)).first():
                raise Conflict(message)
        db.session.add(person)
        db.session.flush()
        record("account.created", actor=actor, target=f"person:{person.sub}", detail={"type": "citizen"})
    return person


def find_by_login(login: str) -> Person | None:
    """Username, mobile phone or resident ID number."""
    login = (login or "").strip()
    if not login or len(login) > 64:
        return None
    p = protector()
    conds = [Person.username == login]
    if PHONE_RE.match(login):
        conds.append(Person.phone_index == p.blind_index(login, "phone"))
    try:
        conds.append(Person.id_number_index == p.blind_index(normalize_id_number(login), "id_number"))
    except InvalidIdentifier:
        pass
    return db.session.execute(select(Person).where(or_(*conds))).scalars().first()


def check_password(login: str, password: str) -> Person | None:
    """The person if the password is right and the account active; constant work either way."""
    person = find_by_login(login)
    ok = verify_password(person.password_hash if person else None, password or "")
    if not ok or person is None or not person.active:
        return None
    if needs_rehash(person.password_hash):
        person.password_hash = hash_password(password)
    return person


def disable_person(username: str, actor: str = "cli") -> dict:
    """Disable an account and end its sessions everywhere."""
    from ..sessions.logout import end_sessions, live_sessions_of

    person = db.session.execute(select(Person).where(Person.username == username)).scalars().first()
    if person is None:
        raise DomainError(f"no account {username!r}", code="not_found", status=404)
    sessions = live_sessions_of(person.id)
    with transaction():
        person.status = "disabled"
        record("account.disabled", actor=actor, target=f"person:{person.sub}")
    end_sessions(sessions, reason="account_disabled", actor=actor)
    return {"sub": person.sub, "status": "disabled", "sessions_ended": len(sessions)}


def get_by_sub(sub: str) -> Person | None:
    return db.session.execute(select(Person).where(Person.sub == sub)).scalars().first()

