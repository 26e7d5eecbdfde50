from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from ..db import db, utcnow


class LoginThrottle(db.Model):
    """Failed password attempts per login name (as a keyed hash, never the name) or per address."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    window_start: Mapped[datetime]
    locked_until: Mapped[datetime | None]


class TotpCredential(db.Model):
    """A person's TOTP authenticator (RFC 6238). ``last_step`` refuses a replayed code."""

    __tablename__ = "totp_credential"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"), unique=True)
    secret_enc: Mapped[str] = mapped_column(String(255))  # encrypted like other personal data
    confirmed_at: Mapped[datetime | None]  # None while enrollment awaits its first code
    last_step: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RecoveryCode(db.Model):
    """Single-use recovery codes, stored as keyed digests only."""

    __tablename__ = "recovery_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"), index=True)
    code_digest: Mapped[str] = mapped_column(String(64), unique=True)
    used_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class VerificationCode(db.Model):
    """A one-time code sent to a phone or email (registration, password reset, contact change).

    The destination is stored as a blind index (and encrypted for resending), the code as a keyed
    digest; ``attempts`` bounds guessing of one code. ``person_id``: the account a reset code is for."""

    __tablename__ = "verification_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    purpose: Mapped[str] = mapped_column(String(16))  # register | reset | contact
    person_id: Mapped[int | None] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(8))  # phone | email
    destination_index: Mapped[str] = mapped_column(String(64), index=True)
    destination_enc: Mapped[str] = mapped_column(String(512))
    code_digest: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(default=0)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    consumed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
