"""Revocation and CRLs (RFC 5280 §5): `idp pki revoke`, the CRL published at the URL the certificate
names, fresh on every revocation and before nextUpdate, and openssl agreeing with the hub."""
from __future__ import annotations

import datetime as dt
import json
from urllib.parse import urlsplit

import pytest
from cryptography import x509

from idp import create_app
from tests.conftest import _config
from tests.pki.conftest import issue_p12, openssl


def fetch_crl(client, url: str, tmp_path, name="crl.der"):
    """GET the CRL at the URL a certificate names, through the test client."""
    resp = client.get(urlsplit(url).path)
    assert resp.status_code == 200, resp.data[:200]
    assert resp.headers["Content-Type"] == "application/pkix-crl"
    path = tmp_path / name
    path.write_bytes(resp.data)
    return x509.load_der_x509_crl(resp.data), path


def crl_url_of(cert) -> str:
    return cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value[0].full_name[0].value


def test_revoked_certificate_fails_openssl_crl_check_and_hub_validation(runner, client, issued, chain_file,
                                                                       tmp_path):
    """After `idp pki revoke`, `openssl verify -crl_check` with the CRL fetched over HTTP says
    "certificate revoked", and the hub's own validation says revoked with the reason (§5.3.1)."""
    from idp.pki.validation import validate_certificate

    serial, cert, leaf = issued
    crl, crl_file = fetch_crl(client, crl_url_of(cert), tmp_path, "before.der")
    ok = openssl("verify", "-crl_check", "-CAfile", str(chain_file), "-CRLfile", str(crl_file), str(leaf))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert validate_certificate(cert).valid

    r = runner.invoke(args=["pki", "revoke", serial, "--reason", "keyCompromise"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["reason"] == "keyCompromise"

    crl, crl_file = fetch_crl(client, crl_url_of(cert), tmp_path, "after.der")
    entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.key_compromise
    refused = openssl("verify", "-crl_check", "-CAfile", str(chain_file), "-CRLfile", str(crl_file), str(leaf))
    assert refused.returncode != 0 and b"certificate revoked" in refused.stdout + refused.stderr
    check = validate_certificate(cert)
    assert not check.valid and check.reason == "revoked" and check.revocation_reason == "keyCompromise"


def test_published_crl_parses_with_openssl_and_carries_number_and_aki(client, issued, ca, tmp_path):
    """`openssl crl -inform DER` parses it; v2 with cRLNumber and authorityKeyIdentifier (§5.2.1, §5.2.3),
    signed by the CA that issued the certificate, nextUpdate IDP_PKI_CRL_DAYS ahead (§5.1.2.5)."""
    _, cert, _ = issued
    crl, crl_file = fetch_crl(client, crl_url_of(cert), tmp_path)
    parsed = openssl("crl", "-inform", "DER", "-in", str(crl_file), "-noout", "-text")
    assert parsed.returncode == 0 and b"X509v3 CRL Number" in parsed.stdout, parsed.stderr
    assert b"X509v3 Authority Key Identifier" in parsed.stdout
    assert crl.is_signature_valid(ca.issuing.certificate.public_key())
    assert crl.issuer == cert.issuer
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ca.issuing.certificate.extensions.get_extension_for_class(
        x509.SubjectKeyIdentifier).value.digest
    assert crl.next_update_utc - crl.last_update_utc == dt.timedelta(days=7)


def test_crl_number_increases_and_etag_changes_on_every_revocation(runner, client, official, tmp_path):
    """cRLNumber is monotonically increasing (§5.2.3); clients revalidate and get the new CRL at once."""
    serials = []
    for i in range(2):
        r, _ = issue_p12(runner, tmp_path, "wangwu", f"{i}.p12")
        serials.append(json.loads(r.stdout)["serial"])
    from idp.pki.service import authorities

    url = f"/pki/crl/{authorities().issuing.id}.crl"
    first = client.get(url)
    number = x509.load_der_x509_crl(first.data).extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert client.get(url, headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
    for serial in serials:
        assert runner.invoke(args=["pki", "revoke", serial, "--reason", "superseded"]).exit_code == 0
        resp = client.get(url, headers={"If-None-Match": first.headers["ETag"]})
        assert resp.status_code == 200
        crl = x509.load_der_x509_crl(resp.data)
        new_number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        assert new_number > number
        number = new_number
    assert {format(e.serial_number, "x") for e in crl} == set(serials)


def test_unspecified_reason_leaves_the_reason_code_out(runner, client, issued, tmp_path):
    """RFC 5280 §5.3.1: reasonCode unspecified SHOULD be absent from the entry."""
    serial, cert, _ = issued
    assert runner.invoke(args=["pki", "revoke", serial]).exit_code == 0
    crl, _ = fetch_crl(client, crl_url_of(cert), tmp_path)
    entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    assert entry is not None and len(entry.extensions) == 0


@pytest.mark.parametrize("args, words", [
    (["--reason", "certificateHold"], "unknown revocation reason"),
    (["--reason", "stolen"], "unknown revocation reason"),
])
def test_revoke_refuses_bad_reasons(runner, issued, args, words):
    serial, _, _ = issued
    r = runner.invoke(args=["pki", "revoke", serial, *args])
    assert r.exit_code != 0 and words in r.output and "Traceback" not in r.output


def test_revoke_refuses_unknown_and_repeated(runner, issued):
    serial, _, _ = issued
    r = runner.invoke(args=["pki", "revoke", "00ff"])
    assert r.exit_code != 0 and "no certificate" in r.output
    r = runner.invoke(args=["pki", "revoke", "xyz"])
    assert r.exit_code != 0 and "hexadecimal" in r.output
    # openssl prints serials in upper case with colons; either form is accepted.
    colons = ":".join(serial.upper()[i:i + 2] for i in range(0, len(serial), 2)) if len(serial) % 2 == 0 else serial
    assert runner.invoke(args=["pki", "revoke", colons, "--reason", "affiliationChanged"]).exit_code == 0
    r = runner.invoke(args=["pki", "revoke", serial])
    assert r.exit_code != 0 and "already revoked" in r.output


def test_revocation_is_audited_and_listed(runner, issued):
    from sqlalchemy import select

    from idp.audit.models import AuditEvent
    from idp.db import db

    serial, _, _ = issued
    runner.invoke(args=["pki", "revoke", serial, "--reason", "cessationOfOperation"])
    ev = db.session.execute(select(AuditEvent).where(AuditEvent.action == "pki.certificate_revoked")).scalar_one()
    assert ev.target == f"certificate:{serial}" and ev.detail["reason"] == "cessationOfOperation"
    listed = json.loads(runner.invoke(args=["pki", "list"]).stdout)
    assert listed[0]["status"] == "revoked" and listed[0]["revocation_reason"] == "cessationOfOperation"
    assert runner.invoke(args=["audit", "verify"]).exit_code == 0


def test_root_crl_is_published_for_the_issuing_ca(client, ca, chain_file, issued, tmp_path):
    """The issuing CA names the root's CRL; with it `openssl verify -crl_check_all` checks the whole path."""
    _, cert, leaf = issued
    root_crl, root_file = fetch_crl(client, crl_url_of(ca.issuing.certificate), tmp_path, "root.der")
    assert root_crl.issuer == ca.root.certificate.subject
    assert root_crl.is_signature_valid(ca.root.certificate.public_key())
    _, leaf_crl = fetch_crl(client, crl_url_of(cert), tmp_path, "leaf.der")
    both = tmp_path / "crls.pem"
    both.write_text("".join(openssl("crl", "-inform", "DER", "-in", str(f)).stdout.decode()
                            for f in (root_file, leaf_crl)))
    r = openssl("verify", "-crl_check_all", "-CAfile", str(chain_file), "-CRLfile", str(both), str(leaf))
    assert r.returncode == 0, r.stdout + r.stderr


def test_crl_is_fresh_across_nodes(runner, client, issued, instance, tmp_path):
    """A second node (same database and key directory) that cached the CRL serves the new one right
    after a revocation made on the first node: the CRL lives in the database, not in one process."""
    serial, cert, _ = issued
    node2 = create_app(_config(instance))
    other = node2.test_client()
    url = urlsplit(crl_url_of(cert)).path
    before = other.get(url).data  # node 2 now has it cached
    assert x509.load_der_x509_crl(before).get_revoked_certificate_by_serial_number(cert.serial_number) is None
    assert runner.invoke(args=["pki", "revoke", serial]).exit_code == 0  # on node 1
    after = x509.load_der_x509_crl(other.get(url).data)
    assert after.get_revoked_certificate_by_serial_number(cert.serial_number) is not None


def test_crl_is_republished_before_next_update(client, issued, tmp_path):
    """nextUpdate is honoured (§5.1.2.5): when less than half the lifetime is left, a new CRL (higher
    number, later nextUpdate) is published on the next request."""
    from idp.db import db
    from idp.pki.models import CertificateRevocationList
    from idp.pki.service import authorities

    _, cert, _ = issued
    first, _ = fetch_crl(client, crl_url_of(cert), tmp_path)
    row = db.session.get(CertificateRevocationList, authorities().issuing.id)
    row.next_update = row.this_update + dt.timedelta(days=3)  # as if 4 of its 7 days had passed
    db.session.commit()
    second, _ = fetch_crl(client, crl_url_of(cert), tmp_path)
    number = lambda c: c.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number  # noqa: E731
    assert number(second) == number(first) + 1
    assert second.next_update_utc >= first.next_update_utc


def test_unknown_crl_is_404(client, ca):
    assert client.get("/pki/crl/officials-0123456789abcdef.crl").status_code == 404
    assert client.get("/pki/crl/nonsense.crl").status_code == 404


@pytest.mark.postgres
def test_revocation_and_crl_on_postgresql(tmp_path, postgres_url):
    """The same path on PostgreSQL (advisory lock, CRL stored as bytea): revoke, then the CRL over
    HTTP lists the certificate and openssl parses it."""
    from idp.keystore.service import ensure_keys
    from idp.migrations_lock import upgrade_database
    from idp.pki.service import ensure_ca
    from tests.pki.conftest import make_official

    from idp.db import db
    from idp.pki.service import authorities

    app = create_app(_config(tmp_path, db_url=postgres_url), load_keys=False)
    with app.app_context():
        try:
            ensure_keys(app.config)
            upgrade_database()
            ensure_ca()
            from idp import init_keys

            init_keys(app)
            make_official()
            runner = app.test_cli_runner()
            r, p12 = issue_p12(runner, tmp_path)
            assert r.exit_code == 0, r.output
            serial = json.loads(r.stdout)["serial"]
            assert runner.invoke(args=["pki", "revoke", serial, "--reason", "superseded"]).exit_code == 0
            crl, crl_file = fetch_crl(app.test_client(), f"/pki/crl/{authorities().issuing.id}.crl", tmp_path)
            assert crl.get_revoked_certificate_by_serial_number(int(serial, 16)) is not None
            assert openssl("crl", "-inform", "DER", "-in", str(crl_file), "-noout").returncode == 0
        finally:
            db.session.remove()
            db.engine.dispose()
