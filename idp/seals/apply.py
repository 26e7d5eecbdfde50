"""Applying a seal: who may, on what proof, and the record of every application.

The rule (issue 6): only an official authorized for the seal (``service.check_may_apply``), signed in
at level 3 with a certificate that is still valid *now*, may apply it:

- through the API (``sealctl``): a DPoP-bound level-3 token (``oauth.api.dpop_principal``) whose key
  is the key of one of the person's unrevoked, unexpired login certificates — so revoking the
  certificate stops its tokens at once;
- in the browser: an SSO session whose last certificate sign-in (``SsoSession.certificate_fingerprint``)
  is at most ``SEAL_FRESH_LOGIN_SECONDS`` old and whose certificate is still unrevoked.

The hub holds the seal key and signs; each application is a ``SealApplication`` row plus a
``seal.applied`` event on the hash-chained audit log, in one transaction after signing. Every refusal
is audited (``seal.apply_refused``, with a reason code) and nothing is signed.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from asn1crypto import cms as asn1_cms
from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from ..accounts.models import Department, Person
from ..audit.service import record
from ..db import db, transaction, utcnow
from ..errors import DomainError
from ..ops.metrics import record_seal_application
from ..pki.ca import CaError
from ..pki.models import Certificate
from ..pki.service import key_thumbprint
from . import service
from .credential import Approver
from .models import Seal, SealApplication

API, BROWSER = "api", "browser"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Proof:
    """How the official proved who they are for this application: the login certificate behind it."""

    channel: str                         # api | browser
    certificate: Certificate | None      # the hub's record of the login certificate


@dataclass(frozen=True)
class Applied:
    application: SealApplication
    output: bytes                        # the sealed PDF, or the detached CMS (DER)


class ApplyRefused(DomainError):
    status = 403


def certificate_for_token(person: Person, jkt: str) -> Certificate | None:
    """The person's login certificate whose key the DPoP-bound token is bound to (RFC 9449 §6.1:
    ``cnf.jkt`` is that key's JWK thumbprint), if any — revoked ones included, so the refusal can
    say why."""
    rows = db.session.execute(select(Certificate).where(
        Certificate.person_id == person.id, Certificate.usage == "login")
        .order_by(Certificate.id.desc())).scalars().all()
    for row in rows:
        try:
            if hmac.compare_digest(key_thumbprint(row.pem), jkt):
                return row
        except (ValueError, TypeError):
            continue
    return None


def certificate_for_session(session) -> Certificate | None:
    if not session.certificate_fingerprint:
        return None
    return db.session.execute(select(Certificate).where(
        Certificate.fingerprint == session.certificate_fingerprint)).scalar()


def _refuse(person: Person, seal_id, kind: str, channel: str, code: str, message):
    with transaction():
        record("seal.apply_refused", actor=f"person:{person.sub}", target=f"seal:{seal_id}", outcome="refused",
               detail={"reason": code, "kind": kind, "channel": channel})
    _count(kind, "refused")
    raise ApplyRefused(message, code=code)


def _count(kind: str, outcome: str) -> None:
    record_seal_application(kind, outcome)


def check_fresh_browser_login(person: Person, session) -> Proof:
    """The browser rule: a certificate sign-in at most SEAL_FRESH_LOGIN_SECONDS ago."""
    max_age = int(current_app.config["SEAL_FRESH_LOGIN_SECONDS"])
    if (session is None or session.person_id != person.id or "swk" not in (session.amr or [])
            or session.certificate_fingerprint is None
            or session.auth_time is None or utcnow() - session.auth_time > timedelta(seconds=max_age)):
        raise ApplyRefused(_l("Sign in with your certificate again (at most %(minutes)d minutes before sealing).",
                              minutes=max_age // 60),
                           code="fresh_certificate_login_required", status=401)
    return Proof(BROWSER, certificate_for_session(session))


def _check(person: Person, seal_id: int, kind: str, proof: Proof) -> tuple[Seal, object]:
    cert = proof.certificate
    now = utcnow()
    if cert is None:
        _refuse(person, seal_id, kind, proof.channel, "no_certificate",
                _l("This needs a sign-in with your official certificate."))
    if cert.status == "revoked":
        _refuse(person, seal_id, kind, proof.channel, "certificate_revoked",
                _l("Your certificate has been revoked; you cannot apply seals with it."))
    if cert.not_after <= now or cert.person_id != person.id:
        _refuse(person, seal_id, kind, proof.channel, "certificate_expired",
                _l("Your certificate has expired."))
    seal = db.session.get(Seal, seal_id)
    if seal is None:
        _refuse(person, seal_id, kind, proof.channel, "seal_not_found",
                _l("There is no seal with the number %(id)s.", id=seal_id))
    try:
        official = service.check_may_apply(person, seal)
    except DomainError as exc:
        _refuse(person, seal_id, kind, proof.channel, exc.code, exc.message)
    return seal, official


def _approver(person: Person, official) -> Approver:
    dept = db.session.get(Department, official.department_id)
    return Approver(name=(person.name or person.username).strip(), username=person.username,
                    department=dept.name if dept else "", title=getattr(official, "title", None) or None)


def _tsa_serial(signed_data: asn1_cms.SignedData) -> str | None:
    """The serial of the signature timestamp (RFC 3161 §2.4.2 TSTInfo.serialNumber) in the signer info."""
    try:
        for attr in signed_data["signer_infos"][0]["unsigned_attrs"] or []:
            if attr["type"].native == "signature_time_stamp_token":
                tst = attr["values"][0]["content"]["encap_content_info"]["content"].parsed
                return format(tst["serial_number"].native, "x")
    except (KeyError, IndexError, ValueError, TypeError):
        return None
    return None


def _store(person: Person, seal: Seal, official, *, kind: str, channel: str, document: bytes | str,
           output: bytes, signed_data: asn1_cms.SignedData, signature_der: bytes) -> SealApplication:
    doc_digest = document if isinstance(document, str) else hashlib.sha256(document).hexdigest()
    app_row = SealApplication(seal_id=seal.id, person_id=person.id, official_id=official.id, kind=kind,
                              channel=channel, document_sha256=doc_digest,
                              result_sha256=hashlib.sha256(output).hexdigest(), signature=signature_der,
                              tsa_serial=_tsa_serial(signed_data), at=utcnow())
    with transaction():
        db.session.add(app_row)
        db.session.flush()
        record("seal.applied", actor=f"person:{person.sub}", target=f"seal:{seal.id}",
               detail={"application": app_row.id, "kind": kind, "channel": channel,
                       "document_sha256": app_row.document_sha256, "result_sha256": app_row.result_sha256,
                       "tsa_serial": app_row.tsa_serial})
    _count(kind, "applied")
    return app_row


@contextmanager
def _hub_keys():
    """The CA or TSA keys missing or unreadable (``idp init`` not run, wrong passphrase): a clear 503,
    nothing signed or recorded."""
    try:
        yield
    except CaError as exc:
        log.error("sealing unavailable: %s", exc)
        raise DomainError(_l("Sealing is unavailable: the hub's signing keys are not set up. Tell the operator."),
                          code="temporarily_unavailable", status=503) from exc


def apply_pdf(person: Person, seal_id: int, data: bytes, *, proof: Proof, page: int | None = None,
              x: float | None = None, y: float | None = None) -> Applied:
    """Seal a PDF: a visible stamp and a PAdES signature with the hub's trusted time."""
    from . import pdf, tsa  # pyHanko: imported by processes that seal, not by every idp command

    seal, official = _check(person, seal_id, "pdf", proof)
    with _hub_keys():
        output, content_info = pdf.seal_pdf_keeping_signature(
            data, service.credential_for(seal), _approver(person, official), timestamper=tsa.hub_timestamper(),
            page=page, x=x, y=y)
    signed_data = content_info["content"]
    signature_der = content_info.dump()
    row = _store(person, seal, official, kind="pdf", channel=proof.channel, document=data, output=output,
                 signed_data=signed_data, signature_der=signature_der)
    return Applied(row, output)


def sign_file(person: Person, seal_id: int, data: bytes, *, proof: Proof) -> Applied:
    """A detached CMS signature (DER) over the exact bytes of any file."""
    from . import cms, tsa  # pyHanko: imported by processes that seal, not by every idp command

    seal, official = _check(person, seal_id, "cms", proof)
    with _hub_keys():
        signature = cms.sign_detached(data, service.credential_for(seal), _approver(person, official),
                                      timestamper=tsa.hub_timestamper())
    signed_data = asn1_cms.ContentInfo.load(signature)["content"]
    row = _store(person, seal, official, kind="cms", channel=proof.channel, document=data, output=signature,
                 signed_data=signed_data, signature_der=signature)
    return Applied(row, signature)


def stamp_boxes(seals: list[Seal]) -> dict[str, dict[str, list[float]]]:
    """For the sealing page's placer: each seal's stamp box on a page of each rotation, ``{seal id:
    {"0"|"90"|"180"|"270": [width, height]}}`` in the page's own points, from ``pdf.stamp_size`` (the
    rule the signer sizes the widget with), so the outline is the box the PDF will get without the page
    script knowing the rule. A seal whose image cannot be read is left out (sealing says why)."""
    from . import pdf  # pyHanko: imported by processes that seal, not by every idp command

    boxes = {}
    for seal in seals:
        try:
            size = pdf.image_size(seal.image_png)
        except DomainError:
            continue
        boxes[str(seal.id)] = {str(r): [round(v, 2) for v in pdf.stamp_size(size, r)] for r in (0, 90, 180, 270)}
    return boxes
