"""What a seal verifier trusts, in one place: the hub's root CA as the only trust anchor, the
issuing CA as an intermediate, and the hub's own certificate records for revocation.

pyHanko/certvalidator check the path and the signatures; revocation is decided by the hub's
records (the same ones its CRLs are built from) through ``report.revocation_verdict``, so there is
one rule for "revoked before or after sealing". Nothing is fetched over the network.
"""
from __future__ import annotations

import datetime as dt

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko_certvalidator import ValidationContext
from sqlalchemy import select

from ..db import db
from ..pki.models import Certificate
from ..pki.profile import fingerprint
from ..pki.service import authorities
from .models import Seal


def to_asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def from_asn1(cert: asn1_x509.Certificate) -> x509.Certificate:
    return x509.load_der_x509_certificate(cert.dump())


def validation_context(*, moment: dt.datetime | None = None) -> ValidationContext:
    """A certvalidator context anchored at the hub's root (path and signature checks only; see the
    module docstring for revocation). ``moment`` validates as of a past time (a trusted signing time)."""
    auths = authorities()
    chain = auths.chain()  # issuing first, root last
    return ValidationContext(trust_roots=[to_asn1(chain[-1].certificate)],
                             other_certs=[to_asn1(a.certificate) for a in chain[:-1]],
                             allow_fetching=False, revocation_mode="soft-fail", moment=moment)


def chain_certificates() -> list[x509.Certificate]:
    """The hub's CA chain, issuing first, root last (what verifiers embed or are given)."""
    return [a.certificate for a in authorities().chain()]


def certificate_record(cert: x509.Certificate) -> Certificate | None:
    """The hub's record of a certificate it issued (status, revocation time, reason, invalidity date)."""
    return db.session.execute(select(Certificate).where(Certificate.fingerprint == fingerprint(cert))).scalar()


def seal_for(cert: x509.Certificate) -> tuple[Seal | None, Certificate | None]:
    """The seal whose document-signing certificate this is, and the certificate's record."""
    row = certificate_record(cert)
    if row is None or row.usage != "seal":
        return None, row
    seal = db.session.execute(select(Seal).where(Seal.certificate_id == row.id)).scalar()
    return seal, row
