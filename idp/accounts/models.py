from __future__ import annotations

from collections import namedtuple
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..db import db, utcnow


def status_is_active(status: str | None) -> bool:
    """Whether an account with this status may sign in and use its tokens (``Person.active``,
    ``PersonView.active``, and introspection's token lookup, which reads the status alone)."""
    return status == "active"


class Person(db.Model):
    """A natural person. Identifiers other than the username are encrypted, found by blind index."""

    __tablename__ = "person"

    id: Mapped[int] = mapped_column(primary_key=True)
    sub: Mapped[str] = mapped_column(String(64), unique=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(128))
    id_number_enc: Mapped[str | None] = mapped_column(String(255))
    id_number_index: Mapped[str | None] = mapped_column(String(64), unique=True)
    phone_enc: Mapped[str | None] = mapped_column(String(255))
    phone_index: Mapped[str | None] = mapped_column(String(64), unique=True)
    phone_verified: Mapped[bool] = mapped_column(default=False)
    email_enc: Mapped[str | None] = mapped_column(String(512))
    email_index: Mapped[str | None] = mapped_column(String(64), index=True)
    email_verified: Mapped[bool] = mapped_column(default=False)
    # Identity proofing level: 1 self-asserted, 2 real name verified (e.g. at a service counter).
    # The assurance of a *session* also depends on the factors used (see authn).
    level: Mapped[int] = mapped_column(default=1)
    identity_verified_at: Mapped[datetime | None]
    identity_method: Mapped[str | None] = mapped_column(String(32))  # counter | national_platform | ...
    password_changed_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def active(self) -> bool:
        return status_is_active(self.status)


class PersonView(namedtuple("PersonView", ("id", "sub", "username", "name", "email_enc", "email_verified", "phone_enc",
                                           "phone_verified", "id_number_enc", "updated_at", "status"))):
    """The columns of a ``Person`` that claims are made from, read without the ORM with what they come
    with: UserInfo with its token (``oauth.tokens.find_live_access_with_person``), the code exchange with
    its code and the refresh grant with its session's id (``oauth.grants``)."""

    __slots__ = ()
    active = Person.active  # the same rule


class Department(db.Model):
    """A city department: owns subsites and seals; officials are its staff."""

    __tablename__ = "department"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Official(db.Model):
    """A person's staff membership in a department (a person may serve in several)."""

    __tablename__ = "official"
    __table_args__ = (UniqueConstraint("person_id", "department_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"), index=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(32), default="staff")
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | ended
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]


class Business(db.Model):
    """A legal person, identified by its unified social credit code (GB 32100)."""

    __tablename__ = "business"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)  # the ``org.id`` relying parties see
    uscc: Mapped[str] = mapped_column(String(18), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    representative_id: Mapped[int] = mapped_column(ForeignKey("person.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Representation(db.Model):
    """Person acting for a business: its legal representative, or an agent (经办人) the representative
    authorized. An agent's authorization is ``pending`` until the agent confirms it."""

    __tablename__ = "representation"

    id: Mapped[int] = mapped_column(primary_key=True)
    business_id: Mapped[int] = mapped_column(ForeignKey("business.id", ondelete="CASCADE"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(32))  # legal_representative | agent
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | active | declined | revoked
    granted_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    valid_from: Mapped[datetime] = mapped_column(default=utcnow)
    valid_until: Mapped[datetime | None]
    confirmed_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ImportRun(db.Model):
    """Progress of an ``idp users import`` file, so an interrupted import resumes where it stopped."""

    __tablename__ = "import_run"

    id: Mapped[int] = mapped_column(primary_key=True)
    file_digest: Mapped[str] = mapped_column(String(64), unique=True)
    file_name: Mapped[str] = mapped_column(String(255))
    lines_done: Mapped[int] = mapped_column(default=0)
    imported: Mapped[int] = mapped_column(default=0)
    rejected: Mapped[int] = mapped_column(default=0)
    report: Mapped[dict | None] = mapped_column(JSON)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
