"""One-time verification codes sent to a phone or an email address (registration, password reset).

- ``issue``: 6 digits from ``secrets`` (one in a million), valid ``VERIFICATION_CODE_TTL`` (10 min),
  stored only as a keyed digest (HMAC-SHA-256 under the data key, bound to purpose and destination);
  the destination as a blind index (the same one accounts use, so it finds the owner of a phone or
  address) and AES-GCM ciphertext. A new code makes older unused ones of the same purpose and
  destination expire. Within ``VERIFICATION_RESEND_SECONDS`` of the last code no new one is made
  (``Issued.fresh`` is False; the earlier code stays valid).
- ``verify``: at most ``VERIFICATION_MAX_ATTEMPTS`` tries per code, each reserved by an atomic UPDATE
  before the comparison (parallel guesses cannot exceed the limit), digests compared in constant
  time; wrong codes also count toward the ``verify`` throttle of the destination and the address.
- ``consume``: once — an UPDATE that succeeds for exactly one caller, in the caller's transaction.

Web flows keep a ``ticket`` (the code's row id, encrypted) in the browser's UI session: it shows
neither the id nor whether an account was found.
"""
from __future__ import annotations

import hmac
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select, update

from ..accounts.protection import FIELD_VERIFICATION_DESTINATION, protector
from ..audit.service import record
from ..db import db, transaction, utcnow
from ..errors import DomainError
from . import throttle
from .models import VerificationCode

CHANNELS = ("phone", "email")


class CodeRefused(DomainError):
    """A code that is wrong, expired, used or exhausted (shown beside the code input)."""

    code = "invalid_code"
    status = 400


@dataclass
class Issued:
    row: VerificationCode
    code: str | None  # the code to send; None when an earlier one is still fresh
    fresh: bool


def destination_index(channel: str, destination: str) -> str:
    """The blind index of a phone number or (lower-case) email address, as ``Person`` stores it."""
    if channel not in CHANNELS:
        raise ValueError(channel)
    return protector().blind_index(destination, channel)


def _digest(purpose: str, index: str, code: str) -> str:
    return protector().blind_index(f"{purpose}\x00{index}\x00{code}", "verification-code")


def issue(purpose: str, channel: str, destination: str, *, person_id: int | None = None,
          index: str | None = None) -> Issued:
    """A new code for ``destination`` (caller's transaction), unless one was made moments ago.

    ``index`` overrides the destination's blind index (a reset request that matched no account keys
    its stand-in code by what was typed)."""
    cfg = current_app.config
    now = utcnow()
    index = index or destination_index(channel, destination)
    same = (VerificationCode.purpose == purpose, VerificationCode.destination_index == index,
            VerificationCode.person_id.is_(None) if person_id is None else VerificationCode.person_id == person_id)
    recent = db.session.execute(select(VerificationCode).where(
        *same, VerificationCode.consumed_at.is_(None), VerificationCode.expires_at > now,
        VerificationCode.attempts < cfg["VERIFICATION_MAX_ATTEMPTS"],
        VerificationCode.created_at > now - timedelta(seconds=cfg["VERIFICATION_RESEND_SECONDS"]),
    ).order_by(VerificationCode.id.desc()).limit(1)).scalars().first()
    if recent is not None:
        return Issued(recent, None, False)
    db.session.execute(update(VerificationCode).where(*same, VerificationCode.consumed_at.is_(None),
                                                      VerificationCode.expires_at > now).values(expires_at=now))
    code = f"{secrets.randbelow(10 ** 6):06d}"
    row = VerificationCode(purpose=purpose, person_id=person_id, channel=channel, destination_index=index,
                           destination_enc=protector().encrypt(destination, FIELD_VERIFICATION_DESTINATION),
                           code_digest=_digest(purpose, index, code), attempts=0, created_at=now,
                           expires_at=now + timedelta(seconds=cfg["VERIFICATION_CODE_TTL"]))
    db.session.add(row)
    db.session.flush()
    return Issued(row, code, True)


def resend_at(row: VerificationCode):
    """When a new code may be sent to the same destination (naive UTC)."""
    return row.created_at + timedelta(seconds=current_app.config["VERIFICATION_RESEND_SECONDS"])


def destination_of(row: VerificationCode) -> str:
    return protector().decrypt(row.destination_enc, FIELD_VERIFICATION_DESTINATION)


def ticket_for(row: VerificationCode) -> str:
    return protector().encrypt(str(row.id), "verification-ticket")


def row_for_ticket(ticket: str | None, purpose: str) -> VerificationCode | None:
    if not ticket or len(ticket) > 200:
        return None
    try:
        row_id = int(protector().decrypt(ticket, "verification-ticket"))
    except (ValueError, TypeError):
        return None
    row = db.session.get(VerificationCode, row_id)
    return row if row is not None and row.purpose == purpose else None


def _normalize(code: str | None) -> str:
    return re.sub(r"\s", "", unicodedata.normalize("NFKC", code or ""))[:32]


def verify(row: VerificationCode | None, code: str | None) -> None:
    """Return if ``code`` is the row's code and the row still usable; else raise ``CodeRefused``.

    Does not consume the code (``consume`` does, with the change it authorizes)."""
    cfg = current_app.config
    now = utcnow()
    if row is None or row.consumed_at is not None or row.expires_at <= now:
        raise CodeRefused(_("This code has expired or was already used. Request a new one."), code="code_expired")
    keys = throttle.keys_for_scope("verify", row.destination_index)
    throttle.check(keys)
    with transaction():  # reserve one try before comparing: parallel guesses cannot exceed the limit
        reserved = db.session.execute(update(VerificationCode).where(
            VerificationCode.id == row.id, VerificationCode.attempts < cfg["VERIFICATION_MAX_ATTEMPTS"])
            .values(attempts=VerificationCode.attempts + 1)).rowcount
    if not reserved:
        raise CodeRefused(_("Too many wrong codes were entered. Request a new code."), code="code_exhausted")
    candidate = _normalize(code)
    right = hmac.compare_digest(_digest(row.purpose, row.destination_index, candidate), row.code_digest)
    with transaction():
        if right:  # the try is given back: a right code costs none (the form may still need fixing)
            db.session.execute(update(VerificationCode).where(VerificationCode.id == row.id)
                               .values(attempts=VerificationCode.attempts - 1))
            throttle.clear_accounts(keys)
            return
        throttle.record_failure(keys)
        record("verification.failed", actor="anonymous", outcome="failure",
               detail={"purpose": row.purpose, "channel": row.channel})
    db.session.refresh(row)
    left = cfg["VERIFICATION_MAX_ATTEMPTS"] - row.attempts
    if left <= 0:
        raise CodeRefused(_("The code is wrong, and too many wrong codes were entered. Request a new code."),
                          code="code_exhausted")
    raise CodeRefused(_("The code is wrong. Check the latest message and try again."), code="wrong_code")


def consume(row: VerificationCode) -> None:
    """Use the code up (caller's transaction); refuses a code that another request used first."""
    used = db.session.execute(update(VerificationCode).where(
        VerificationCode.id == row.id, VerificationCode.consumed_at.is_(None),
        VerificationCode.expires_at > utcnow()).values(consumed_at=utcnow())).rowcount
    if used != 1:
        raise CodeRefused(_("This code has expired or was already used. Request a new one."), code="code_expired")
