"""The CA's use cases: create it, issue an official's certificate (key generated, or from a request),
revoke, list. Each state change is audited in its own transaction; personal data stays out of the
audit details (certificates are named by serial)."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from flask import current_app
from sqlalchemy import select

from ..accounts.models import Department, Official, Person
from ..accounts.officials import active_memberships
from ..audit.service import record
from ..db import db, transaction, utcnow
from ..errors import Conflict, DomainError, NotFound
from . import ca, crl, profile
from .models import Certificate

# RFC 5280 §5.3.1 reasons an operator may give for an official's certificate. certificateHold and
# removeFromCRL are left out (revocation here is final), as are the CA-only cACompromise/aACompromise.
REVOCATION_REASONS = ("unspecified", "keyCompromise", "affiliationChanged", "superseded",
                      "cessationOfOperation", "privilegeWithdrawn")


def _cfg():
    return current_app.config


def _keys_dir() -> Path:
    return Path(_cfg()["KEYS_DIR"])


def authorities() -> ca.Authorities:
    return ca.load_authorities(_keys_dir())


def ensure_ca(actor: str = "cli") -> list[dict]:
    """Create the root and issuing CA if missing (``idp init``), check the passphrase opens their keys,
    and publish their first CRLs. Returns the CAs created."""
    cfg = _cfg()
    created = ca.create_missing(_keys_dir(), cfg["KEYS_PASSPHRASE"], key_type=cfg["PKI_KEY_TYPE"],
                                base_url=cfg["ISSUER"], organization=cfg["PKI_ORGANIZATION"])
    if created:
        with transaction():
            for entry in created:
                record("ca.created", actor=actor, target=f"ca:{entry['id']}",
                       detail={"role": entry["role"], "key_type": entry["key_type"]})
    auths = authorities()
    for authority in auths.by_id.values():
        authority.private_key(cfg["KEYS_PASSPHRASE"])  # fails now, clearly, if the passphrase is wrong
        crl.refresh_if_due(authority.id)
    return created


def _person(username: str) -> Person:
    person = db.session.execute(select(Person).where(Person.username == username)).scalar_one_or_none()
    if person is None:
        raise NotFound(f"no account {username!r}")
    if not person.active:
        raise DomainError(f"the account {username!r} is disabled")
    return person


def _membership(person: Person, department_code: str | None) -> tuple[Official, Department]:
    """The official's active staff membership (in ``department_code`` when given)."""
    rows = active_memberships(person.id, department_code)
    if not rows:
        where = f" in department {department_code!r}" if department_code else ""
        raise DomainError(f"{person.username!r} is not an official{where} (no active staff membership); "
                          "only officials can be issued a certificate")
    if len(rows) > 1:
        raise DomainError(f"{person.username!r} serves in several departments; choose one with --department CODE")
    return rows[0]


def _summary(row: Certificate) -> dict:
    return {"serial": row.serial, "subject": row.subject,
            "not_after": row.not_after.isoformat(timespec="seconds") + "Z", "fingerprint": row.fingerprint}


def _issue(username: str, department: str | None, public_key, origin: str, actor: str):
    """Certify ``public_key`` for an official; returns (row, certificate, chain)."""
    cfg = _cfg()
    person = _person(username)
    official, dept = _membership(person, department)
    if not (person.name or "").strip():
        raise DomainError(f"{username!r} has no name on record; a certificate names its holder")
    profile.check_public_key(public_key)
    key_digest = profile.spki_sha256(public_key)
    for other in db.session.execute(select(Certificate).where(Certificate.public_key_sha256 == key_digest)).scalars():
        if other.revocation_reason == "keyCompromise":
            raise DomainError("this key was reported compromised; generate a new key")
        if other.person_id != person.id:
            raise DomainError("this key is already certified for someone else; generate a new key")
    auths = authorities()
    issuing = auths.issuing
    ca_key = issuing.private_key(cfg["KEYS_PASSPHRASE"])
    subject = profile.official_subject(person_name=person.name.strip(), department_name=dept.name,
                                       organization=cfg["PKI_ORGANIZATION"])
    cert = profile.build_certificate(issuing=issuing, ca_key=ca_key, public_key=public_key, subject=subject,
                                     days=cfg["PKI_CERT_DAYS"], base_url=cfg["ISSUER"])
    now = utcnow()
    with transaction():
        previous = db.session.execute(select(Certificate.serial).where(
            Certificate.person_id == person.id, Certificate.status == "active", Certificate.origin != "external",
            Certificate.not_after > now)).scalars().all()
        row = Certificate(
            serial=format(cert.serial_number, "x"), issuer_ca=issuing.id, person_id=person.id,
            official_id=official.id, department_id=dept.id, subject=cert.subject.rfc4514_string(),
            fingerprint=profile.fingerprint(cert), public_key_sha256=key_digest, origin=origin,
            not_before=cert.not_valid_before_utc.replace(tzinfo=None),
            not_after=cert.not_valid_after_utc.replace(tzinfo=None), status="active",
            pem=profile.pem_chain(cert, []).decode())
        db.session.add(row)
        db.session.flush()
        detail = {"origin": origin, "ca": issuing.id, "department": dept.code}
        if previous:
            detail["previous"] = previous
        record("pki.certificate_renewed" if previous else "pki.certificate_issued", actor=actor,
               target=f"certificate:{row.serial}", detail=detail)
    return row, cert, [a.certificate for a in auths.chain()]


def issue_pkcs12(username: str, password: str, *, department: str | None = None,
                 actor: str = "cli") -> tuple[dict, bytes]:
    """Generate a key for the official and certify it: a PKCS#12 file (key, certificate, chain)."""
    profile.check_pkcs12_password(password)
    key = ca.generate_key(_cfg()["PKI_KEY_TYPE"])
    row, cert, chain = _issue(username, department, key.public_key(), "generated", actor)
    return _summary(row), profile.to_pkcs12(key=key, cert=cert, chain=chain, password=password, name=username)


def issue_from_csr(username: str, csr_data: bytes, *, department: str | None = None,
                   actor: str = "cli") -> tuple[dict, bytes]:
    """Certify the key in the official's PKCS#10 request (the official keeps the key): PEM, the
    certificate first, then the issuing CA. The request's subject and extensions are not used."""
    csr = profile.load_csr(csr_data)
    try:
        public_key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise DomainError("the request's key type is not supported") from exc
    row, cert, chain = _issue(username, department, public_key, "csr", actor)
    return _summary(row), profile.pem_chain(cert, chain[:-1])


def register_external(username: str, cert_data: bytes, *, department: str | None = None,
                      actor: str = "cli") -> dict:
    """Map a certificate from a trusted external CA (IDP_PKI_EXTERNAL_CA_FILE) to an official by its
    fingerprint. Its chain must validate now; the hub's own certificates are never registered."""
    from .validation import load_certificate, validate_certificate

    try:
        cert = load_certificate(cert_data)
    except ValueError as exc:
        raise DomainError("the file is not a PEM or DER certificate") from exc
    person = _person(username)
    official, dept = _membership(person, department)
    check = validate_certificate(cert)
    if check.record is not None:
        raise Conflict("this certificate is already known to the hub")
    if check.reason not in (None, "unmapped"):
        raise DomainError(f"the certificate cannot be registered: {check.reason} ({check.detail})")
    if len(check.chain) > 1 and check.chain[1] in [a.certificate for a in authorities().by_id.values()]:
        raise DomainError("the hub's own certificates are recorded when issued, not registered")
    profile.check_public_key(cert.public_key())
    if len(cert.subject.rfc4514_string()) > 1024 or not 0 < cert.serial_number < 2 ** 160:
        raise DomainError("the certificate's subject or serial number is outside what the hub records")
    with transaction():
        row = Certificate(
            serial=format(cert.serial_number, "x"), issuer_ca="external", person_id=person.id,
            official_id=official.id, department_id=dept.id, subject=cert.subject.rfc4514_string(),
            fingerprint=profile.fingerprint(cert), public_key_sha256=profile.spki_sha256(cert.public_key()),
            origin="external", not_before=cert.not_valid_before_utc.replace(tzinfo=None),
            not_after=cert.not_valid_after_utc.replace(tzinfo=None), status="active",
            pem=profile.pem_chain(cert, []).decode())
        db.session.add(row)
        db.session.flush()
        record("pki.certificate_registered", actor=actor, target=f"certificate:{row.serial}",
               detail={"origin": "external", "department": dept.code})
    return _summary(row)


def normalize_serial(serial: str) -> str:
    """Accept hex as printed by us or by openssl (any case, optional ``0x`` and colons)."""
    s = (serial or "").strip().lower().replace(":", "")
    s = s[2:] if s.startswith("0x") else s
    try:
        value = int(s, 16)
    except ValueError:
        raise DomainError(f"{serial!r} is not a hexadecimal serial number") from None
    if value <= 0 or value.bit_length() > 160:
        raise DomainError(f"{serial!r} is not a certificate serial number (positive, at most 20 octets)")
    return format(value, "x")


def check_revocation(reason: str, invalidity_date: dt.datetime | None) -> dt.datetime | None:
    """Refuse an unknown reason or a compromise date in the future; the date as naive UTC, whole seconds."""
    if reason not in REVOCATION_REASONS:
        raise DomainError(f"unknown revocation reason {reason!r}; one of: {', '.join(REVOCATION_REASONS)}")
    if invalidity_date is None:
        return None
    if invalidity_date.tzinfo is not None:
        invalidity_date = invalidity_date.astimezone(dt.timezone.utc).replace(tzinfo=None)
    invalidity_date = invalidity_date.replace(microsecond=0)
    if invalidity_date > utcnow():
        raise DomainError("the compromise date (invalidity date) cannot be in the future")
    return invalidity_date


def revoke_certificate(serial: str, reason: str = "unspecified", *, actor: str = "cli",
                       invalidity_date: dt.datetime | None = None) -> dict:
    """Revoke a certificate and publish its CA's CRL in the same transaction (RFC 5280 §5.3.1 reasons).
    ``invalidity_date`` (UTC): when the key is known or suspected to have been compromised, written
    to the CRL entry (§5.3.2); not in the future."""
    invalidity_date = check_revocation(reason, invalidity_date)
    serial = normalize_serial(serial)
    rows = db.session.execute(select(Certificate).where(Certificate.serial == serial)).scalars().all()
    if not rows:
        raise NotFound(f"no certificate with serial {serial}")
    if len(rows) > 1:
        raise Conflict(f"several certificates have serial {serial}")
    with transaction():
        result = revoke_record(rows[0], reason, actor=actor, invalidity_date=invalidity_date)
    result["sessions_ended"] = _end_sessions_signed_in_with(rows[0], actor)
    return result


def key_thumbprint(pem: str) -> str:
    """RFC 7638 thumbprint of a certificate's public key: the ``cnf.jkt`` of the tokens bound to that
    key (RFC 9449 §6.1), such as those the officials' tool obtains with its certificate."""
    from ..oauth.dpop import thumbprint

    return thumbprint(x509.load_pem_x509_certificate(pem.encode()).public_key())


def revoke_tokens_bound_to(row: Certificate) -> int:
    """Revoke what the holder was issued bound to the certificate's key (the caller's transaction):
    tokens with that ``cnf.jkt`` and unused codes to be redeemed with it. Returns how many tokens."""
    from ..oauth.tokens import revoke_issued

    if row.usage != "login" or row.person_id is None:
        return 0
    try:
        jkt = key_thumbprint(row.pem)
    except (ValueError, TypeError):  # a key type no token can be bound to
        return 0
    return revoke_issued(utcnow(), person_id=row.person_id, cnf_jkt=jkt)


def _end_sessions_signed_in_with(row: Certificate, actor: str) -> int:
    """End the live SSO sessions whose last certificate sign-in used this certificate (their subsites
    get back-channel logout; their session-bound tokens are revoked)."""
    from ..sessions.logout import end_sessions
    from ..sessions.models import SsoSession

    if row.usage != "login":
        return 0
    sessions = list(db.session.execute(select(SsoSession).where(
        SsoSession.certificate_fingerprint == row.fingerprint, SsoSession.ended_at.is_(None))).scalars())
    end_sessions(sessions, reason="certificate_revoked", actor=actor)
    return len(sessions)


def revoke_record(row: Certificate, reason: str, *, actor: str, invalidity_date: dt.datetime | None = None) -> dict:
    """Revoke ``row`` and publish its CA's CRL inside the caller's transaction (so a caller such as
    the seal registry changes its own rows in the same commit). Arguments checked by ``check_revocation``."""
    invalidity_date = check_revocation(reason, invalidity_date)
    authority = authorities().by_id.get(row.issuer_ca) if row.origin != "external" else None
    ca_key = authority.private_key(_cfg()["KEYS_PASSPHRASE"]) if authority else None
    crl.lock()
    db.session.refresh(row)
    if row.status == "revoked":
        raise Conflict(f"certificate {row.serial} is already revoked ({row.revocation_reason})")
    row.status, row.revoked_at, row.revocation_reason = "revoked", utcnow().replace(microsecond=0), reason
    row.invalidity_date = invalidity_date
    db.session.flush()
    published = crl.publish(authority, ca_key) if authority else None
    detail = {"reason": reason}
    tokens_revoked = revoke_tokens_bound_to(row)
    if tokens_revoked:
        detail["tokens_revoked"] = tokens_revoked
    if invalidity_date is not None:
        detail["invalidity_date"] = invalidity_date.isoformat(timespec="seconds") + "Z"
    if published:
        detail["crl_number"] = published.number
    record("pki.certificate_revoked", actor=actor, target=f"certificate:{row.serial}", detail=detail)
    return {"serial": row.serial, "status": "revoked", "reason": reason,
            "revoked_at": row.revoked_at.isoformat(timespec="seconds") + "Z",
            "invalidity_date": invalidity_date.isoformat(timespec="seconds") + "Z" if invalidity_date else None,
            "crl_number": published.number if published else None, "tokens_revoked": tokens_revoked}


def list_certificates(username: str | None = None) -> list[dict]:
    # Seal and TSA certificates have no person: an outer join keeps them in the list.
    q = (select(Certificate, Person.username, Department.code)
         .outerjoin(Person, Certificate.person_id == Person.id)
         .outerjoin(Department, Certificate.department_id == Department.id))
    if username:
        q = q.where(Person.username == username)
    now = utcnow()
    out = []
    for row, uname, dept in db.session.execute(q.order_by(Certificate.id)).all():
        status = row.status if row.status == "revoked" else ("expired" if row.not_after <= now else "active")
        out.append({**_summary(row), "usage": row.usage, "username": uname, "department": dept, "origin": row.origin,
                    "ca": row.issuer_ca, "not_before": row.not_before.isoformat(timespec="seconds") + "Z",
                    "status": status, "revocation_reason": row.revocation_reason,
                    "revoked_at": row.revoked_at.isoformat(timespec="seconds") + "Z" if row.revoked_at else None,
                    "invalidity_date": (row.invalidity_date.isoformat(timespec="seconds") + "Z"
                                        if row.invalidity_date else None)})
    return out


def chain_pem() -> str:
    """The hub's CA certificates, issuing CA first, then the root (``idp pki ca-cert``)."""
    return "".join(a.pem for a in authorities().chain())

