"""Recovery codes: ten single-use codes shown once, stored only as keyed digests.

A digest is HMAC-SHA-256 under a key derived from the data key (``datakey.derive(…, "recovery-code")``)
over the person and the code, so a copy of the database alone cannot test guesses offline, and a code
is tied to its owner. Using one is a single conditional UPDATE: two nodes cannot both accept it.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from flask import current_app
from sqlalchemy import delete, func, select, update

from ..db import db, utcnow
from .models import RecoveryCode

COUNT = 10
# No 0/o, 1/l/i: read off paper and typed by people. 31 symbols × 10 ≈ 49.5 bits per code.
ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
LENGTH = 10
SHAPE = re.compile(rf"[{ALPHABET}]{{{LENGTH}}}")


def normalize(code: str) -> str:
    """What people type: any case, with or without the dash and spaces."""
    return re.sub(r"[\s-]", "", code or "").lower()


def looks_like_code(code: str) -> bool:
    return bool(SHAPE.fullmatch(normalize(code)))


def _digest(person_id: int, code: str) -> str:
    key = current_app.extensions["idp.recovery_code_key"]
    return hmac.new(key, f"{person_id}\x00{code}".encode(), hashlib.sha256).hexdigest()


def issue(person) -> list[str]:
    """Replace the person's codes with ten new ones (caller's transaction); returns them for showing once."""
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.person_id == person.id))
    codes = ["".join(secrets.choice(ALPHABET) for _ in range(LENGTH)) for _ in range(COUNT)]
    now = utcnow()
    db.session.add_all(RecoveryCode(person_id=person.id, code_digest=_digest(person.id, c), created_at=now)
                       for c in codes)
    return [f"{c[:5]}-{c[5:]}" for c in codes]


def use(person, code: str) -> bool:
    """Spend one code (caller's transaction): True only for the one request that marks it used."""
    code = normalize(code)
    if not SHAPE.fullmatch(code):
        return False
    res = db.session.execute(update(RecoveryCode).where(
        RecoveryCode.person_id == person.id, RecoveryCode.code_digest == _digest(person.id, code),
        RecoveryCode.used_at.is_(None)).values(used_at=utcnow()).execution_options(synchronize_session=False))
    return res.rowcount == 1


def remaining(person) -> int:
    return db.session.execute(select(func.count()).select_from(RecoveryCode).where(
        RecoveryCode.person_id == person.id, RecoveryCode.used_at.is_(None))).scalar_one()


def discard(person) -> None:
    """Delete every code of the person (caller's transaction)."""
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.person_id == person.id))
