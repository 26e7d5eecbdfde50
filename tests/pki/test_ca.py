"""The hub's CA hierarchy (RFC 5280 §4.2.1): created by `idp init`, once, with CA extensions that
openssl accepts; private keys encrypted at rest; the chain printed by `idp pki ca-cert`."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from idp import create_app
from tests.conftest import _config
from tests.pki.conftest import openssl


def _audit(action):
    from sqlalchemy import select

    from idp.audit.models import AuditEvent
    from idp.db import db

    return db.session.execute(select(AuditEvent).where(AuditEvent.action == action)).scalars().all()


def test_init_creates_root_and_issuing_ca_once_and_audits(runner, instance):
    """`idp init` creates the hierarchy when missing and is idempotent afterwards."""
    first = runner.invoke(args=["init"])
    assert first.exit_code == 0, first.output
    created = json.loads(first.stdout.strip().splitlines()[-1])["ca_created"]
    assert len(created) == 2 and created[0].startswith("root-") and created[1].startswith("officials-")
    again = runner.invoke(args=["init"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout.strip().splitlines()[-1])["ca_created"] == []
    events = _audit("ca.created")
    assert sorted(e.target for e in events) == sorted(f"ca:{i}" for i in created)
    assert {e.detail["role"] for e in events} == {"root", "issuing"}
    index = json.loads((instance / "keys" / "ca" / "ca.json").read_text())
    assert [a["id"] for a in index["authorities"]] == created
    for name in os.listdir(instance / "keys" / "ca"):
        if name.endswith(".key.pem"):
            assert (instance / "keys" / "ca" / name).stat().st_mode & 0o077 == 0  # private to the owner


def test_ca_extensions(ca):
    """RFC 5280 §4.2.1.9 basicConstraints (critical, CA, pathLen 1 / 0), §4.2.1.3 keyUsage (critical,
    keyCertSign + cRLSign only), §4.2.1.1/§4.2.1.2 AKI/SKI; the issuing CA names the root's CRL and
    certificate and is constrained to client authentication."""
    root, issuing = ca.root.certificate, ca.issuing.certificate
    for cert, path_len in ((root, 1), (issuing, 0)):
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        assert bc.critical and bc.value.ca and bc.value.path_length == path_len
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
        assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
        assert not (ku.value.digital_signature or ku.value.content_commitment or ku.value.key_encipherment)
        assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey) and cert.public_key().curve.name == "secp256r1"
        assert cert.serial_number > 0 and cert.serial_number.bit_length() <= 159
    root_ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = issuing.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == root_ski.digest
    issuing.verify_directly_issued_by(root)
    dp = issuing.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert dp[0].full_name[0].value == f"http://127.0.0.1:5000/pki/crl/{ca.root.id}.crl"
    eku = issuing.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH, x509.oid.ExtendedKeyUsageOID.EMAIL_PROTECTION,
                         x509.oid.ExtendedKeyUsageOID.TIME_STAMPING]


def test_ca_cert_prints_a_chain_openssl_verifies(chain_file, ca, tmp_path):
    """The chain from `idp pki ca-cert` (issuing, then root) validates under openssl's strict checks."""
    pem = chain_file.read_bytes()
    certs = x509.load_pem_x509_certificates(pem)
    assert [c.subject for c in certs] == [ca.issuing.certificate.subject, ca.root.certificate.subject]
    root = tmp_path / "root.pem"
    root.write_text(ca.root.pem)
    issuing = tmp_path / "issuing.pem"
    issuing.write_text(ca.issuing.pem)
    r = openssl("verify", "-x509_strict", "-CAfile", str(root), str(issuing))
    assert r.returncode == 0, r.stdout + r.stderr


def test_ca_served_over_http_as_aia_promises(client, ca):
    """RFC 5280 §4.2.2.1: caIssuers HTTP URIs serve one DER certificate (application/pkix-cert)."""
    resp = client.get(f"/pki/ca/{ca.issuing.id}.crt")
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/pkix-cert"
    assert x509.load_der_x509_certificate(resp.data) == ca.issuing.certificate
    assert client.get("/pki/ca/officials-0000000000000000.crt").status_code == 404
    assert client.get("/pki/ca/..%2Fca.json.crt").status_code == 404


def test_private_keys_encrypted_with_the_passphrase(tmp_path):
    """Keys at rest are encrypted with IDP_KEYS_PASSPHRASE; a wrong passphrase is one clear error."""
    from idp.keystore.service import ensure_keys
    from idp.migrations_lock import upgrade_database
    from idp.pki.ca import CaError
    from idp.pki.service import ensure_ca
    from tests.pki.conftest import make_official

    app = create_app(_config(tmp_path, KEYS_PASSPHRASE="correct passphrase"), load_keys=False)
    with app.app_context():
        ensure_keys(app.config)
        upgrade_database()
        assert [e["role"] for e in ensure_ca()] == ["root", "issuing"]
        make_official()
        ok = app.test_cli_runner().invoke(args=["pki", "issue", "--username", "wangwu", "--out",
                                                str(tmp_path / "ok.p12"), "--password", "long enough"])
        assert ok.exit_code == 0, ok.output
    for key_file in (tmp_path / "keys" / "ca").glob("*.key.pem"):
        assert key_file.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    wrong = create_app(_config(tmp_path, KEYS_PASSPHRASE="wrong passphrase"), load_keys=False)
    with wrong.app_context():
        with pytest.raises(CaError, match="IDP_KEYS_PASSPHRASE"):
            ensure_ca()
        r = wrong.test_cli_runner().invoke(args=["pki", "issue", "--username", "wangwu", "--out",
                                                 str(tmp_path / "x.p12"), "--password", "long enough"])
        assert r.exit_code != 0 and "IDP_KEYS_PASSPHRASE" in r.output and "Traceback" not in r.output
        assert not (tmp_path / "x.p12").exists()


def test_rsa_3072_option(tmp_path):
    """IDP_PKI_KEY_TYPE=rsa-3072 gives RSA 3072-bit CAs."""
    from idp.keystore.service import ensure_keys
    from idp.migrations_lock import upgrade_database
    from idp.pki.service import authorities, ensure_ca

    app = create_app(_config(tmp_path, PKI_KEY_TYPE="rsa-3072"), load_keys=False)
    with app.app_context():
        ensure_keys(app.config)
        upgrade_database()
        ensure_ca()
        for a in authorities().chain():
            key = a.certificate.public_key()
            assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 3072


def test_bad_key_type_setting_is_refused(tmp_path):
    from idp.config import ConfigError

    with pytest.raises(ConfigError, match="PKI_KEY_TYPE"):
        create_app(_config(tmp_path, PKI_KEY_TYPE="dsa-1024"), load_keys=False)


def test_concurrent_init_creates_one_ca(instance):
    """Several nodes running `idp init` at once over one key directory: one root, one issuing CA.
    (Database and signing keys come from the test template, so the race is about the CA.)"""
    tmp_path = instance
    idp = str(Path(sys.executable).parent / "idp")
    env = {"IDP_DATABASE_URL": f"sqlite:///{tmp_path / 'idp.sqlite3'}", "IDP_KEYS_DIR": str(tmp_path / "keys"),
           "PATH": "/usr/bin:/bin"}
    procs = [subprocess.Popen([idp, "init"], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    created = [json.loads(out.strip().splitlines()[-1])["ca_created"] for out, _ in outs]
    assert sorted(len(c) for c in created) == [0, 0, 2]
    index = json.loads((tmp_path / "keys" / "ca" / "ca.json").read_text())
    assert [a["role"] for a in index["authorities"]] == ["root", "issuing"]
    assert len(list((tmp_path / "keys" / "ca").glob("*.key.pem"))) == 2
