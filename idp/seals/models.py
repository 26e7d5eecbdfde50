"""A department's seals, who may apply each, every application, and every timestamp the hub's TSA
issued."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import db, utcnow


class Seal(db.Model):
    """A department's seal. Its signing key lives here encrypted with the data key
    (``accounts.protection``, field ``FIELD_SEAL_KEY``) so every node can sign; its document-signing
    certificate is a ``certificate`` row (``usage`` = "seal") so the CA's CRL covers it.
    ``status``: active | suspended | revoked. Validity is the certificate's."""

    __tablename__ = "seal"

    id: Mapped[int] = mapped_column(primary_key=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"), index=True)
    name: Mapped[str] = mapped_column(String(128))          # 本溪市市场监督管理局行政审批专用章
    type: Mapped[str] = mapped_column(String(32))           # 审批专用章
    status: Mapped[str] = mapped_column(String(16), default="active")
    certificate_id: Mapped[int | None] = mapped_column(ForeignKey("certificate.id"), index=True)
    key_encrypted: Mapped[str] = mapped_column(Text)        # PKCS#8 PEM, AES-GCM under the data key
    image_png: Mapped[bytes] = mapped_column(LargeBinary)   # transparent PNG of the stamp
    image_origin: Mapped[str] = mapped_column(String(16), default="generated")  # generated | uploaded
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    status_changed_at: Mapped[datetime | None]
    revocation_reason: Mapped[str | None] = mapped_column(String(32))

    department = relationship("Department")
    certificate = relationship("Certificate")


class SealAuthorization(db.Model):
    """An official (a membership of the seal's department) allowed to apply a seal, until revoked."""

    __tablename__ = "seal_authorization"
    __table_args__ = (UniqueConstraint("seal_id", "official_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    seal_id: Mapped[int] = mapped_column(ForeignKey("seal.id", ondelete="CASCADE"), index=True)
    official_id: Mapped[int] = mapped_column(ForeignKey("official.id", ondelete="CASCADE"), index=True)
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)
    granted_by: Mapped[str] = mapped_column(String(128))
    revoked_at: Mapped[datetime | None]

    seal = relationship("Seal")
    official = relationship("Official")


class SealApplication(db.Model):
    """One seal applied to one document by one official. The document itself is not kept: its
    SHA-256 before sealing and of the result are, with the signature (CMS, DER) and the trusted
    time's serial. The matching audit event (``seal.applied``) is on the hash chain."""

    __tablename__ = "seal_application"

    id: Mapped[int] = mapped_column(primary_key=True)
    seal_id: Mapped[int] = mapped_column(ForeignKey("seal.id"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"), index=True)
    official_id: Mapped[int | None] = mapped_column(ForeignKey("official.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(8))            # pdf | cms
    channel: Mapped[str] = mapped_column(String(16))        # api (sealctl, DPoP) | browser
    document_sha256: Mapped[str] = mapped_column(String(64), index=True)
    result_sha256: Mapped[str] = mapped_column(String(64), index=True)
    signature: Mapped[bytes] = mapped_column(LargeBinary)   # the CMS SignedData (DER)
    tsa_serial: Mapped[str | None] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    seal = relationship("Seal")


class IssuedTimestamp(db.Model):
    """A timestamp token the hub's TSA issued (RFC 3161 §2.4.2): the serial is unique per TSA."""

    __tablename__ = "issued_timestamp"

    serial: Mapped[str] = mapped_column(String(40), primary_key=True)  # lower-case hex
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    hash_algorithm: Mapped[str] = mapped_column(String(16))
    message_imprint: Mapped[str] = mapped_column(String(128))          # hex
    policy: Mapped[str] = mapped_column(String(64))
