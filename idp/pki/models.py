"""Certificates issued to (or registered for) officials, and the current CRL of each hub CA."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import db, utcnow


class Certificate(db.Model):
    """An official's certificate: issued by the hub CA (``origin`` generated or csr) or an external
    CA's certificate registered by fingerprint (``external``). Expiry is read from ``not_after``;
    ``status`` only says whether it was revoked (RFC 5280 §5.3.1 reason in ``revocation_reason``)."""

    __tablename__ = "certificate"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Lower-case hex of the positive serial (at most 20 octets, RFC 5280 §4.1.2.2).
    serial: Mapped[str] = mapped_column(String(40), index=True)
    # The hub CA that signed it (its id in keys/ca/ca.json), or "external".
    issuer_ca: Mapped[str] = mapped_column(String(64))
    # login (an official's) | seal (a department seal's document-signing certificate) | tsa
    usage: Mapped[str] = mapped_column(String(16), default="login", server_default="login")
    person_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"), index=True)  # None for seal/tsa
    official_id: Mapped[int | None] = mapped_column(ForeignKey("official.id", ondelete="SET NULL"), index=True)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id", ondelete="SET NULL"))
    subject: Mapped[str] = mapped_column(String(1024))  # RFC 4514 string
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 of the DER, hex
    public_key_sha256: Mapped[str] = mapped_column(String(64), index=True)  # of the SubjectPublicKeyInfo DER
    origin: Mapped[str] = mapped_column(String(16))  # generated | csr | external
    not_before: Mapped[datetime]
    not_after: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | revoked
    revoked_at: Mapped[datetime | None]
    revocation_reason: Mapped[str | None] = mapped_column(String(32))
    # When the key is known or suspected to have been compromised (RFC 5280 §5.3.2), if earlier than revoked_at.
    invalidity_date: Mapped[datetime | None]
    pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    person = relationship("Person")
    official = relationship("Official")


class CertificateRevocationList(db.Model):
    """The current CRL of one hub CA (RFC 5280 §5), shared by every node: regenerated on each
    revocation and before ``next_update``; ``number`` is its cRLNumber and only grows."""

    __tablename__ = "crl"

    ca_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    number: Mapped[int]
    this_update: Mapped[datetime]
    next_update: Mapped[datetime]
    der: Mapped[bytes] = mapped_column(LargeBinary)
