"""TOTP second factor (RFC 6238 with pyotp): enrollment, verification, recovery codes, disabling.

- The secret (160 random bits, RFC 4226 §4 R6) is stored encrypted (``protector().encrypt(…, "totp")``).
- A code is accepted for the current time step and one step either side (RFC 6238 §5.2, network delay
  and clock drift), and never twice: the last accepted step is stored and raised by one conditional
  UPDATE, so a replay is refused even when two nodes see the same code at once.
- Wrong codes count in the login throttle on a key of the person (whatever name they typed) and
  of the address; every change is audited (``mfa.*``), never with the secret or a code.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass

import pyotp
import segno
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from ..accounts.passwords import verify_password
from ..accounts.protection import FIELD_TOTP_SECRET, protector
from ..audit.service import record
from ..db import db, transaction, utcnow
from ..errors import Conflict, DomainError
from . import recovery, throttle
from .models import TotpCredential

STEP = 30  # seconds (RFC 6238 §5.2 recommends 30)
DIGITS = 6
WINDOW = 1  # steps accepted either side of the current one
CODE_SHAPE = re.compile(r"[0-9]{6}")


def now() -> float:
    """The verifier's clock, Unix time (one function, so tests can move it)."""
    return time.time()


def matching_step(secret: str, code: str, *, at: float, after: int | None = None, window: int = WINDOW,
                  digits: int = DIGITS, digest=hashlib.sha1) -> int | None:
    """The time step T = floor(at / X) (RFC 6238 §4.2, T0 = 0) within ±``window`` whose code is ``code``.

    Steps up to ``after`` (the last one accepted) are refused: RFC 6238 §5.2 "the verifier MUST NOT
    accept the second attempt of the OTP after the successful validation has been issued for the first".
    """
    code = (code or "").strip()
    if not re.fullmatch(rf"[0-9]{{{digits}}}", code):
        return None
    otp = pyotp.TOTP(secret, digits=digits, digest=digest, interval=STEP)
    now = int(at) // STEP
    found = None
    for step in range(max(0, now - window), now + window + 1):
        # Every candidate is compared (no early exit), each in constant time.
        if hmac.compare_digest(otp.generate_otp(step), code) and (after is None or step > after):
            found = step
    return found


# -- reading ---------------------------------------------------------------------------------------


def _credential(person, *, confirmed: bool) -> TotpCredential | None:
    q = select(TotpCredential).where(TotpCredential.person_id == person.id)
    q = q.where(TotpCredential.confirmed_at.is_not(None) if confirmed else TotpCredential.confirmed_at.is_(None))
    return db.session.execute(q.execution_options(populate_existing=True)).scalars().first()


def has_totp(person) -> bool:
    return _credential(person, confirmed=True) is not None


@dataclass
class Enrollment:
    """What the enrollment page shows: the key to type in, and the same as an otpauth:// URI and QR code."""

    key: str
    uri: str
    qr_svg: str

    @property
    def key_groups(self) -> str:
        return " ".join(self.key[i:i + 4] for i in range(0, len(self.key), 4))


def pending_enrollment(person) -> Enrollment | None:
    cred = _credential(person, confirmed=False)
    if cred is None:
        return None
    secret = protector().decrypt(cred.secret_enc, FIELD_TOTP_SECRET)
    # Key URI format (github.com/google/google-authenticator/wiki/Key-Uri-Format): label "issuer:account".
    uri = pyotp.TOTP(secret, digits=DIGITS, interval=STEP).provisioning_uri(
        name=person.username, issuer_name=current_app.config["TOTP_ISSUER"])
    # Inline SVG: no data: URI for the page's Content-Security-Policy to allow.
    svg = segno.make(uri, error="m").svg_inline(scale=5, dark="#000", light="#fff",
                                                title=_("QR code of your authenticator key"))
    return Enrollment(key=secret, uri=uri, qr_svg=svg)


def status(person) -> dict:
    return {"enabled": has_totp(person), "pending": pending_enrollment(person),
            "recovery_remaining": recovery.remaining(person)}


# -- checks shared by every use case ----------------------------------------------------------------


def throttle_keys(person) -> dict[str, int]:
    """Guesses of this person's codes are counted on the person, not on the name typed at login."""
    return throttle.keys_for(f"totp:{person.sub}")


def _consume(person, code: str) -> str | None:
    """Accept a TOTP code or a recovery code once (caller's transaction): "totp", "recovery_code" or None."""
    code = "".join((code or "").split())
    if CODE_SHAPE.fullmatch(code):
        cred = _credential(person, confirmed=True)
        if cred is None:
            return None
        secret = protector().decrypt(cred.secret_enc, FIELD_TOTP_SECRET)
        step = matching_step(secret, code, at=now(), after=cred.last_step)
        if step is None:
            return None
        res = db.session.execute(update(TotpCredential).where(
            TotpCredential.id == cred.id, TotpCredential.confirmed_at.is_not(None),
            or_(TotpCredential.last_step.is_(None), TotpCredential.last_step < step))
            .values(last_step=step).execution_options(synchronize_session=False))
        return "totp" if res.rowcount == 1 else None
    if recovery.looks_like_code(code) and recovery.use(person, code):
        return "recovery_code"
    return None


def _failed(person, keys, purpose: str) -> None:
    """A wrong code (caller's transaction): counted by the throttle and audited."""
    throttle.record_failure(keys)
    record("mfa.failed", actor=f"person:{person.sub}", target=f"person:{person.sub}", outcome="failure",
           detail={"purpose": purpose})


def _used(person, method: str, purpose: str) -> None:
    if method == "recovery_code":
        record("mfa.recovery_used", actor=f"person:{person.sub}", target=f"person:{person.sub}",
               detail={"purpose": purpose, "remaining": recovery.remaining(person)})


def check_second_factor(person, code: str, *, purpose: str) -> str | None:
    """One use of the second factor (login, step-up): "totp", "recovery_code", or None if wrong.

    Raises 429 while the person's codes or this address are locked.
    """
    keys = throttle_keys(person)
    throttle.check(keys)
    with transaction():
        method = _consume(person, code)
        if method is None:
            _failed(person, keys, purpose)
        else:
            _used(person, method, purpose)
    if method is not None:
        throttle.clear_name(keys)
    return method


def require_second_factor(person, code: str, *, purpose: str) -> str:
    """``check_second_factor`` before a sensitive change: the method used, or ``DomainError`` ``wrong_code``."""
    method = check_second_factor(person, code, purpose=purpose)
    if method is None:
        raise DomainError(_msg("wrong_code"), code="wrong_code")
    return method


def require_password(person, password: str, *, failed_action: str = "mfa.reauth_failed") -> None:
    """Re-authentication before a sensitive change (the second factor, closing the account); guesses
    count like login failures, and each is audited as ``failed_action``."""
    keys = throttle.keys_for(person.username)
    throttle.check(keys)
    if not verify_password(person.password_hash, password or ""):
        with transaction():
            throttle.record_failure(keys)
            record(failed_action, actor=f"person:{person.sub}", target=f"person:{person.sub}", outcome="failure")
        raise DomainError(_msg("wrong_password"), code="wrong_password", status=400)


def _msg(key: str) -> str:
    return {
        "wrong_password": _("The password is not right."),
        "wrong_code": _("That code is not right. Enter the current 6-digit code from your app, or a recovery code."),
        "wrong_first_code": _("That code is not right. Check that your phone's clock is correct and enter the current "
                              "6-digit code."),
        "already": _("An authenticator app is already set up. Turn it off first to set up a new one."),
        "none": _("No authenticator app is set up."),
        "no_pending": _("Start the setup again: no authenticator app is waiting for confirmation."),
    }[key]


# -- use cases ------------------------------------------------------------------------------------


def begin_enrollment(person, password: str) -> None:
    """A new secret awaiting its first code (replaces an unconfirmed one). Needs the current password,
    so that someone using a forgotten open session cannot bind their own phone to the account."""
    if has_totp(person):
        raise Conflict(_msg("already"), code="totp_enabled")
    require_password(person, password)
    secret = pyotp.random_base32()  # 32 base32 characters = 160 bits
    try:
        with transaction():
            db.session.execute(delete(TotpCredential).where(TotpCredential.person_id == person.id,
                                                            TotpCredential.confirmed_at.is_(None)))
            db.session.add(TotpCredential(person_id=person.id, secret_enc=protector().encrypt(secret, FIELD_TOTP_SECRET),
                                          created_at=utcnow()))
            record("mfa.enrollment_started", actor=f"person:{person.sub}", target=f"person:{person.sub}",
                   detail={"method": "totp"})
    except IntegrityError:  # another tab started (or finished) a setup at the same moment
        raise Conflict(_msg("no_pending"), code="conflict") from None


def confirm_enrollment(person, code: str) -> list[str]:
    """The first code proves the app holds the secret; returns the recovery codes (shown once)."""
    cred = _credential(person, confirmed=False)
    if cred is None:
        raise DomainError(_msg("already") if has_totp(person) else _msg("no_pending"), code="no_pending_enrollment")
    step = matching_step(protector().decrypt(cred.secret_enc, FIELD_TOTP_SECRET), "".join((code or "").split()), at=now())
    if step is None:
        raise DomainError(_msg("wrong_first_code"), code="wrong_code")
    with transaction():
        res = db.session.execute(update(TotpCredential).where(
            TotpCredential.id == cred.id, TotpCredential.confirmed_at.is_(None))
            .values(confirmed_at=utcnow(), last_step=step).execution_options(synchronize_session=False))
        if res.rowcount != 1:  # confirmed meanwhile (another tab)
            raise Conflict(_msg("already"), code="totp_enabled")
        codes = recovery.issue(person)
        record("mfa.enrolled", actor=f"person:{person.sub}", target=f"person:{person.sub}",
               detail={"method": "totp", "recovery_codes": len(codes)})
    return codes


def regenerate_recovery_codes(person, code: str) -> list[str]:
    """New recovery codes (the old ones stop working), after a current code or recovery code."""
    if not has_totp(person):
        raise DomainError(_msg("none"), code="totp_disabled")
    keys = throttle_keys(person)
    throttle.check(keys)
    with transaction():
        method = _consume(person, code)
        if method is None:
            _failed(person, keys, "recovery_codes")
            codes = None
        else:
            _used(person, method, "recovery_codes")
            codes = recovery.issue(person)
            record("mfa.recovery_regenerated", actor=f"person:{person.sub}", target=f"person:{person.sub}",
                   detail={"recovery_codes": len(codes)})
    if codes is None:
        raise DomainError(_msg("wrong_code"), code="wrong_code")
    return codes


def disable(person, password: str, code: str) -> None:
    """Turn TOTP off: needs the current password and a current code or recovery code."""
    if not has_totp(person):
        raise DomainError(_msg("none"), code="totp_disabled")
    require_password(person, password)
    keys = throttle_keys(person)
    throttle.check(keys)
    with transaction():
        method = _consume(person, code)
        if method is None:
            _failed(person, keys, "disable")
        else:
            _used(person, method, "disable")
            db.session.execute(delete(TotpCredential).where(TotpCredential.person_id == person.id))
            recovery.discard(person)
            record("mfa.disabled", actor=f"person:{person.sub}", target=f"person:{person.sub}",
                   detail={"method": "totp", "confirmed_with": method})
    if method is None:
        raise DomainError(_msg("wrong_code"), code="wrong_code")
