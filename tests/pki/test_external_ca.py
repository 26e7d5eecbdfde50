"""External (government) CAs trusted for officials' certificates (IDP_PKI_EXTERNAL_CA_FILE): mapped to
an official by registered fingerprint or by a configured subject attribute; the hub's own path
validation (RFC 5280 §6) applies to them too."""
from __future__ import annotations

import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.pki.conftest import CA_USAGE, craft, make_official


def validate(*a, **kw):
    from idp.pki.validation import validate_certificate

    return validate_certificate(*a, **kw)


@pytest.fixture
def external_ca(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    root, _ = craft(None, None, ca=True, key=key, eku=None,
                    subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "省政务CA")]),
                    key_usage=CA_USAGE)
    path = tmp_path / "gov-ca.pem"
    path.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    return root, key, path


@pytest.fixture
def app_config(tmp_path):
    return {"PKI_EXTERNAL_CA_FILE": str(tmp_path / "gov-ca.pem"), "PKI_EXTERNAL_SUBJECT_ATTRIBUTE": "serialNumber"}


def test_external_certificate_mapped_by_registered_fingerprint(external_ca, runner, official, tmp_path):
    root, key, _ = external_ca
    cert, _ = craft(root, key)
    assert validate(cert).reason == "unmapped"
    (tmp_path / "gov.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    r = runner.invoke(args=["pki", "register", "--username", "wangwu", "--cert", str(tmp_path / "gov.pem")])
    assert r.exit_code == 0, r.output
    check = validate(cert)
    assert check.valid and check.official.id == official.id and not check.hub_issued
    again = runner.invoke(args=["pki", "register", "--username", "wangwu", "--cert", str(tmp_path / "gov.pem")])
    assert again.exit_code != 0 and "already" in again.output
    assert runner.invoke(args=["pki", "revoke", json.loads(r.stdout)["serial"]]).exit_code == 0
    assert validate(cert).reason == "revoked"


def test_register_refuses_untrusted_or_hub_certificates(external_ca, runner, issued, tmp_path):
    other = ec.generate_private_key(ec.SECP256R1())
    stranger_root, _ = craft(None, None, ca=True, key=other, eku=None)
    stranger, _ = craft(stranger_root, other)
    (tmp_path / "s.pem").write_bytes(stranger.public_bytes(serialization.Encoding.PEM))
    r = runner.invoke(args=["pki", "register", "--username", "wangwu", "--cert", str(tmp_path / "s.pem")])
    assert r.exit_code != 0 and "unknown_ca" in r.output
    _, ours, _ = issued
    (tmp_path / "o.pem").write_bytes(ours.public_bytes(serialization.Encoding.PEM))
    r = runner.invoke(args=["pki", "register", "--username", "wangwu", "--cert", str(tmp_path / "o.pem")])
    assert r.exit_code != 0 and "already known" in r.output


def test_external_certificate_mapped_by_subject_attribute(external_ca, ca):
    """The configured subject attribute carries the resident ID number (GB 11643); it finds the person
    through the blind index, never by a plaintext column."""
    from idp.accounts.models import Person
    from idp.accounts.protection import protector
    from idp.db import db

    official = make_official(username="zhaoliu", name="赵六")
    person = db.session.get(Person, official.person_id)
    person.id_number_index = protector().blind_index("11010519491231002X", "id_number")
    db.session.commit()
    root, key, _ = external_ca
    named = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "赵六"),
                       x509.NameAttribute(NameOID.SERIAL_NUMBER, "11010519491231002x")])
    cert, _ = craft(root, key, subject=named)
    check = validate(cert)
    assert check.valid and check.person.username == "zhaoliu"
    nobody = x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, "110105194912310021")])  # bad check digit
    assert validate(craft(root, key, subject=nobody)[0]).reason == "unmapped"
