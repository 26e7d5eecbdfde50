"""Fixtures for the officials' CA: the CA itself (EC keys: fast), officials, openssl as the judge."""
from __future__ import annotations

import datetime as dt
import json
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from idp.pki.profile import PKCS12_KDF_ROUNDS as PRODUCTION_KDF_ROUNDS  # read before any test patches it

P12_PASSWORD = "p12-password-1"
NOW = dt.datetime.now(dt.timezone.utc)
CLIENT_AUTH = [ExtendedKeyUsageOID.CLIENT_AUTH]
SIGNING = dict(digital_signature=True, content_commitment=True, key_encipherment=False, data_encipherment=False,
               key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False)
CA_USAGE = {**SIGNING, "digital_signature": False, "content_commitment": False, "key_cert_sign": True,
            "crl_sign": True}


def make_official(username="wangwu", name="王五", department=("scjgj", "本溪市市场监督管理局")):
    """A person made an official by the officials service (`idp officials add`); the account itself
    is created directly, without a password (officials here sign in with certificates, and argon2
    would only slow the tests)."""
    from sqlalchemy import select

    from idp.accounts.models import Department, Person
    from idp.accounts.officials import add_official, create_department
    from idp.accounts.service import new_subject
    from idp.db import db

    db.session.add(Person(sub=new_subject(), username=username, name=name))
    db.session.commit()
    code, dept_name = department
    if db.session.execute(select(Department).where(Department.code == code)).scalar_one_or_none() is None:
        create_department(code=code, name=dept_name)
    return add_official(username=username, department=code)


@pytest.fixture(autouse=True)
def quick_pkcs12(monkeypatch):
    """Fewer PBKDF2 rounds for PKCS#12 files in tests; `production_pkcs12` restores the real count."""
    monkeypatch.setattr("idp.pki.profile.PKCS12_KDF_ROUNDS", 2048)


@pytest.fixture
def production_pkcs12(monkeypatch):
    monkeypatch.setattr("idp.pki.profile.PKCS12_KDF_ROUNDS", PRODUCTION_KDF_ROUNDS)


@pytest.fixture
def official(ca):
    return make_official()


def openssl(*args, input=None) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], input=input, capture_output=True, timeout=30)


@pytest.fixture
def chain_file(ca, runner, tmp_path):
    """`idp pki ca-cert` output: the issuing CA and the root, PEM."""
    r = runner.invoke(args=["pki", "ca-cert"])
    assert r.exit_code == 0, r.output
    path = tmp_path / "chain.pem"
    path.write_text(r.stdout)
    return path


def issue_p12(runner, tmp_path, username="wangwu", name="cert.p12", *extra):
    """`idp pki issue --password`: (CLI result, path of the PKCS#12 file)."""
    out = tmp_path / name
    r = runner.invoke(args=["pki", "issue", "--username", username, "--out", str(out), "--password", P12_PASSWORD,
                            *extra])
    return r, out


@pytest.fixture
def issued(runner, official, tmp_path):
    """The official's certificate from `idp pki issue`: (serial, certificate, PEM file of the leaf)."""
    r, p12 = issue_p12(runner, tmp_path)
    assert r.exit_code == 0, r.output
    _, cert, _ = pkcs12.load_key_and_certificates(p12.read_bytes(), P12_PASSWORD.encode())
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(cert.public_bytes(Encoding.PEM))
    return json.loads(r.stdout)["serial"], cert, leaf


def craft(issuer_cert, issuer_key, *, not_before=NOW - dt.timedelta(days=1), not_after=NOW + dt.timedelta(days=30),
          eku=CLIENT_AUTH, key_usage=SIGNING, ca=False, extra=(), subject=None, key=None):
    """A certificate shaped like the hub's (or deliberately not), signed by ``issuer_key``; with no
    issuer, a self-signed one (a CA of our own making when ``ca=True``)."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    subject = subject or x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                                    x509.NameAttribute(NameOID.COMMON_NAME, "测试")])
    b = (x509.CertificateBuilder().subject_name(subject)
         .issuer_name(issuer_cert.subject if issuer_cert else subject)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(not_before).not_valid_after(not_after)
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
             (issuer_cert.public_key() if issuer_cert else key.public_key())), critical=False))
    if key_usage is not None:
        b = b.add_extension(x509.KeyUsage(**key_usage), critical=True)
    if eku is not None:
        b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    for ext, critical in extra:
        b = b.add_extension(ext, critical=critical)
    return b.sign(issuer_key if issuer_cert else key, hashes.SHA256()), key
