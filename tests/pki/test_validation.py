"""Path validation for certificate login (RFC 5280 §6, via cryptography's ClientVerifier) with one
specific reason per refusal, and the mapping of a certificate to its official."""
from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.pki.conftest import CA_USAGE, NOW, SIGNING, craft

@pytest.fixture
def issuing(ca):
    return ca.issuing.certificate, ca.issuing.private_key(None)


def validate(*a, **kw):
    from idp.pki.validation import validate_certificate

    return validate_certificate(*a, **kw)


def test_issued_certificate_is_valid_and_mapped_to_its_official(issued, official, ca):
    serial, cert, _ = issued
    check = validate(cert)
    assert check.valid and check.reason is None and check.message is None
    assert check.official.id == official.id and check.person.username == "wangwu"
    assert check.record.serial == serial and check.hub_issued
    assert [c.subject for c in check.chain] == [cert.subject, ca.issuing.certificate.subject,
                                                ca.root.certificate.subject]


def test_pem_and_der_input_and_a_supplied_chain(issued, ca):
    _, cert, _ = issued
    assert validate(cert.public_bytes(serialization.Encoding.PEM)).valid
    assert validate(cert.public_bytes(serialization.Encoding.DER)).valid
    assert validate(cert, [ca.issuing.certificate, ca.root.certificate]).valid


def test_expired_and_not_yet_valid(official, issuing):
    """RFC 5280 §6.1.3 (a)(2): the current time must be within the validity period."""
    expired, _ = craft(*issuing, not_before=NOW - dt.timedelta(days=30), not_after=NOW - dt.timedelta(days=1))
    check = validate(expired)
    assert not check.valid and check.reason == "expired"
    future, _ = craft(*issuing, not_before=NOW + dt.timedelta(days=1), not_after=NOW + dt.timedelta(days=30))
    assert validate(future).reason == "not_yet_valid"
    # and a valid certificate judged at a moment outside its validity
    ok, _ = craft(*issuing)
    assert validate(ok, at=NOW + dt.timedelta(days=60)).reason == "expired"


@pytest.mark.parametrize("kw, detail", [
    ({"eku": [ExtendedKeyUsageOID.SERVER_AUTH]}, "clientAuth"),
    ({"eku": None}, "clientAuth"),
    ({"key_usage": {**SIGNING, "digital_signature": False, "content_commitment": False,
                    "key_encipherment": True}}, "digitalSignature"),
])
def test_wrong_purpose(official, issuing, kw, detail):
    """RFC 5280 §4.2.1.12: clientAuth is required for TLS client authentication; §4.2.1.3 keyUsage
    must allow digitalSignature."""
    cert, _ = craft(*issuing, **kw)
    check = validate(cert)
    assert check.reason == "wrong_purpose" and detail in check.detail


def test_unknown_ca(official):
    """A certificate from a CA the hub does not trust, even one copying the hub CA's name."""
    from idp.pki.service import authorities

    other_key = ec.generate_private_key(ec.SECP256R1())
    other_root, _ = craft(None, None, ca=True, key=other_key, eku=None, key_usage=CA_USAGE)
    cert, _ = craft(other_root, other_key)
    assert validate(cert).reason == "unknown_ca"
    assert validate(cert, [other_root]).reason == "unknown_ca"  # a supplied chain does not make it trusted
    impostor = x509.load_pem_x509_certificate(authorities().issuing.pem.encode())
    forged, _ = craft(impostor, other_key)  # names the hub CA as issuer, signed by another key
    assert validate(forged).reason == "unknown_ca"


def test_broken_path_is_invalid(official, issuing):
    """Path validation (RFC 5280 §6.1.3) refuses an unknown critical extension: reason ``invalid``."""
    odd = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00")
    cert, _ = craft(*issuing, extra=[(odd, True)])
    check = validate(cert)
    assert check.reason == "invalid" and "path validation failed" in check.detail


def test_garbage_is_invalid(ca):
    assert validate(b"not a certificate").reason == "invalid"
    assert validate("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").reason == "invalid"


def test_revoked_with_reason(runner, issued):
    serial, cert, _ = issued
    runner.invoke(args=["pki", "revoke", serial, "--reason", "affiliationChanged"])
    check = validate(cert)
    assert check.reason == "revoked" and check.revocation_reason == "affiliationChanged"


def test_unmapped(runner, issued, issuing, official):
    """Signed by the hub but unknown to its records, or the holder is no longer an active official."""
    from idp.accounts.models import Person
    from idp.db import db

    stray, _ = craft(*issuing)
    check = validate(stray)
    assert check.reason == "unmapped" and "records" in check.detail
    from idp.accounts.officials import add_official, remove_official

    _, cert, _ = issued
    remove_official(username="wangwu", department="scjgj")
    assert validate(cert).reason == "unmapped"
    add_official(username="wangwu", department="scjgj")
    assert validate(cert).valid
    db.session.get(Person, official.person_id).status = "disabled"
    db.session.commit()
    assert validate(cert).reason == "unmapped"


def test_messages_are_translated(app, issuing, official):
    """The reason is shown to people in their language (zh by default)."""
    expired, _ = craft(*issuing, not_before=NOW - dt.timedelta(days=30), not_after=NOW - dt.timedelta(days=1))
    from flask_babel import refresh

    check = validate(expired)
    with app.test_request_context("/?lang=en"):
        refresh()  # the locale is cached in the (shared) app context
        assert str(check.message) == "The certificate has expired."
    with app.test_request_context("/"):
        refresh()
        assert str(check.message) == "证书已过期。"
