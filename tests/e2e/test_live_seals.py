"""Issue 6 end to end with real programs: a live hub (``idp init`` + ``idp serve``) provisioned with the
operators' CLI, the officials' real ``sealctl`` console script sealing a PDF and signing a file, then
tools not written here judging the results: poppler's ``pdfsig`` (NSS trusting only the hub's root),
pyHanko's validator, ``openssl cms -verify`` and ``openssl ts -verify``; ``idp audit verify`` over the
record; and the refusals (suspended seal, revoked official certificate) seen from ``sealctl``.

One hub for the module; the tests run in file order and build on each other (sealing, then
verifying, then suspending and revoking).
"""
from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from asn1crypto import cms as asn1_cms
from asn1crypto import pem as asn1_pem
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from tests.seals.pdfs import make_pdf, page_text
from tests.seals.live_support import OFFICIAL, P12_PASSWORD, SEAL_NAME, idp_at_once, start_sealing_hub
from tests.seals.tools import nss_db_trusting, pdfsig, tool

pytestmark = [pytest.mark.live, pytest.mark.xdist_group("live-seals")]

SEALCTL = Path(sys.executable).parent / "sealctl"


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """The hub, the official's PKCS#12 file, the seal's id, the CA chain and the TSA certificate."""
    work = tmp_path_factory.mktemp("seals-live")
    sealing = start_sealing_hub(work)
    try:
        yield {"hub": sealing.hub, "work": work, "p12": sealing.p12, "serial": sealing.serial,
               "seal": sealing.seal, "state": work / "sealctl-state"}
    finally:
        sealing.hub.stop()


def sealctl(live, *args) -> subprocess.CompletedProcess:
    """The installed ``sealctl`` console script, as an official runs it (state in ``--state DIR``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEALCTL_", "IDP_"))}
    return subprocess.run([str(SEALCTL), *map(str, args)], env=env, cwd=live["work"], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


def openssl(*args) -> subprocess.CompletedProcess:
    return subprocess.run([tool("openssl"), *map(str, args)], capture_output=True, text=True, timeout=60)


def one_line_error(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stdout == "" and r.stderr.startswith("sealctl: ") and len(r.stderr.strip().splitlines()) == 1, r.stderr
    return r.stderr


def test_sealctl_logs_in_and_lists_the_seal(live):
    """``sealctl login --hub URL --p12 FILE --password P`` (RFC 7523 §2.1 grant, DPoP-bound, RFC 9449),
    then ``sealctl seals``: the seal this official may apply, as JSON."""
    state = live["state"]
    r = sealctl(live, "login", "--state", state, "--hub", live["hub"].issuer, "--p12", live["p12"],
                "--password", P12_PASSWORD)
    assert r.returncode == 0, r.stderr
    r = sealctl(live, "seals", "--state", state, "--password", P12_PASSWORD)
    assert r.returncode == 0, r.stderr
    seals = json.loads(r.stdout)
    assert [s["id"] for s in seals] == [live["seal"]], seals
    assert seals[0]["name"] == SEAL_NAME


def test_sealctl_applies_the_seal_to_a_pdf_and_signs_a_file(live):
    """``sealctl apply … --page 1 --x 300 --y 200`` and ``sealctl sign`` write the sealed PDF and the
    detached signature; ``sealctl verify`` (the hub's public API) says valid, exit 0."""
    work, state = live["work"], live["state"]
    (work / "doc.pdf").write_bytes(make_pdf(pages=2))
    (work / "file.bin").write_bytes(os.urandom(40_000) + "审批决定书".encode())
    r = sealctl(live, "apply", "--state", state, "--password", P12_PASSWORD, "--seal", live["seal"],
                "--in", work / "doc.pdf", "--out", work / "sealed.pdf", "--page", 1, "--x", 300, "--y", 200)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["application"]
    r = sealctl(live, "sign", "--state", state, "--password", P12_PASSWORD, "--seal", live["seal"],
                "--in", work / "file.bin", "--out", work / "file.bin.p7s")
    assert r.returncode == 0, r.stderr

    r = sealctl(live, "verify", "--state", state, work / "sealed.pdf")
    assert r.returncode == 0, (r.stdout, r.stderr)
    report = json.loads(r.stdout)
    assert report["verdict"] == "valid" and report["signatures"][0]["official"] == OFFICIAL[1], report
    assert report["signatures"][0]["seal"]["name"] == SEAL_NAME
    r = sealctl(live, "verify", "--state", state, work / "file.bin", "--signature", work / "file.bin.p7s")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert json.loads(r.stdout)["signatures"][0]["official"].startswith(OFFICIAL[1])


def test_a_tampered_copy_is_invalid_for_sealctl_and_the_operators_cli(live):
    """One byte changed in the signed content → ``sealctl verify`` and ``idp seals verify`` exit 1."""
    work, hub = live["work"], live["hub"]
    sealed = (work / "sealed.pdf").read_bytes()
    text = page_text(1)
    (work / "tampered.pdf").write_bytes(sealed.replace(text, text.replace(b"page", b"paGe"), 1))
    raw = bytearray((work / "file.bin").read_bytes())
    raw[7] ^= 0x01
    (work / "tampered.bin").write_bytes(bytes(raw))
    cases = ([work / "tampered.pdf"], [work / "tampered.bin", "--signature", work / "file.bin.p7s"])
    for args in cases:
        r = sealctl(live, "verify", "--hub", hub.issuer, *args)
        assert r.returncode == 1 and json.loads(r.stdout)["verdict"] == "invalid", (r.stdout, r.stderr)
    originals = ([work / "sealed.pdf"], [work / "file.bin", "--signature", work / "file.bin.p7s"])
    results = idp_at_once(hub, *(["seals", "verify", *args] for args in cases + originals))
    for r, expected in zip(results, ("invalid", "invalid", "valid", "valid")):
        assert json.loads(r.stdout)["verdict"] == expected, (r.args, r.stdout, r.stderr)
        assert r.returncode == {"valid": 0, "invalid": 1}[expected]


def test_pdfsig_trusts_the_seal(live):
    """poppler's pdfsig with an NSS store trusting only the hub's root: valid, trusted, the seal signs."""
    work = live["work"]
    out = pdfsig(work / "sealed.pdf", nss_db_trusting(work / "nssdb", (work / "root.pem").read_bytes()),
                 work / "home")
    assert "Signature #1:" in out and "Signature #2:" not in out, out
    assert "Signature Validation: Signature is Valid." in out, out
    assert "Certificate Validation: Certificate is Trusted." in out, out
    assert f"Signer Certificate Common Name: {SEAL_NAME}" in out, out
    assert "Total document signed" in out, out


def test_pyhankos_validator_accepts_the_seal_and_its_timestamp(live):
    """pyHanko's validator, anchored at the root fetched from ``idp pki ca-cert`` (no hub code): intact,
    valid, trusted, with a trusted RFC 3161 signature timestamp (ETSI EN 319 142-1 B-T)."""
    work = live["work"]
    root = asn1_x509.Certificate.load(asn1_pem.unarmor((work / "root.pem").read_bytes())[2])
    emb = PdfFileReader(io.BytesIO((work / "sealed.pdf").read_bytes())).embedded_regular_signatures[0]
    ctx = ValidationContext(trust_roots=[root], allow_fetching=False, revocation_mode="soft-fail")
    status = asyncio.run(async_validate_pdf_signature(emb, signer_validation_context=ctx,
                                                      ts_validation_context=ctx))
    assert status.bottom_line and status.intact and status.valid and status.trusted, status.pretty_print_details()
    assert status.signing_cert.subject.native["common_name"] == SEAL_NAME
    ts = status.timestamp_validity
    assert ts is not None and ts.intact and ts.valid and ts.trusted
    assert str(emb.sig_object["/Name"]) == OFFICIAL[1]


def test_openssl_cms_verifies_the_detached_signature(live):
    """The issue's contract command, exactly: ``openssl cms -verify -binary -content FILE -inform DER
    -in FILE.p7s -CAfile CHAIN`` (RFC 5652 §5.4, §5.6)."""
    work = live["work"]
    r = openssl("cms", "-verify", "-binary", "-content", work / "file.bin", "-inform", "DER",
                "-in", work / "file.bin.p7s", "-CAfile", work / "chain.pem", "-out", os.devnull)
    assert r.returncode == 0 and "Verification successful" in r.stderr, r.stderr
    r = openssl("cms", "-verify", "-binary", "-content", work / "tampered.bin", "-inform", "DER",
                "-in", work / "file.bin.p7s", "-CAfile", work / "chain.pem", "-out", os.devnull)
    assert r.returncode != 0 and "content verify error" in r.stderr, r.stderr


def test_openssl_ts_verifies_the_signature_timestamp(live):
    """RFC 3161 / CAdES-T (ETSI EN 319 122-1 §5.3): the token's imprint is SHA-256 of the SignerInfo's
    signature value; ``openssl ts -verify`` accepts it with the TSA certificate from GET
    /tsa/certificate.pem and the hub's root."""
    work = live["work"]
    si = asn1_cms.ContentInfo.load((work / "file.bin.p7s").read_bytes())["content"]["signer_infos"][0]
    [token] = [a["values"][0] for a in si["unsigned_attrs"] if a["type"].native == "signature_time_stamp_token"]
    (work / "token.der").write_bytes(token.dump())
    digest = hashlib.sha256(si["signature"].native).hexdigest()
    r = openssl("ts", "-verify", "-token_in", "-in", work / "token.der", "-digest", digest,
                "-CAfile", work / "root.pem", "-untrusted", work / "tsa.pem")
    assert r.returncode == 0 and "Verification: OK" in r.stdout, (r.stdout, r.stderr)
    r = openssl("ts", "-verify", "-token_in", "-in", work / "token.der", "-digest", "00" * 32,
                "-CAfile", work / "root.pem", "-untrusted", work / "tsa.pem")
    assert r.returncode != 0


def test_audit_verify_sees_both_applications_intact(live):
    """``idp audit verify``: the hash chain and the 2 seal applications against their events."""
    out = live["hub"].cli("audit", "verify")
    assert out["intact"] is True and out["first_broken_id"] is None, out
    assert out["seal_applications"]["checked"] == 2 and out["seal_applications"]["intact"] is True, out


def test_a_suspended_seal_is_refused_to_sealctl(live):
    """``idp seals suspend``: ``sealctl apply`` fails with the hub's reason in one line, exit 1, no file."""
    work, hub = live["work"], live["hub"]
    hub.cli("seals", "suspend", str(live["seal"]))
    try:
        r = sealctl(live, "apply", "--state", live["state"], "--password", P12_PASSWORD, "--seal", live["seal"],
                    "--in", work / "doc.pdf", "--out", work / "refused.pdf")
        assert "已暂停使用" in one_line_error(r)  # the hub's message, in its default language (zh)
        assert not (work / "refused.pdf").exists()
    finally:
        hub.cli("seals", "resume", str(live["seal"]))


def test_a_revoked_official_certificate_cannot_sign(live):
    """``idp pki revoke`` of the official's certificate: the token it got earlier no longer seals
    anything (issue 6: "a revoked official certificate … refused"), nor can it sign in again."""
    work, hub = live["work"], live["hub"]
    hub.cli("pki", "revoke", live["serial"], "--reason", "keyCompromise")
    r = sealctl(live, "sign", "--state", live["state"], "--password", P12_PASSWORD, "--seal", live["seal"],
                "--in", work / "file.bin", "--out", work / "refused.p7s")
    assert "吊销" in one_line_error(r)  # sealctl's language by default (clients/sealctl/lang.py): Chinese
    assert not (work / "refused.p7s").exists()
    r = sealctl(live, "login", "--state", work / "state2", "--hub", hub.issuer, "--p12", live["p12"],
                "--password", P12_PASSWORD)
    # The tool's Chinese sentence for the code, then the token endpoint's own detail (ASCII, RFC 6749
    # §5.2) as sent, and the code.
    assert r.returncode == 1 and "被拒绝" in r.stderr and "吊销" in r.stderr and "revoked" in r.stderr, r.stderr
    assert r.stderr.rstrip().endswith("；invalid_grant）"), r.stderr
    out = hub.cli("audit", "verify")
    assert out["intact"] is True and out["seal_applications"]["checked"] == 2, out
