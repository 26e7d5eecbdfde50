"""``idp seals …`` (issue 6 operator contract): one JSON line per command, refusals as one line on
stderr with exit 1."""
from __future__ import annotations

import json


from PIL import Image

from tests.seals.registry_support import SEAL_NAME, ca, official  # noqa: F401


def run(runner, *args):
    r = runner.invoke(args=["seals", *args])
    return r


def ok(runner, *args):
    r = run(runner, *args)
    assert r.exit_code == 0, r.output
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


def refused(runner, *args) -> str:
    r = run(runner, *args)
    assert r.exit_code == 1, r.output
    assert r.stdout == "" and r.stderr.startswith("Error: ") and len(r.stderr.strip().splitlines()) == 1
    return r.stderr


def test_seal_lifecycle_through_the_cli(runner, official, tmp_path):
    created = ok(runner, "create", "--department", "SCJGJ", "--name", SEAL_NAME)
    sid = str(created["id"])
    assert created["name"] == SEAL_NAME and created["type"] == "审批专用章" and created["status"] == "active"
    assert created["department"] == "SCJGJ" and created["certificate"]["serial"]
    assert ok(runner, "authorize", "--seal", sid, "--username", "zhangsan")["changed"] is True
    assert ok(runner, "authorize", "--seal", sid, "--username", "zhangsan")["changed"] is False
    [listed] = ok(runner, "list", "--department", "SCJGJ")
    assert listed["authorized"] == ["zhangsan"] and "key" not in json.dumps(listed)
    assert ok(runner, "suspend", sid)["status"] == "suspended"
    assert ok(runner, "resume", sid)["status"] == "active"
    assert ok(runner, "deauthorize", "--seal", sid, "--username", "zhangsan")["authorized"] is False
    out = tmp_path / "stamp.png"
    assert ok(runner, "image", sid, "--out", str(out))["bytes"] == out.stat().st_size
    with Image.open(out) as im:
        assert im.mode == "RGBA"
    assert "exists" in refused(runner, "image", sid, "--out", str(out))
    revoked = ok(runner, "revoke", sid, "--reason", "keyCompromise", "--compromised-at", "2026-01-02T03:04:05+08:00")
    assert revoked["status"] == "revoked" and revoked["revocation_reason"] == "keyCompromise"
    assert revoked["certificate"]["status"] == "revoked"
    assert "already been revoked" in refused(runner, "revoke", sid)
    certs = json.loads(runner.invoke(args=["pki", "list"]).stdout)
    [seal_cert] = [c for c in certs if c["usage"] == "seal"]
    assert seal_cert["status"] == "revoked" and seal_cert["invalidity_date"] == "2026-01-01T19:04:05Z"


def test_create_with_an_uploaded_image(runner, official, tmp_path):
    png = tmp_path / "own.png"
    Image.new("RGBA", (100, 100), (200, 0, 0, 255)).save(png)
    created = ok(runner, "create", "--department", "SCJGJ", "--name", "合同专用章", "--type", "合同专用章",
                 "--image", str(png))
    assert created["image"] == "uploaded"
    out = tmp_path / "back.png"
    ok(runner, "image", str(created["id"]), "--out", str(out))
    with Image.open(out) as im:
        assert im.getpixel((50, 50)) == (200, 0, 0, 255)


def test_refusals_are_one_line(runner, official, tmp_path):
    assert "no department" in refused(runner, "create", "--department", "NOPE", "--name", "x")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"GIF89a not a png")
    assert "PNG" in refused(runner, "create", "--department", "SCJGJ", "--name", "x", "--image", str(bad))
    assert "cannot read" in refused(runner, "create", "--department", "SCJGJ", "--name", "x",
                                    "--image", str(tmp_path / "missing.png"))
    assert "no seal" in refused(runner, "suspend", "42")
    assert "no seal" in refused(runner, "suspend", "abc")
    sid = str(ok(runner, "create", "--department", "SCJGJ", "--name", SEAL_NAME)["id"])
    assert "no active account" in refused(runner, "authorize", "--seal", sid, "--username", "nobody")
    assert "ISO 8601" in refused(runner, "revoke", sid, "--compromised-at", "yesterday")
    assert "time zone" in refused(runner, "revoke", sid, "--compromised-at", "2026-01-01T00:00:00")
    assert "unknown revocation reason" in refused(runner, "revoke", sid, "--reason", "hold")
    assert "Only a suspended seal" in refused(runner, "resume", sid)
    assert ok(runner, "list")[0]["status"] == "active"


def test_cli_refusals_are_in_english(runner, official):
    """Operators' output stays English (README, Languages)."""
    err = refused(runner, "suspend", "7")
    assert "There is no seal with the number 7." in err


# --- idp seals verify FILE [--signature FILE.p7s]: the JSON report, exit 0 / 1 / 2 ----------------------

def verify_cli(runner, *args):
    """``idp seals verify``: (exit code, the JSON report on stdout as one line)."""
    r = run(runner, "verify", *map(str, args))
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1, r.output
    return r.exit_code, json.loads(lines[0])


APPROVER = ("王五", "wangwu", "本溪市市场监督管理局")


def _approver():
    from idp.seals.credential import Approver

    name, username, department = APPROVER
    return Approver(name=name, username=username, department=department)


def test_verify_a_sealed_pdf_valid_then_one_byte_changed(runner, seal, tsa, tmp_path):
    """Exit 0 and the report (seal, official, trusted time); one byte of the signed content changed
    → exit 1 with the reason (ISO 32000-1 §12.8.1: /ByteRange digest no longer matches)."""
    from idp.seals.pdf import seal_pdf
    from tests.seals.pdfs import make_pdf, page_text

    sealed = seal_pdf(make_pdf(), seal, _approver(), timestamper=tsa)
    path = tmp_path / "批复.pdf"
    path.write_bytes(sealed)
    code, report = verify_cli(runner, path)
    assert code == 0 and report["verdict"] == "valid" and report["kind"] == "pdf", report
    [sig] = report["signatures"]
    assert sig["official"] == "王五" and sig["seal"]["name"] == seal.name and sig["signing_time"]

    text = page_text(1)
    assert sealed.count(text) == 1
    path.write_bytes(sealed.replace(text, text.replace(b"page", b"paGe"), 1))
    code, report = verify_cli(runner, path)
    assert code == 1 and report["verdict"] == "invalid", report
    assert report["signatures"][0]["integrity"] is False
    assert "signed bytes were changed" in " ".join(report["signatures"][0]["reasons"])


def test_verify_a_pdf_sealed_without_trusted_time_is_indeterminate(runner, seal, tmp_path):
    """No RFC 3161 signature timestamp: nothing proves when it was sealed (PAdES B-B, not B-T) → exit 2."""
    from idp.seals.pdf import seal_pdf
    from tests.seals.pdfs import make_pdf

    path = tmp_path / "no-time.pdf"
    path.write_bytes(seal_pdf(make_pdf(), seal, _approver(), timestamper=None))
    code, report = verify_cli(runner, path)
    assert code == 2 and report["verdict"] == "indeterminate", report
    assert "no timestamp" in " ".join(report["signatures"][0]["reasons"])


def test_verify_a_detached_signature_valid_and_changed(runner, seal, tmp_path):
    """RFC 5652 §5.4: the messageDigest over the file's exact bytes; one byte changed → exit 1."""
    from idp.seals.cms import sign_detached
    from idp.seals.tsa import hub_timestamper  # the hub's own TSA, as the API signs

    data = tmp_path / "file.bin"
    data.write_bytes(bytes(range(256)) * 64)
    sig = tmp_path / "file.bin.p7s"
    sig.write_bytes(sign_detached(data.read_bytes(), seal, _approver(), timestamper=hub_timestamper()))
    code, report = verify_cli(runner, data, "--signature", sig)
    assert code == 0 and report["verdict"] == "valid" and report["kind"] == "cms", report
    assert report["signatures"][0]["seal"]["name"] == seal.name

    raw = bytearray(data.read_bytes())
    raw[100] ^= 0x01
    data.write_bytes(bytes(raw))
    code, report = verify_cli(runner, data, "--signature", sig)
    assert code == 1 and report["verdict"] == "invalid", report
    assert "changed after sealing" in report["signatures"][0]["reasons"][0]


def test_verify_a_file_that_is_neither_pdf_nor_signed(runner, ca, tmp_path):
    """Not a PDF and no signature given: invalid, and the report says what to give."""
    path = tmp_path / "notes.txt"
    path.write_text("not sealed")
    code, report = verify_cli(runner, path)
    assert code == 1 and report["signatures"] == [] and ".p7s" in report["reasons"][0], report


def test_verify_unreadable_files_are_one_line_errors_not_verdicts(runner, ca, tmp_path):
    """Nothing on stdout, one line on stderr, exit 1 (like every refusal of ``idp``)."""
    present = tmp_path / "present.bin"
    present.write_bytes(b"x")
    assert "cannot read the file" in refused(runner, "verify", str(tmp_path / "missing.pdf"))
    assert "cannot read the signature" in refused(runner, "verify", str(present), "--signature",
                                                  str(tmp_path / "missing.p7s"))
    assert "cannot read the file" in refused(runner, "verify", str(tmp_path / "missing.bin"), "--signature",
                                             str(present))
    assert "cannot read the file" in refused(runner, "verify", str(tmp_path))  # a directory
