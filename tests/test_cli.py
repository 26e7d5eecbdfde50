"""The `idp` command contract (DESIGN.md): JSON on stdout when creating, one-line errors, exit codes."""
from __future__ import annotations

import json

import pytest


def test_init_is_idempotent(runner):
    first = runner.invoke(args=["init"])
    assert first.exit_code == 0, first.output
    again = runner.invoke(args=["init"])
    assert again.exit_code == 0
    assert json.loads(again.stdout.strip().splitlines()[-1])["keys_created"] == []


def test_init_registers_the_officials_tool_once(runner):
    """The officials' tool signs in as the well-known public client ``sealctl`` (JWT bearer grant only)."""
    from idp.oauth.clients import get_client

    outs = [json.loads(runner.invoke(args=["init"]).stdout.strip().splitlines()[-1]) for _ in range(2)]
    assert [o["officials_tool_client_created"] for o in outs] == [True, False]
    tool = get_client("sealctl")
    assert tool.is_public and tool.grant_types == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    assert tool.redirect_uris == [] and not tool.check_response_type("code")


def test_users_create_prints_sub(runner):
    r = runner.invoke(args=["users", "create", "--type", "citizen", "--username", "bob", "--password", "long enough pw",
                            "--name", "李四", "--id-number", "11010519491231002x", "--phone", "13900139000"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["sub"]


@pytest.mark.parametrize("args, words", [
    (["--username", "bob", "--password", "short"], "at least"),
    (["--username", "b", "--password", "long enough pw"], "username"),
    (["--username", "bob", "--password", "long enough pw", "--id-number", "110105194912310021"], "check character"),
    (["--username", "bob", "--password", "long enough pw", "--id-number", "110105194902300021"], "date of birth"),
    (["--username", "bob", "--password", "long enough pw", "--phone", "12345"], "phone"),
])
def test_users_create_refuses_bad_input_in_one_line(runner, args, words):
    r = runner.invoke(args=["users", "create", *args])
    assert r.exit_code != 0
    assert words in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_duplicate_username_and_id_number(runner):
    base = ["users", "create", "--password", "long enough pw", "--id-number", "11010519491231002X"]
    assert runner.invoke(args=[*base, "--username", "bob"]).exit_code == 0
    r = runner.invoke(args=[*base, "--username", "bob"])
    assert r.exit_code != 0 and "taken" in r.output
    r = runner.invoke(args=[*base, "--username", "carol"])
    assert r.exit_code != 0 and "ID number" in r.output


def test_clients_create_and_list(runner):
    r = runner.invoke(args=["clients", "create", "--name", "人社局", "--redirect-uri", "https://rsj.example.cn/cb",
                            "--post-logout-redirect-uri", "https://rsj.example.cn/", "--auth-method", "client_secret_post",
                            "--scope", "openid", "--scope", "profile", "--first-party"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["client_id"] and len(out["client_secret"]) >= 43  # 256 bits, base64url
    listed = json.loads(runner.invoke(args=["clients", "list"]).stdout)
    assert listed[0]["client_id"] == out["client_id"] and listed[0]["grant_types"] == ["authorization_code", "refresh_token"]
    assert "client_secret" not in listed[0]


@pytest.mark.parametrize("args, words", [
    (["--name", "x", "--redirect-uri", "http://rp.example.cn/cb"], "https"),
    (["--name", "x", "--redirect-uri", "https://rp.example.cn/cb#frag"], "fragment"),
    (["--name", "x", "--redirect-uri", "/relative"], "absolute"),
    (["--name", "x"], "redirect URI"),
    (["--name", "x", "--redirect-uri", "https://a/cb", "--grant-type", "password"], "grant type"),
    (["--name", "x", "--redirect-uri", "https://a/cb", "--scope", "admin"], "scope"),
    (["--name", "x", "--redirect-uri", "https://a/cb", "--auth-method", "private_key_jwt"], "JWKS"),
])
def test_clients_create_refuses_bad_input(runner, args, words):
    r = runner.invoke(args=["clients", "create", *args])
    assert r.exit_code != 0 and words in r.output and "Traceback" not in r.output


def test_audit_verify_detects_tampering(app, runner):
    from idp.audit.models import AuditEvent
    from idp.db import db

    runner.invoke(args=["users", "create", "--username", "bob", "--password", "long enough pw"])
    runner.invoke(args=["clients", "create", "--name", "x", "--redirect-uri", "https://a.example/cb"])
    ok = runner.invoke(args=["audit", "verify"])
    assert ok.exit_code == 0 and json.loads(ok.stdout)["intact"] is True
    ev = AuditEvent.query.order_by(AuditEvent.id).first()
    ev.detail = {"type": "forged"}
    db.session.commit()
    bad = runner.invoke(args=["audit", "verify"])
    assert bad.exit_code == 1 and json.loads(bad.stdout)["first_broken_id"] == ev.id
