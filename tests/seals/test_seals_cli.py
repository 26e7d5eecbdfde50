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
