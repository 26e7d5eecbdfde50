"""Citizen accounts: create, find by any login name, check a password."""
from __future__ import annotations

import re
import secrets
import unicodedata
from typing import Callable

from flask_babel import gettext as _
from sqlalchemy import or_, select

from ..audit.service import record
from ..db import db, transaction, utcnow
from ..errors import DomainError, NotFound
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


class InvalidInput(DomainError):
    """A refused value of one input: ``field`` names it, so a form can show the message beside it."""

    def __init__(self, field: str, message: str, *, code: str = "invalid_input", status: int = 400):
        super().__init__(message, code=code, status=status)
        self.field = field


# GB 11643 reasons (idp/accounts/identifiers.py) as translatable messages; an unknown one is shown as is.
_ID_REASONS = [
    (re.compile(r"a resident ID number has 18 characters, this one has (\d+)"),
     lambda m: _("a resident ID number has 18 characters, this one has %(n)s", n=m[1])),
    (re.compile(r"a resident ID number is 17 digits followed by a digit or X"),
     lambda m: _("a resident ID number is 17 digits followed by a digit or X")),
    (re.compile(r"the date of birth (\d+) is not a valid date"),
     lambda m: _("the date of birth %(date)s is not a valid date", date=m[1])),
    (re.compile(r"the date of birth (\d+) is not plausible"),
     lambda m: _("the date of birth %(date)s is not plausible", date=m[1])),
    (re.compile(r"the check character should be (\S+), not (\S+)"),
     lambda m: _("the check character should be %(expected)s, not %(actual)s", expected=m[1], actual=m[2])),
]


def explain_id_number(exc: InvalidIdentifier) -> str:
    reason = str(exc)
    for pattern, message in _ID_REASONS:
        if m := pattern.fullmatch(reason):
            reason = message(m)
            break
    return _("Invalid resident ID number: %(reason)s.", reason=reason)


def normalize_phone(value: str | None) -> str | None:
    """11 digits, without spaces, dashes or a +86 prefix; full-width digits accepted (NFKC)."""
    if value is None:
        return None
    v = re.sub(r"[\s-]", "", unicodedata.normalize("NFKC", value))
    if len(v) == 14 and v.startswith("+86"):
        v = v[3:]
    return v


def check_identity(*, username: str, name: str | None = None, id_number: str | None = None,
                   phone: str | None = None, email: str | None = None) -> dict:
    """Who a new citizen account is, normalized; raises ``InvalidInput`` for the first wrong value.

    The rules of every way an account is made: ``users create``, registration (through
    ``check_citizen``) and ``users import`` (which brings password hashes, not passwords)."""
    if not USERNAME_RE.match(username or ""):
        raise InvalidInput("username", _("The username must be 3-32 letters, digits, '.', '_' or '-', "
                                         "starting with a letter."))
    if name is not None and not (1 <= len(name.strip()) <= 128):
        raise InvalidInput("name", _("The name must have 1-128 characters."))
    phone = normalize_phone(phone)
    if phone is not None and not PHONE_RE.match(phone):
        raise InvalidInput("phone", _("The mobile phone number must be 11 digits starting with 1."))
    email = email.strip().lower() if email is not None else None
    if email is not None and (len(email) > 254 or not EMAIL_RE.match(email)):  # RFC 5321 §4.5.3.1.3
        raise InvalidInput("email", _("The email address is not valid."))
    if id_number is not None:
        try:
            id_number = normalize_id_number(id_number)
        except InvalidIdentifier as exc:
            raise InvalidInput("id_number", explain_id_number(exc)) from exc
    return {"username": username, "name": name.strip() if name else None, "id_number": id_number,
            "phone": phone, "email": email}


def check_citizen(*, username: str, password: str, name: str | None = None, id_number: str | None = None,
                  phone: str | None = None, email: str | None = None) -> dict:
    """The values of a new citizen account, normalized; raises ``InvalidInput`` for the first wrong one."""
    v = check_identity(username=username, name=name, id_number=id_number, phone=phone, email=email)
    if problem := check_policy(password or "", username=username, id_number=v["id_number"], phone=v["phone"]):
        raise InvalidInput("password", problem)
    return {**v, "password": password}


def create_citizen(*, username: str, password: str, name: str | None = None, id_number: str | None = None,
                   phone: str | None = None, email: str | None = None, phone_verified: bool = False,
                   email_verified: bool = False, actor: str = "cli",
                   also: Callable[[], None] | None = None) -> Person:
    """Create a citizen account (one per username, ID number and phone number).

    ``also`` runs inside the same transaction before the account is written (e.g. consuming the
    verification code that proved the phone), so both happen or neither does."""
    v = check_citizen(username=username, password=password, name=name, id_number=id_number, phone=phone,
                      email=email)
    p = protector()
    person = Person(
        sub=new_subject(), username=v["username"], password_hash=hash_password(v["password"]), name=v["name"],
        id_number_enc=p.encrypt(v["id_number"], "id_number"),
        id_number_index=p.blind_index(v["id_number"], "id_number") if v["id_number"] else None,
        phone_enc=p.encrypt(v["phone"], "phone"), phone_index=p.blind_index(v["phone"], "phone") if v["phone"] else None,
        phone_verified=bool(v["phone"] and phone_verified),
        email_enc=p.encrypt(v["email"], "email"),
        email_index=p.blind_index(v["email"], "email") if v["email"] else None,
        email_verified=bool(v["email"] and email_verified),
        password_changed_at=utcnow(),
    )
    checks = [(Person.username == v["username"], "username", _("The username is taken."))]
    if person.id_number_index:
        checks.append((Person.id_number_index == person.id_number_index, "id_number",
                       _("An account with this ID number exists.")))
    if person.phone_index:
        checks.append((Person.phone_index == person.phone_index, "phone",
                       _("An account with this phone number exists.")))
    with transaction():
        if also is not None:
            also()
        for cond, field, message in checks:
            if db.session.execute(select(Person.id).where(cond)).first():
                raise InvalidInput(field, message, code="conflict", status=409)
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
    return attempt_password(login, password)[0]


def attempt_password(login: str, password: str) -> tuple[Person | None, Person | None]:
    """``check_password``'s answer, and the account the login names if any: for the holder's record of
    failed attempts (``login.failed`` with its target), never for what the person at the form is told."""
    person = find_by_login(login)
    ok = verify_password(person.password_hash if person else None, password or "")
    if not ok or person is None or not person.active:
        return None, person
    if needs_rehash(person.password_hash):
        person.password_hash = hash_password(password)
    return person, person


def personal_context(person: Person) -> dict:
    """What a new password of ``person`` must not contain (see ``passwords.check_policy``)."""
    p = protector()
    return {"username": person.username, "id_number": p.decrypt(person.id_number_enc, "id_number"),
            "phone": p.decrypt(person.phone_enc, "phone")}


def set_password(person: Person, password: str) -> None:
    """Check the policy and store a new password (caller's transaction); ``InvalidInput`` if refused."""
    if problem := check_policy(password or "", **personal_context(person)):
        raise InvalidInput("password", problem)
    person.password_hash = hash_password(password)
    person.password_changed_at = utcnow()


def change_password(person: Person, current: str, new: str, *, keep_session) -> int:
    """The signed-in person changes their password: the current one is checked (counted like a login
    failure when wrong), the new one must pass the policy, every *other* session ends. Returns how
    many sessions ended."""
    from ..authn import throttle
    from ..sessions.logout import end_sessions, live_sessions_of
    from . import notices

    keys = throttle.keys_for(person.username)
    throttle.check(keys)
    if not verify_password(person.password_hash, current or ""):
        with transaction():
            throttle.record_failure(keys)
            record("password.change_failed", actor=f"person:{person.sub}", target=f"person:{person.sub}",
                   outcome="failure", detail={"reason": "wrong_current_password"})
        raise InvalidInput("current_password", _("The current password is wrong."))
    if verify_password(person.password_hash, new or ""):
        raise InvalidInput("password", _("The new password must differ from the current one."))
    others = [s for s in live_sessions_of(person.id) if s.id != keep_session.id]
    with transaction():
        set_password(person, new)
        record("password.changed", actor=f"person:{person.sub}", target=f"person:{person.sub}",
               detail={"other_sessions_ended": len(others)})
    end_sessions(others, reason="password_changed", actor=f"person:{person.sub}")
    if contact := notices.contact_of(person):
        notices.send_password_changed(*contact)
    return len(others)


def account_named(username: str) -> Person:
    """The account with this username, whatever its status (the operator's commands), or ``NotFound``."""
    person = db.session.execute(select(Person).where(Person.username == username)).scalars().first()
    if person is None:
        raise NotFound(f"no account {username!r}")
    return person


def disable_person(username: str, actor: str = "cli") -> dict:
    """Disable an account and end its sessions everywhere."""
    from ..oauth.tokens import revoke_issued
    from ..sessions.logout import end_sessions, live_sessions_of

    person = account_named(username)
    if not person.active:
        raise DomainError(f"account {username!r} is already {person.status}", code="conflict", status=409)
    sessions = live_sessions_of(person.id)
    with transaction():
        person.status = "disabled"
        # Every token of the account, offline_access grants included (they outlive sessions, not the
        # account): a resource server asking introspection must hear "inactive" at once.
        revoked = revoke_issued(utcnow(), person_id=person.id)
        record("account.disabled", actor=actor, target=f"person:{person.sub}", detail={"tokens_revoked": revoked})
    end_sessions(sessions, reason="account_disabled", actor=actor)
    return {"sub": person.sub, "status": "disabled", "sessions_ended": len(sessions), "tokens_revoked": revoked}


def enable_person(username: str, actor: str = "cli") -> dict:
    """Enable a disabled account again. What disabling revoked stays revoked."""
    person = account_named(username)
    if person.active:
        raise DomainError(f"account {username!r} is not disabled", code="conflict", status=409)
    with transaction():
        person.status = "active"
        record("account.enabled", actor=actor, target=f"person:{person.sub}")
    return {"sub": person.sub, "status": "active"}


def get_by_sub(sub: str) -> Person | None:
    return db.session.execute(select(Person).where(Person.sub == sub)).scalars().first()

