"""A seal on any file: detached CMS SignedData (RFC 5652 §5) with a CAdES-T signature timestamp
(RFC 3161 Appendix A), judged by ``openssl cms -verify`` / ``openssl ts -verify`` and by our verifier."""
from __future__ import annotations

import datetime as dt
import hashlib
import os
import subprocess
import sys
import time

import pytest
from asn1crypto import cms as asn1_cms
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from idp.seals.report import INDETERMINATE, INVALID, VALID, revocation_verdict
from tests.seals.seal_fixtures import approver, ca_files, credential, hub, openssl  # noqa: F401

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def signed(app, credential, approver, tmp_path):
    """FILE and FILE.p7s made by ``sign_detached`` with the hub's TSA."""
    from idp.seals.cms import sign_detached
    from idp.seals.tsa import hub_timestamper

    data = tmp_path / "批复.docx"
    data.write_bytes(os.urandom(50_000))
    sig = tmp_path / "批复.docx.p7s"
    sig.write_bytes(sign_detached(data.read_bytes(), credential, approver, timestamper=hub_timestamper()))
    return data, sig


def openssl_verify(data, sig, chain):
    """The contract command, exactly (no -purpose)."""
    return openssl("cms", "-verify", "-binary", "-content", str(data), "-inform", "DER", "-in", str(sig),
                   "-CAfile", str(chain), "-out", "/dev/null")


def verify(data_path, sig_path):
    from idp.seals.cms import verify_detached

    return verify_detached(data_path.read_bytes(), sig_path.read_bytes())


def test_openssl_accepts_and_report_is_complete(signed, ca_files, credential):
    """RFC 5652 §5.4/§5.6: openssl verifies digest, signature and the chain to the hub's root; our
    report names the seal, department, approver, trusted time (genTime) and revocation status."""
    data, sig = signed
    r = openssl_verify(data, sig, ca_files[1])
    assert r.returncode == 0, r.stderr
    assert b"Verification successful" in r.stderr
    report = verify(data, sig)
    assert report.verdict == VALID and report.exit_code == 0
    assert report.sha256 == hashlib.sha256(data.read_bytes()).hexdigest()
    s = report.signatures[0]
    assert s.integrity and s.chain_trusted and s.reasons == []
    assert s.seal == {"id": credential.seal_id, "name": credential.name, "type": "审批专用章",
                      "department": "本溪市市场监督管理局", "status": "active"}
    assert s.official == "张三 (zhangsan), 科员, 本溪市市场监督管理局"
    assert s.timestamp["valid"] and s.signing_time == s.timestamp["time"]
    assert s.revocation == {"at_signing": "good", "now": "good", "reason": None, "date": None}
    assert s.certificate_serial == format(credential.certificate.serial_number, "x")


def test_structure(signed, credential):
    """Detached (no eContent), SHA-256, the signed attributes pyHanko's Signer writes plus the approver,
    the signature timestamp unsigned, the seal's certificate and the issuing CA embedded (no root)."""
    from idp.seals.cms import APPROVER_OID

    _, sig = signed
    sd = asn1_cms.ContentInfo.load(sig.read_bytes())["content"]
    assert sd["encap_content_info"]["content"].native is None
    si = sd["signer_infos"][0]
    assert si["digest_algorithm"]["algorithm"].native == "sha256"
    signed_types = {a["type"].dotted for a in si["signed_attrs"]}
    assert {"1.2.840.113549.1.9.3", "1.2.840.113549.1.9.4", "1.2.840.113549.1.9.5",
            "1.2.840.113549.1.9.16.2.47", APPROVER_OID} <= signed_types
    assert [a["type"].dotted for a in si["unsigned_attrs"]] == ["1.2.840.113549.1.9.16.2.14"]
    embedded = {c.chosen.subject.native["common_name"] for c in sd["certificates"]}
    assert embedded == {credential.name, credential.chain[0].subject.rfc4514_string().split("CN=")[1].split(",")[0]}


def test_openssl_ts_verifies_the_signature_timestamp(signed, ca_files, client, tmp_path):
    """RFC 3161 Appendix A / CAdES-T: the token's imprint is SHA-256 of the SignerInfo's signature value;
    ``openssl ts -verify -token_in -digest`` accepts it with the TSA chain."""
    _, sig = signed
    si = asn1_cms.ContentInfo.load(sig.read_bytes())["content"]["signer_infos"][0]
    token = si["unsigned_attrs"][0]["values"][0]
    tst = tmp_path / "token.der"
    tst.write_bytes(token.dump())
    untrusted = tmp_path / "tsa.pem"
    untrusted.write_bytes(client.get("/tsa/certificate.pem").data)
    digest = hashlib.sha256(si["signature"].native).hexdigest()
    r = openssl("ts", "-verify", "-token_in", "-in", str(tst), "-digest", digest, "-CAfile", str(ca_files[0]),
                "-untrusted", str(untrusted))
    assert r.returncode == 0, r.stderr


def test_approver_attribute_registered_after_asn1crypto_first_use():
    """The approver attribute's name resolves even when asn1crypto's attribute types were used before
    ``idp.seals.cms`` was imported (a fresh interpreter, so the import order is the one under test)."""
    code = ("from asn1crypto import cms; cms.CMSAttributeType('content_type'); import idp.seals.cms as c; "
            "assert cms.CMSAttributeType(c.APPROVER_ATTRIBUTE).dotted == c.APPROVER_OID")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()


def test_one_byte_changed(signed, ca_files):
    """RFC 5652 §5.4: messageDigest no longer matches → openssl refuses, and our verdict is invalid."""
    data, sig = signed
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    data.write_bytes(bytes(raw))
    r = openssl_verify(data, sig, ca_files[1])
    assert r.returncode != 0 and b"content verify error" in r.stderr
    report = verify(data, sig)
    assert report.verdict == INVALID and report.exit_code == 1
    assert report.signatures[0].integrity is False
    assert "changed after sealing" in report.signatures[0].reasons[0]


def test_tampered_signed_attribute(signed):
    """The approver is signed: rewriting it breaks the signature (RFC 5652 §5.4)."""
    data, sig = signed
    raw = sig.read_bytes()
    assert "zhangsan".encode() in raw
    sig.write_bytes(raw.replace(b"zhangsan", b"zhangsun"))
    report = verify(data, sig)
    assert report.verdict == INVALID
    assert "does not verify" in " ".join(report.signatures[0].reasons)


def test_large_file_streamed(app, credential, approver, ca_files, tmp_path):
    """10 MB from a file object: signed and verified in chunks; openssl agrees."""
    from idp.seals.cms import sign_detached, verify_detached
    from idp.seals.tsa import hub_timestamper

    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(10 * 1024 * 1024))
    with big.open("rb") as fh:
        der = sign_detached(fh, credential, approver, timestamper=hub_timestamper())
    p7s = tmp_path / "big.bin.p7s"
    p7s.write_bytes(der)
    assert openssl_verify(big, p7s, ca_files[1]).returncode == 0
    with big.open("rb") as fh:
        assert verify_detached(fh, der).verdict == VALID


def test_revoked_after_sealing_stays_valid(signed, credential):
    """The revocation rule (report.revocation_verdict): the timestamp proves the seal came first."""
    from idp.pki.service import revoke_certificate

    data, sig = signed
    time.sleep(1.1)  # genTime and revocation times are whole seconds; the same second is not "before"
    revoke_certificate(format(credential.certificate.serial_number, "x"), "cessationOfOperation")
    s = verify(data, sig).signatures[0]
    assert s.verdict == VALID
    assert s.revocation["at_signing"] == "good" and s.revocation["now"] == "revoked"
    assert "after the document was sealed" in s.reasons[0]


def test_revoked_before_sealing_is_invalid(app, credential, approver, tmp_path):
    from idp.pki.service import revoke_certificate
    from idp.seals.cms import sign_detached
    from idp.seals.tsa import hub_timestamper

    revoke_certificate(format(credential.certificate.serial_number, "x"), "affiliationChanged")
    data = tmp_path / "late.txt"
    data.write_bytes(b"sealed after revocation")
    sig = tmp_path / "late.txt.p7s"
    sig.write_bytes(sign_detached(data.read_bytes(), credential, approver, timestamper=hub_timestamper()))
    s = verify(data, sig).signatures[0]
    assert s.verdict == INVALID and s.revocation["at_signing"] == "revoked"
    assert "before the document was sealed" in " ".join(s.reasons)


def test_key_compromise_dated_before_sealing_is_invalid(signed, credential):
    """RFC 5280 §5.3.2 invalidityDate: a key compromised before the timestamp makes the seal invalid,
    even though the revocation itself came later."""
    from idp.db import db
    from idp.pki.service import revoke_certificate
    from idp.seals import trust

    data, sig = signed
    revoke_certificate(format(credential.certificate.serial_number, "x"), "keyCompromise")
    row = trust.certificate_record(credential.certificate)
    row.invalidity_date = dt.datetime(2000, 1, 1)
    db.session.commit()
    s = verify(data, sig).signatures[0]
    assert s.verdict == INVALID and s.revocation["reason"] == "keyCompromise"


def test_without_timestamp_revoked_is_indeterminate(app, credential, approver, tmp_path):
    """No trusted time and a revoked certificate: nothing proves which came first (report.py)."""
    from idp.pki.service import revoke_certificate
    from idp.seals.cms import sign_detached

    data = tmp_path / "f.txt"
    data.write_bytes(b"no timestamp")
    sig = tmp_path / "f.txt.p7s"
    sig.write_bytes(sign_detached(data.read_bytes(), credential, approver, timestamper=None))
    before = verify(data, sig).signatures[0]
    assert before.verdict == VALID and before.signing_time is None and "no signature timestamp" in before.reasons[0]
    revoke_certificate(format(credential.certificate.serial_number, "x"), "superseded")
    assert verify(data, sig).verdict == INDETERMINATE


def test_not_cms_and_not_detached(app, hub, credential, tmp_path):
    """Not a CMS, or a SignedData carrying its content: invalid with the reason, no signature found."""
    from idp.seals.cms import verify_detached

    report = verify_detached(b"data", b"this is not DER")
    assert report.verdict == INVALID and not report.signatures
    assert "not a DER CMS signature" in report.reasons[0]
    attached = pkcs7.PKCS7SignatureBuilder().set_data(b"data").add_signer(
        credential.certificate, credential.private_key, hashes.SHA256()).sign(serialization.Encoding.DER, [])
    report = verify_detached(b"data", attached)
    assert report.verdict == INVALID and "detached signature" in report.reasons[0]


def test_foreign_signer_is_invalid(app, hub, tmp_path):
    """A signature whose certificate does not chain to the hub's root: invalid (report.py)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from idp.seals.cms import verify_detached
    from tests.pki.conftest import CA_USAGE, craft

    root, root_key = craft(None, None, ca=True, eku=None, key_usage=CA_USAGE)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf, _ = craft(root, root_key, eku=None, key=leaf_key)
    der = pkcs7.PKCS7SignatureBuilder().set_data(b"data").add_signer(leaf, leaf_key, hashes.SHA256()).sign(
        serialization.Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary])
    s = verify_detached(b"data", der).signatures[0]
    assert s.integrity is True and s.chain_trusted is False and s.verdict == INVALID
    assert "does not lead to the hub's root CA" in " ".join(s.reasons)


def test_hub_certificate_that_is_not_a_seal_is_indeterminate(app, hub, credential, approver, tmp_path):
    """Chains to the hub but no seal is registered for the certificate: indeterminate (unknown seal)."""
    from idp.db import db
    from idp.seals.cms import sign_detached, verify_detached
    from idp.seals.models import Seal

    db.session.delete(db.session.get(Seal, credential.seal_id))
    db.session.commit()
    der = sign_detached(b"data", credential, approver, timestamper=None)
    s = verify_detached(b"data", der).signatures[0]
    assert s.verdict == INDETERMINATE and "not a seal registered" in " ".join(s.reasons)


# -- the revocation rule itself (report.revocation_verdict) -------------------------------------------

def test_rule_not_revoked():
    assert revocation_verdict(revoked_at=None, reason=None, invalidity_date=None, signed_at=None) == (VALID, None)


def test_rule_revoked_after_signing_valid():
    verdict, why = revocation_verdict(revoked_at=T0, reason="superseded", invalidity_date=None,
                                      signed_at=T0 - dt.timedelta(seconds=1))
    assert verdict == VALID and "after the document was sealed" in why.text


def test_rule_revoked_at_or_before_signing_invalid():
    for signed_at in (T0, T0 + dt.timedelta(days=1)):
        verdict, why = revocation_verdict(revoked_at=T0, reason="affiliationChanged", invalidity_date=None,
                                          signed_at=signed_at)
        assert verdict == INVALID and "affiliationChanged" in why.text


def test_rule_no_trusted_time_indeterminate():
    assert revocation_verdict(revoked_at=T0, reason="unspecified", invalidity_date=None,
                              signed_at=None)[0] == INDETERMINATE


def test_rule_key_compromise_invalidity_date():
    """RFC 5280 §5.3.2: for keyCompromise the earlier invalidity date is the cut-off; for other
    reasons it is not."""
    early = T0 - dt.timedelta(days=10)
    signed_at = T0 - dt.timedelta(days=1)
    assert revocation_verdict(revoked_at=T0, reason="keyCompromise", invalidity_date=early,
                              signed_at=signed_at)[0] == INVALID
    assert revocation_verdict(revoked_at=T0, reason="superseded", invalidity_date=early,
                              signed_at=signed_at)[0] == VALID
    assert revocation_verdict(revoked_at=T0, reason="keyCompromise", invalidity_date=T0 + dt.timedelta(days=1),
                              signed_at=signed_at)[0] == VALID
