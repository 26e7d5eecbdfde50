from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..accounts.models import Person
from ..db import db, utcnow


class SsoSession(db.Model):
    """``sid`` is public (ID tokens carry it); the cookie value is secret and stored as a digest."""

    __tablename__ = "sso_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    sid: Mapped[str] = mapped_column(String(64), unique=True)
    cookie_digest: Mapped[str] = mapped_column(String(64), unique=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"), index=True)
    auth_time: Mapped[datetime]
    acr: Mapped[str] = mapped_column(String(128))
    amr: Mapped[list] = mapped_column(JSON, default=list)
    # The login certificate (SHA-256 of its DER) of the last certificate sign-in, so acts that need it
    # (applying a seal) can check it is still unrevoked.
    certificate_fingerprint: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    idle_expires_at: Mapped[datetime] = mapped_column(index=True)  # the expiry sweep looks sessions up by these
    absolute_expires_at: Mapped[datetime] = mapped_column(index=True)
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(32))
    ip: Mapped[str | None] = mapped_column(String(64))
    # The business this person is acting for in this session (None: for themself).
    acting_representation_id: Mapped[int | None] = mapped_column(ForeignKey("representation.id", ondelete="SET NULL"))
    user_agent: Mapped[str | None] = mapped_column(String(256))

    person: Mapped[Person] = relationship(lazy="joined")


class SessionClient(db.Model):
    """A client that received tokens in a session (for logout fan-out)."""

    __tablename__ = "session_client"
    __table_args__ = (UniqueConstraint("session_id", "client_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sso_session.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[str] = mapped_column(String(64))
    first_at: Mapped[datetime] = mapped_column(default=utcnow)


class LogoutDelivery(db.Model):
    """One back-channel logout token owed to one client (OIDC Back-Channel Logout 1.0 §2.5).

    Stored in the transaction that ends the session, before any attempt, so a crash loses none;
    ``jti`` is fixed at creation so a retry after an unrecorded success is recognisably the same
    token (the relying party's replay check makes delivery effectively once).
    """

    __tablename__ = "logout_delivery"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), index=True)
    uri: Mapped[str] = mapped_column(String(512))
    sid: Mapped[str] = mapped_column(String(64))
    sub: Mapped[str] = mapped_column(String(64))
    jti: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)  # pending|delivered|failed
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    locked_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
