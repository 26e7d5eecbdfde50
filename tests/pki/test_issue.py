"""`idp pki issue`: officials only, a PKCS#12 file (RFC 7292) or a certificate for a PKCS#10 request
(RFC 2986), with the profile of RFC 5280 §4.2.1 that openssl verifies against the hub's chain."""
from __future__ import annotations

import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.pki.conftest import P12_PASSWORD, issue_p12, make_official, openssl

def make_csr(key=None, cn="anything"):
    key = key or ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
           .sign(key, hashes.SHA256()))
    return key, csr.public_bytes(serialization.Encoding.PEM)


def test_pkcs12_opens_with_openssl_and_verifies_against_the_chain(runner, official, chain_file, tmp_path):
    """The PKCS#12 opens with `openssl pkcs12` and its password (not without it), holds the key, the
    certificate and the chain; `openssl verify -x509_strict -CAfile <chain>` accepts the certificate."""
    r, p12 = issue_p12(runner, tmp_path)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert set(out) >= {"serial", "subject", "not_after"}
    assert p12.stat().st_mode & 0o077 == 0
    leaf = tmp_path / "leaf.pem"
    opened = openssl("pkcs12", "-in", str(p12), "-passin", f"pass:{P12_PASSWORD}", "-nokeys", "-clcerts",
                     "-out", str(leaf))
    assert opened.returncode == 0, opened.stderr
    wrong = openssl("pkcs12", "-in", str(p12), "-passin", "pass:not-the-password", "-nokeys", "-out",
                    str(tmp_path / "x.pem"))
    assert wrong.returncode != 0
    verified = openssl("verify", "-x509_strict", "-CAfile", str(chain_file), str(leaf))
    assert verified.returncode == 0 and b": OK" in verified.stdout, verified.stdout + verified.stderr
    key, cert, chain = pkcs12.load_key_and_certificates(p12.read_bytes(), P12_PASSWORD.encode())
    assert cert.public_key() == key.public_key()
    assert format(cert.serial_number, "x") == out["serial"]
    assert [c.subject for c in chain] == [c.subject for c in x509.load_pem_x509_certificates(chain_file.read_bytes())]


def test_pkcs12_protection(runner, official, tmp_path, production_pkcs12):
    """RFC 7292 with RFC 8018 PBES2: AES-256-CBC for key and certificates, PBKDF2-HMAC-SHA256 with
    600,000 iterations, an HMAC-SHA-256 integrity MAC (not the legacy RC2/3DES/SHA-1 defaults)."""
    r, p12 = issue_p12(runner, tmp_path)
    assert r.exit_code == 0, r.output
    info = openssl("pkcs12", "-in", str(p12), "-passin", f"pass:{P12_PASSWORD}", "-info", "-noout")
    text = (info.stdout + info.stderr).decode()
    assert info.returncode == 0, text
    assert "MAC: sha256" in text and "PBES2" in text and "AES-256-CBC" in text
    assert "Iteration 600000" in text and "RC2" not in text and "3DES" not in text


def test_certificate_profile(runner, official, tmp_path):
    """Subject C=CN, O, OU=department, CN=name as UTF8String; keyUsage digitalSignature+nonRepudiation
    (critical), EKU clientAuth only, CRL distribution point and caIssuers at the hub, CSPRNG serial
    (positive, ≤ 20 octets), lifetime IDP_PKI_CERT_DAYS (RFC 5280 §4.1.2.2, §4.2.1.3, §4.2.1.12-13, §4.2.2.1)."""
    from idp.pki.service import authorities

    r, p12 = issue_p12(runner, tmp_path)
    assert r.exit_code == 0, r.output
    _, cert, _ = pkcs12.load_key_and_certificates(p12.read_bytes(), P12_PASSWORD.encode())
    subject = {a.oid: a for a in cert.subject}
    assert subject[NameOID.COMMON_NAME].value == "王五"
    assert subject[NameOID.ORGANIZATIONAL_UNIT_NAME].value == "本溪市市场监督管理局"
    assert subject[NameOID.ORGANIZATION_NAME].value == "本溪市人民政府"
    assert subject[NameOID.COUNTRY_NAME].value == "CN"
    assert subject[NameOID.COMMON_NAME]._type == x509.name._ASN1Type.UTF8String
    assert json.loads(r.stdout)["subject"] == cert.subject.rfc4514_string()
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and ku.value.content_commitment
    assert not (ku.value.key_encipherment or ku.value.key_cert_sign or ku.value.crl_sign)
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    issuing = authorities().issuing
    dp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert [n.value for n in dp[0].full_name] == [f"http://127.0.0.1:5000/pki/crl/{issuing.id}.crl"]
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert [(d.access_method, d.access_location.value) for d in aia] == [
        (x509.oid.AuthorityInformationAccessOID.CA_ISSUERS, f"http://127.0.0.1:5000/pki/ca/{issuing.id}.crt")]
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == issuing.certificate.extensions.get_extension_for_class(
        x509.SubjectKeyIdentifier).value.digest
    assert 0 < cert.serial_number and len(cert.serial_number.to_bytes(21, "big").lstrip(b"\0")) <= 20
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert 365 * 86400 <= lifetime.total_seconds() <= 365 * 86400 + 600


def test_csr_path_keeps_the_key_with_the_official(runner, official, chain_file, tmp_path):
    """With --csr the hub certifies the request's key (its self-signature checked) and writes the
    certificate then the issuing CA; the requested subject is ignored for the official's name."""
    key, csr = make_csr(cn="someone else")
    (tmp_path / "req.csr").write_bytes(csr)
    out = tmp_path / "cert.pem"
    r = runner.invoke(args=["pki", "issue", "--username", "wangwu", "--csr", str(tmp_path / "req.csr"),
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    certs = x509.load_pem_x509_certificates(out.read_bytes())
    assert certs[0].public_key() == key.public_key()
    assert certs[0].subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "王五"
    assert certs[1].subject == certs[0].issuer
    verified = openssl("verify", "-x509_strict", "-CAfile", str(chain_file), str(out))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(r.stdout)["serial"] == format(certs[0].serial_number, "x")


def test_csr_in_der_is_accepted(runner, official, tmp_path):
    _, pem = make_csr()
    der = x509.load_pem_x509_csr(pem).public_bytes(serialization.Encoding.DER)
    (tmp_path / "req.der").write_bytes(der)
    r = runner.invoke(args=["pki", "issue", "--username", "wangwu", "--csr", str(tmp_path / "req.der"),
                            "--out", str(tmp_path / "c.pem")])
    assert r.exit_code == 0, r.output


def _tampered_csr() -> bytes:
    """A request whose signature does not match its content (another key signed it)."""
    _, good = make_csr()
    der = bytearray(x509.load_pem_x509_csr(good).public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01  # inside the signature value
    return bytes(der)


@pytest.mark.parametrize("make, words", [
    (lambda: make_csr(rsa.generate_private_key(public_exponent=65537, key_size=1024))[1], "too weak"),
    (lambda: make_csr(ec.generate_private_key(ec.SECP256K1()))[1], "curve"),
    (_tampered_csr, "signature"),
    (lambda: b"-----BEGIN CERTIFICATE REQUEST-----\nnot base64\n-----END CERTIFICATE REQUEST-----\n", "PKCS#10"),
])
def test_bad_or_weak_requests_are_refused(runner, official, tmp_path, make, words):
    """RFC 2986 §3: proof of possession is the request's signature; weak keys are never certified."""
    (tmp_path / "req.csr").write_bytes(make())
    out = tmp_path / "cert.pem"
    r = runner.invoke(args=["pki", "issue", "--username", "wangwu", "--csr", str(tmp_path / "req.csr"),
                            "--out", str(out)])
    assert r.exit_code != 0 and words in r.output, r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1
    assert not out.exists()  # nothing left behind
    from idp.pki.service import list_certificates

    assert list_certificates() == []


def test_only_officials_are_issued(runner, ca, user, tmp_path):
    """A citizen without a staff membership is refused in one line; nothing is issued or written."""
    r, out = issue_p12(runner, tmp_path, username="alice")
    assert r.exit_code != 0 and "not an official" in r.output and "Traceback" not in r.output
    assert not out.exists()
    r, _ = issue_p12(runner, tmp_path, username="nobody")
    assert r.exit_code != 0 and "no account" in r.output


def test_ended_membership_or_disabled_account_is_refused(runner, official, tmp_path):
    from idp.accounts.models import Person
    from idp.accounts.officials import add_official, remove_official
    from idp.db import db

    remove_official(username="wangwu", department="scjgj")
    r, _ = issue_p12(runner, tmp_path)
    assert r.exit_code != 0 and "not an official" in r.output
    add_official(username="wangwu", department="scjgj")
    person = db.session.get(Person, official.person_id)
    person.status = "disabled"
    db.session.commit()
    r, _ = issue_p12(runner, tmp_path)
    assert r.exit_code != 0 and "disabled" in r.output


def test_several_memberships_need_a_department(runner, official, tmp_path):
    from idp.accounts.officials import add_official, create_department

    create_department(code="rsj", name="本溪市人力资源和社会保障局")
    add_official(username="wangwu", department="rsj")
    r, _ = issue_p12(runner, tmp_path)
    assert r.exit_code != 0 and "--department" in r.output
    r, p12 = issue_p12(runner, tmp_path, "wangwu", "rsj.p12", "--department", "rsj")
    assert r.exit_code == 0, r.output
    assert "OU=本溪市人力资源和社会保障局" in json.loads(r.stdout)["subject"]


def test_password_and_csr_options(runner, official, tmp_path):
    r = runner.invoke(args=["pki", "issue", "--username", "wangwu", "--out", str(tmp_path / "a.p12")])
    assert r.exit_code != 0 and "--password" in r.output
    r = runner.invoke(args=["pki", "issue", "--username", "wangwu", "--out", str(tmp_path / "a.p12"),
                            "--password", "short"])
    assert r.exit_code != 0 and "at least" in r.output and not (tmp_path / "a.p12").exists()


def test_existing_file_is_never_overwritten(runner, official, tmp_path):
    (tmp_path / "cert.p12").write_bytes(b"precious")
    r, out = issue_p12(runner, tmp_path)
    assert r.exit_code != 0 and "exists" in r.output
    assert out.read_bytes() == b"precious"
    from idp.pki.service import list_certificates

    assert list_certificates() == []


def test_issuance_and_renewal_are_audited(runner, official, tmp_path):
    """The first certificate is `pki.certificate_issued`; issuing again while one is valid is a renewal."""
    from sqlalchemy import select

    from idp.audit.models import AuditEvent
    from idp.db import db

    first, _ = issue_p12(runner, tmp_path, "wangwu", "a.p12")
    second, _ = issue_p12(runner, tmp_path, "wangwu", "b.p12")
    s1, s2 = json.loads(first.stdout)["serial"], json.loads(second.stdout)["serial"]
    events = {e.action: e for e in db.session.execute(select(AuditEvent).where(
        AuditEvent.action.like("pki.%"))).scalars()}
    assert events["pki.certificate_issued"].target == f"certificate:{s1}"
    assert events["pki.certificate_renewed"].target == f"certificate:{s2}"
    assert events["pki.certificate_renewed"].detail["previous"] == [s1]
    assert "王五" not in json.dumps([e.detail for e in events.values()], ensure_ascii=False)
    listed = json.loads(runner.invoke(args=["pki", "list", "--username", "wangwu"]).stdout)
    assert [c["serial"] for c in listed] == [s1, s2] and {c["status"] for c in listed} == {"active"}
    assert listed[0]["department"] == "scjgj" and listed[0]["origin"] == "generated"


def test_a_key_is_certified_for_one_person_only(runner, official, tmp_path):
    make_official(username="zhaoliu", name="赵六")
    key, csr = make_csr()
    (tmp_path / "req.csr").write_bytes(csr)
    ok = runner.invoke(args=["pki", "issue", "--username", "wangwu", "--csr", str(tmp_path / "req.csr"),
                             "--out", str(tmp_path / "a.pem")])
    assert ok.exit_code == 0, ok.output
    r = runner.invoke(args=["pki", "issue", "--username", "zhaoliu", "--csr", str(tmp_path / "req.csr"),
                            "--out", str(tmp_path / "b.pem")])
    assert r.exit_code != 0 and "someone else" in r.output
    serial = json.loads(ok.stdout)["serial"]
    assert runner.invoke(args=["pki", "revoke", serial, "--reason", "keyCompromise"]).exit_code == 0
    r = runner.invoke(args=["pki", "issue", "--username", "wangwu", "--csr", str(tmp_path / "req.csr"),
                            "--out", str(tmp_path / "c.pem")])
    assert r.exit_code != 0 and "compromised" in r.output


def test_official_without_a_name_is_refused(runner, ca, tmp_path):
    make_official(username="noname", name=None)
    r, _ = issue_p12(runner, tmp_path, username="noname")
    assert r.exit_code != 0 and "name" in r.output
