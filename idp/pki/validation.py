"""Is this client certificate an official's valid login certificate? One answer with one reason.

RFC 5280 §6 path validation is ``cryptography.x509.verification`` (``ClientVerifier`` over a
``Store`` of the hub's root and any external CAs); around it, checks that name the reason a person
can act on. The first that applies is the answer:

``invalid``        not a certificate (later also: the path does not validate — bad signature, CA
                   constraints, unknown critical extension, an expired CA, …)
``unknown_ca``     no CA we trust issued it
``wrong_purpose``  a certificate the hub issued for something else (a seal's or the TSA's: usage
                   other than "login"), no extendedKeyUsage clientAuth (RFC 5280 §4.2.1.12), keyUsage
                   without digitalSignature (§4.2.1.3), or a CA certificate
``not_yet_valid`` / ``expired``  outside its validity (§4.1.2.5)
``revoked``        revoked here (the hub's records, the same data its CRLs publish), with the reason
``unmapped``       no active official holds it (unknown fingerprint, membership ended, account disabled)

Callers (certificate login behind nginx, the officials' tool, mTLS/DPoP binding) pass the leaf and
any chain they received and use ``CertificateCheck``: ``valid``, ``reason``, ``message`` (for people),
``detail`` (for logs: never personal data), and the mapped ``person``/``official``/``record``.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import Criticality, ExtensionPolicy, PolicyBuilder, Store, VerificationError
from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from ..accounts.models import Official, Person
from ..accounts.officials import active_memberships
from ..db import db
from . import external
from .ca import CaError, load_authorities
from .models import Certificate
from .profile import fingerprint

log = logging.getLogger(__name__)

MESSAGES = {
    "invalid": _l("This is not a valid certificate."),
    "unknown_ca": _l("The certificate was not issued by a certificate authority this service trusts."),
    "wrong_purpose": _l("The certificate is not meant for signing in."),
    "not_yet_valid": _l("The certificate is not valid yet."),
    "expired": _l("The certificate has expired."),
    "revoked": _l("The certificate has been revoked."),
    "unmapped": _l("The certificate does not belong to an official of this service."),
}


@dataclass(frozen=True)
class CertificateCheck:
    valid: bool
    reason: str | None = None
    detail: str = ""
    certificate: x509.Certificate | None = None
    chain: list[x509.Certificate] = field(default_factory=list)  # verified path, leaf first
    record: Certificate | None = None
    official: Official | None = None
    person: Person | None = None
    revocation_reason: str | None = None

    @property
    def message(self):
        """A sentence for the person (translated when rendered); None when valid."""
        return MESSAGES[self.reason] if self.reason else None

    @property
    def hub_issued(self) -> bool:
        return self.record is not None and self.record.origin != "external"


def load_certificate(data: bytes | str) -> x509.Certificate:
    """A certificate from PEM or DER; ValueError otherwise."""
    if isinstance(data, str):
        data = data.encode()
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def _refuse(reason: str, detail: str, cert=None, **kw) -> CertificateCheck:
    return CertificateCheck(False, reason, detail, cert, **kw)


def _trust() -> tuple[list[x509.Certificate], list[x509.Certificate]]:
    """(anchors, the hub's intermediates): our root and the external CAs; our issuing CAs."""
    try:
        auths = load_authorities(Path(current_app.config["KEYS_DIR"]))
        ours_roots = [a.certificate for a in auths.by_id.values() if a.role == "root"]
        ours_issuing = [a.certificate for a in auths.by_id.values() if a.role != "root"]
    except CaError:
        ours_roots, ours_issuing = [], []
    try:
        theirs = external.anchors()
    except external.ExternalCaError as exc:  # a broken bundle must not stop the hub's own officials
        log.error("external CAs not trusted: %s", exc)
        theirs = []
    return ours_roots + theirs, ours_issuing


def _issued_by(cert: x509.Certificate, candidate: x509.Certificate) -> bool:
    if cert.issuer != candidate.subject:
        return False
    try:
        cert.verify_directly_issued_by(candidate)
        return True
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False


def _purpose_problem(cert: x509.Certificate) -> str | None:
    ext = cert.extensions
    try:
        eku = ext.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return "no extendedKeyUsage (clientAuth required)"
    if ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        return "extendedKeyUsage lacks clientAuth"
    try:
        if not ext.get_extension_for_class(x509.KeyUsage).value.digital_signature:
            return "keyUsage lacks digitalSignature"
    except x509.ExtensionNotFound:
        pass  # no keyUsage: any use (RFC 5280 §4.2.1.3)
    try:
        if ext.get_extension_for_class(x509.BasicConstraints).value.ca:
            return "a CA certificate"
    except x509.ExtensionNotFound:
        pass
    return None


def _recorded_usage(cert: x509.Certificate) -> str | None:
    """What the hub issued this certificate for (login, seal, tsa), if it did. A seal's or the TSA's
    certificate never signs anyone in, whatever its extensions say."""
    return db.session.execute(select(Certificate.usage).where(Certificate.fingerprint == fingerprint(cert))).scalar()


def _verifier(anchors: list[x509.Certificate], at: dt.datetime):
    # Client certificates need no subjectAltName here: the holder is found by fingerprint, not by name.
    ee = ExtensionPolicy.webpki_defaults_ee().may_be_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)
    return (PolicyBuilder().store(Store(anchors)).time(at)
            .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee)
            .build_client_verifier())


def _timing(cert: x509.Certificate, now: dt.datetime) -> str | None:
    if now < cert.not_valid_before_utc:
        return "not_yet_valid"
    if now > cert.not_valid_after_utc:
        return "expired"
    return None


def _clamp(now: dt.datetime, cert: x509.Certificate) -> dt.datetime:
    """A moment inside the leaf's validity, so that path errors and validity errors are told apart."""
    return min(max(now, cert.not_valid_before_utc), cert.not_valid_after_utc)


def validate_certificate(leaf: x509.Certificate | bytes | str, chain: list = (), *,
                         at: dt.datetime | None = None) -> CertificateCheck:
    """Validate an official's login certificate (RFC 5280 §6) and find whose it is."""
    try:
        cert = leaf if isinstance(leaf, x509.Certificate) else load_certificate(leaf)
        supplied = [c if isinstance(c, x509.Certificate) else load_certificate(c) for c in chain]
        cert.extensions  # noqa: B018 - malformed or duplicate extensions raise here
    except (ValueError, TypeError) as exc:
        return _refuse("invalid", f"not a certificate: {exc}")
    now = at or dt.datetime.now(dt.timezone.utc)
    anchors, ours = _trust()
    known = anchors + ours
    issuer_known = any(_issued_by(cert, c) for c in known)
    if not issuer_known and not any(_issued_by(cert, c) for c in supplied):
        return _refuse("unknown_ca", "no trusted or supplied CA issued it", cert)
    if issuer_known and (usage := _recorded_usage(cert)) not in (None, "login"):
        return _refuse("wrong_purpose", f"a {usage} certificate of the hub, not a login certificate", cert)
    if problem := _purpose_problem(cert):
        return _refuse("wrong_purpose", problem, cert)
    timing = _timing(cert, now)
    if timing and issuer_known:  # signed by a CA we trust (checked above): its validity is what matters
        return _refuse(timing, f"outside the validity period ({timing})", cert)
    try:
        verified = _verifier(anchors, _clamp(now, cert)).verify(cert, [*ours, *supplied])
    except VerificationError as exc:
        if issuer_known:
            return _refuse("invalid", f"path validation failed: {exc}", cert)
        return _refuse("unknown_ca", f"the supplied chain leads to no trusted CA: {exc}", cert)
    path = list(verified.chain)
    if timing:
        return _refuse(timing, f"outside the validity period ({timing})", cert, chain=path)
    return _map(cert, path)


def _map(cert: x509.Certificate, path: list[x509.Certificate]) -> CertificateCheck:
    row = db.session.execute(select(Certificate).where(Certificate.fingerprint == fingerprint(cert))
                             ).scalar_one_or_none()
    if row is not None and row.status == "revoked":
        return _refuse("revoked", f"revoked: {row.revocation_reason}", cert, chain=path, record=row,
                       revocation_reason=row.revocation_reason)
    if row is not None:
        official, why = row.official, "the staff membership it was issued for no longer exists"
    elif _hub_issued(path):
        official, why = None, "signed by the hub CA but not in its records"
    else:
        official, why = external.official_by_subject(cert)
    if official is None:
        return _refuse("unmapped", why, cert, chain=path, record=row)
    person = db.session.get(Person, official.person_id)
    if official.id not in {o.id for o, _ in active_memberships(official.person_id)}:
        return _refuse("unmapped", "the staff membership has ended", cert, chain=path, record=row)
    if person is None or not person.active:
        return _refuse("unmapped", "the account is disabled", cert, chain=path, record=row)
    return CertificateCheck(True, None, "", cert, path, row, official, person)


def _hub_issued(path: list[x509.Certificate]) -> bool:
    try:
        ours = load_authorities(Path(current_app.config["KEYS_DIR"])).by_id.values()
    except CaError:
        return False
    return len(path) > 1 and any(path[1] == a.certificate for a in ours)
