"""Real-name verification (实名核验): the hook that raises a citizen's identity proofing level to 2.

A verifier confirms that the account's real name and resident ID number belong to the person who holds
it. In this deployment an operator records an in-person check at a service counter (``counter``); a
check against the national identity platform can be added as another ``IdentityVerifier`` (it would
send the decrypted name and ID number and return the platform's answer) and registered in ``VERIFIERS``.

Level 2 of a *session* also needs TOTP (``assurance.assess``): the result says which level this person
can now reach.
"""
from __future__ import annotations

from typing import Protocol

from flask import current_app
from sqlalchemy import select

from ..accounts.models import Person
from ..audit.service import record
from ..config import acr_for_level
from ..db import db, transaction, utcnow
from ..errors import DomainError, NotFound
from .assurance import reachable_level
from .totp import has_totp

VERIFIED_LEVEL = 2


class IdentityVerifier(Protocol):
    method: str  # stored in Person.identity_method and the audit log

    def check(self, person: Person) -> str | None:
        """None when the person's real name and ID number are confirmed; otherwise why not (safe to show)."""


class CounterCheck:
    """An operator compared the person's resident ID card with the account at a service counter; the
    operator running the command is the evidence (and is in the audit log)."""

    method = "counter"

    def check(self, person: Person) -> str | None:
        return None


VERIFIERS: dict[str, IdentityVerifier] = {v.method: v for v in (CounterCheck(),)}


def verify_identity(username: str, method: str, *, actor: str = "cli") -> dict:
    verifier = VERIFIERS.get(method)
    if verifier is None:
        raise DomainError(f"unknown verification method {method!r} (known: {', '.join(sorted(VERIFIERS))})")
    person = db.session.execute(select(Person).where(Person.username == username)).scalars().first()
    if person is None:
        raise NotFound(f"no account {username!r}")
    if not person.active:
        raise DomainError(f"the account {username!r} is {person.status}")
    if not person.name or not person.id_number_enc:
        raise DomainError("the account has no real name and resident ID number to verify; record them first")
    if problem := verifier.check(person):
        raise DomainError(f"identity not verified: {problem}")
    with transaction():
        person.level = max(person.level or 1, VERIFIED_LEVEL)
        person.identity_verified_at, person.identity_method = utcnow(), verifier.method
        record("identity.verified", actor=actor, target=f"person:{person.sub}", detail={"method": verifier.method})
    return describe(person)


def describe(person: Person) -> dict:
    enrolled = has_totp(person)
    reachable = reachable_level(person, enrolled)
    return {
        "sub": person.sub, "username": person.username, "identity_level": person.level,
        "identity_method": person.identity_method, "identity_verified_at": person.identity_verified_at,
        "totp_enrolled": enrolled, "assurance_level": reachable, "acr": acr_for_level(current_app.config, reachable),
        "note": ("sign-ins with password and TOTP reach level 2" if reachable >= 2
                 else "level 2 once TOTP is enrolled (on /account/security)"),
    }
