"""The seal registry's use cases: create a department's seal (key, document-signing certificate,
image), authorize officials to apply it, suspend, resume, revoke; and THE rule for who may apply
a seal now (``check_may_apply``), which every channel (API, browser, sealctl) goes through.

Each change is one transaction with its audit event (``seal.*``); the audit detail names seals,
certificates (by serial) and people (by ``sub``), never personal data.
"""
from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from ..accounts.businesses import find_person
from ..accounts.models import Department, Official, Person
from ..accounts.officials import active_memberships, get_department
from ..accounts.protection import FIELD_SEAL_KEY, protector
from ..audit.service import record
from ..db import db, transaction, utcnow
from ..errors import Conflict, DomainError, NotFound
from ..pki import ca, profile
from ..pki.models import Certificate
from ..pki.service import authorities, check_revocation, revoke_record
from .credential import SealCredential
from .image import load_uploaded_image, render_seal
from .models import Seal, SealAuthorization

DEFAULT_TYPE = "审批专用章"
ACTIVE, SUSPENDED, REVOKED = "active", "suspended", "revoked"


def _cfg():
    return current_app.config


def _refusal(code: str, message, status: int = 403) -> DomainError:
    return DomainError(message, code=code, status=status)


def get_seal(seal_id) -> Seal:
    try:
        seal = db.session.get(Seal, int(seal_id))
    except (TypeError, ValueError):
        seal = None
    if seal is None:
        raise NotFound(_l("There is no seal with the number %(id)s.", id=seal_id), code="seal_not_found")
    return seal


def list_seals(department_code: str | None = None) -> list[Seal]:
    q = select(Seal).order_by(Seal.id)
    if department_code:
        q = q.where(Seal.department_id == get_department(department_code).id)
    return list(db.session.execute(q).scalars())


def _text(value: str | None, limit: int, what) -> str:
    value = " ".join((value or "").split())
    if not 1 <= len(value) <= limit:
        raise DomainError(what)
    return value


def _purpose(name: str, department: Department, seal_type: str) -> str:
    """What the stamp says below the star: the part of the seal's name after the department's
    (本溪市市场监督管理局 + 行政审批专用章), else the seal's type."""
    rest = "".join(name.split())[len("".join(department.name.split())):]
    return rest if "".join(name.split()).startswith("".join(department.name.split())) and rest else seal_type


def create_seal(department_code: str, name: str, seal_type: str = DEFAULT_TYPE, image: bytes | None = None, *,
                actor: str = "cli") -> Seal:
    """A new seal of the department: its own key (IDP_SEAL_KEY_TYPE), a document-signing certificate
    from the hub's issuing CA (IDP_SEAL_CERT_DAYS), the stamp generated unless ``image`` (PNG) is given."""
    cfg = _cfg()
    name = _text(name, 128, _l("A seal's name has 1 to 128 characters."))
    seal_type = _text(seal_type, 32, _l("A seal's type has 1 to 32 characters."))
    dept = get_department(department_code)
    if dept.status != "active":
        raise DomainError(_l("The department %(code)s is not active.", code=dept.code))
    if db.session.execute(select(Seal.id).where(Seal.department_id == dept.id, Seal.name == name,
                                                Seal.status != REVOKED)).first():
        raise Conflict(_l("The department %(code)s already has a seal named %(name)s.", code=dept.code, name=name))
    if image is not None:
        image_png, origin = load_uploaded_image(image), "uploaded"
    else:
        image_png, origin = render_seal(dept.name, _purpose(name, dept, seal_type)), "generated"
    key = ca.generate_key(cfg["SEAL_KEY_TYPE"])
    issuing = authorities().issuing
    subject = profile.seal_subject(seal_name=name, department_name=dept.name, organization=cfg["PKI_ORGANIZATION"])
    cert = profile.build_seal_certificate(issuing=issuing, ca_key=issuing.private_key(cfg["KEYS_PASSPHRASE"]),
                                          public_key=key.public_key(), subject=subject,
                                          days=cfg["SEAL_CERT_DAYS"], base_url=cfg["ISSUER"])
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    now = utcnow()
    with transaction():
        row = Certificate(
            serial=format(cert.serial_number, "x"), issuer_ca=issuing.id, usage="seal", person_id=None,
            official_id=None, department_id=dept.id, subject=cert.subject.rfc4514_string(),
            fingerprint=profile.fingerprint(cert), public_key_sha256=profile.spki_sha256(key.public_key()),
            origin="generated", not_before=cert.not_valid_before_utc.replace(tzinfo=None),
            not_after=cert.not_valid_after_utc.replace(tzinfo=None), status="active",
            pem=profile.pem_chain(cert, []).decode())
        db.session.add(row)
        db.session.flush()
        seal = Seal(department_id=dept.id, name=name, type=seal_type, status=ACTIVE, certificate_id=row.id,
                    key_encrypted=protector().encrypt(pem, FIELD_SEAL_KEY), image_png=image_png,
                    image_origin=origin, created_at=now, status_changed_at=now)
        db.session.add(seal)
        db.session.flush()
        record("seal.created", actor=actor, target=f"seal:{seal.id}",
               detail={"department": dept.code, "type": seal_type, "certificate": row.serial,
                       "key_type": cfg["SEAL_KEY_TYPE"], "image": origin})
    return seal


def _official_of(seal: Seal, username: str) -> tuple[Person, Official]:
    person = find_person(username)
    if person is None:
        raise NotFound(_l("There is no active account with the username %(username)s.", username=username))
    rows = active_memberships(person.id, seal.department.code)
    if not rows:
        raise _refusal("not_an_official", _l("%(username)s is not an official of %(code)s.",
                                             username=username, code=seal.department.code))
    return person, rows[0][0]


def authorize(seal_id, username: str, *, actor: str = "cli") -> dict:
    """Allow an official of the seal's department to apply it (again, if the authorization had been
    withdrawn). Already authorized: nothing changes (``changed`` false)."""
    seal = get_seal(seal_id)
    if seal.status == REVOKED:
        raise _refusal("seal_revoked", _l("The seal %(id)s has been revoked.", id=seal.id), 409)
    person, official = _official_of(seal, username)
    with transaction():
        row = db.session.execute(select(SealAuthorization).where(
            SealAuthorization.seal_id == seal.id, SealAuthorization.official_id == official.id)).scalar()
        if row is not None and row.revoked_at is None:
            changed = False
        else:
            if row is None:
                row = SealAuthorization(seal_id=seal.id, official_id=official.id)
                db.session.add(row)
            row.granted_at, row.granted_by, row.revoked_at = utcnow(), actor, None
            db.session.flush()
            record("seal.authorized", actor=actor, target=f"seal:{seal.id}",
                   detail={"person": person.sub, "department": seal.department.code})
            changed = True
    return {"seal": seal.id, "username": person.username, "authorized": True, "changed": changed}


def deauthorize(seal_id, username: str, *, actor: str = "cli") -> dict:
    """Withdraw an official's authorization for a seal."""
    seal = get_seal(seal_id)
    person = find_person(username)
    row = None
    if person is not None:
        row = db.session.execute(
            select(SealAuthorization).join(Official, Official.id == SealAuthorization.official_id)
            .where(SealAuthorization.seal_id == seal.id, Official.person_id == person.id,
                   SealAuthorization.revoked_at.is_(None))).scalar()
    if row is None:
        raise NotFound(_l("%(username)s is not authorized to apply the seal %(id)s.", username=username, id=seal.id),
                       code="not_authorized")
    with transaction():
        row.revoked_at = utcnow()
        record("seal.deauthorized", actor=actor, target=f"seal:{seal.id}", detail={"person": person.sub})
    return {"seal": seal.id, "username": person.username, "authorized": False}


def _set_status(seal: Seal, status: str, action: str, actor: str, detail: dict | None = None) -> None:
    seal.status, seal.status_changed_at = status, utcnow()
    db.session.flush()
    record(action, actor=actor, target=f"seal:{seal.id}", detail=detail)


def suspend(seal_id, *, actor: str = "cli") -> Seal:
    """Stop a seal from being applied until it is resumed (documents sealed before stay valid)."""
    seal = get_seal(seal_id)
    if seal.status == REVOKED:
        raise _refusal("seal_revoked", _l("The seal %(id)s has been revoked.", id=seal.id), 409)
    if seal.status == SUSPENDED:
        raise Conflict(_l("The seal %(id)s is already suspended.", id=seal.id), code="seal_suspended")
    with transaction():
        _set_status(seal, SUSPENDED, "seal.suspended", actor)
    return seal


def resume(seal_id, *, actor: str = "cli") -> Seal:
    """A suspended seal may be applied again (a revoked one never, nor one of a closed department)."""
    seal = get_seal(seal_id)
    if seal.status != SUSPENDED:
        raise Conflict(_l("Only a suspended seal can be resumed; the seal %(id)s is %(status)s.",
                          id=seal.id, status=seal.status), code=f"seal_{seal.status}")
    if seal.department.status != "active":
        raise Conflict(_l("The department %(code)s is not active.", code=seal.department.code),
                       code="department_closed")
    with transaction():
        _set_status(seal, ACTIVE, "seal.resumed", actor)
    return seal


def revoke(seal_id, reason: str = "unspecified", compromised_at: dt.datetime | None = None, *,
           actor: str = "cli") -> Seal:
    """Retire a seal for good and revoke its certificate (RFC 5280 §5.3.1 ``reason``) in the same
    commit, publishing the CRL. ``compromised_at``: when the key is known or suspected to have been
    compromised (CRL invalidityDate, §5.3.2; with reason keyCompromise): signatures from then on are
    invalid even with a trusted time (see ``report.revocation_verdict``)."""
    seal = get_seal(seal_id)
    if compromised_at is not None and reason != "keyCompromise":
        raise DomainError(_l("A compromise date goes with the reason keyCompromise."))
    compromised_at = check_revocation(reason, compromised_at)
    if seal.status == REVOKED:
        raise Conflict(_l("The seal %(id)s has already been revoked.", id=seal.id), code="seal_revoked")
    with transaction():
        cert = db.session.get(Certificate, seal.certificate_id) if seal.certificate_id else None
        revoked = None
        if cert is not None and cert.status != "revoked":
            revoked = revoke_record(cert, reason, actor=actor, invalidity_date=compromised_at)
        seal.revocation_reason = reason
        detail = {"reason": reason, "certificate": cert.serial if cert else None}
        if revoked and revoked["crl_number"]:
            detail["crl_number"] = revoked["crl_number"]
        _set_status(seal, REVOKED, "seal.revoked", actor, detail)
    return seal


def check_may_apply(person: Person | None, seal: Seal | int | None) -> Official:
    """THE rule for applying a seal now: the seal exists, is active, its certificate is neither
    revoked nor outside its validity, and ``person`` is an active official of the seal's department
    holding an authorization for it. Returns that membership; otherwise a DomainError whose ``code``
    is one of seal_not_found, seal_revoked, seal_suspended, seal_expired, not_an_official,
    not_authorized. The caller audits the refusal (with the code) in its own transaction."""
    if seal is not None and not isinstance(seal, Seal):
        seal = db.session.get(Seal, seal) if str(seal).isdigit() else None
    if seal is None:
        raise NotFound(_l("There is no such seal."), code="seal_not_found")
    cert = seal.certificate
    if seal.status == REVOKED or cert is None or cert.status == "revoked":
        raise _refusal("seal_revoked", _l("The seal %(id)s has been revoked.", id=seal.id), 409)
    if seal.status == SUSPENDED:
        raise _refusal("seal_suspended", _l("The seal %(id)s is suspended.", id=seal.id), 409)
    now = utcnow()
    if not cert.not_before <= now < cert.not_after:
        raise _refusal("seal_expired", _l("The seal %(id)s's certificate is not valid now.", id=seal.id), 409)
    rows = active_memberships(person.id, seal.department.code) if person is not None and person.active else []
    if not rows:
        raise _refusal("not_an_official", _l("Only an official of the seal's department can apply it."))
    official = rows[0][0]
    granted = db.session.execute(select(SealAuthorization.id).where(
        SealAuthorization.seal_id == seal.id, SealAuthorization.official_id == official.id,
        SealAuthorization.revoked_at.is_(None))).first()
    if granted is None:
        raise _refusal("not_authorized", _l("You are not authorized to apply the seal %(id)s.", id=seal.id))
    return official


def seals_for(person: Person) -> list[Seal]:
    """The seals ``person`` may apply now (those ``check_may_apply`` allows)."""
    candidates = db.session.execute(
        select(Seal).join(SealAuthorization, SealAuthorization.seal_id == Seal.id)
        .join(Official, Official.id == SealAuthorization.official_id)
        .where(Official.person_id == person.id, SealAuthorization.revoked_at.is_(None), Seal.status == ACTIVE)
        .order_by(Seal.id)).scalars().unique().all()
    allowed = []
    for seal in candidates:
        try:
            check_may_apply(person, seal)
        except DomainError:
            continue
        allowed.append(seal)
    return allowed


def credential_for(seal: Seal) -> SealCredential:
    """The seal's key (decrypted for one signing operation), certificate and the hub's chain."""
    pem = protector().decrypt(seal.key_encrypted, FIELD_SEAL_KEY)
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    return SealCredential(seal_id=seal.id, name=seal.name, seal_type=seal.type, department=seal.department.name,
                          private_key=key, certificate=x509.load_pem_x509_certificate(seal.certificate.pem.encode()),
                          chain=tuple(a.certificate for a in authorities().chain()), image_png=seal.image_png)


def authorized_usernames(seal: Seal) -> list[str]:
    return list(db.session.execute(
        select(Person.username).join(Official, Official.person_id == Person.id)
        .join(SealAuthorization, SealAuthorization.official_id == Official.id)
        .where(SealAuthorization.seal_id == seal.id, SealAuthorization.revoked_at.is_(None))
        .order_by(Person.username)).scalars())


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value else None


def describe(seal: Seal, *, with_officials: bool = False) -> dict:
    """A seal as JSON (operators' listing, the officials' tool); no key, no image bytes."""
    cert = seal.certificate
    out = {"id": seal.id, "name": seal.name, "type": seal.type, "department": seal.department.code,
           "department_name": seal.department.name, "status": seal.status,
           "certificate": {"serial": cert.serial, "not_before": _iso(cert.not_before),
                           "not_after": _iso(cert.not_after), "status": cert.status} if cert else None,
           "image": seal.image_origin, "created_at": _iso(seal.created_at),
           "status_changed_at": _iso(seal.status_changed_at), "revocation_reason": seal.revocation_reason}
    if with_officials:
        out["authorized"] = authorized_usernames(seal)
    return out
