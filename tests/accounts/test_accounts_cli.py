"""Operator commands (issue 4 "Operator commands (contract)"): ``idp departments``, ``idp officials``,
``idp businesses``. JSON on stdout; a refusal is one line on stderr with a non-zero exit."""
from __future__ import annotations

import json

import pytest

from tests.accounts.support import HUAWEI, TENCENT, audit_actions, citizen


def ok(runner, *args):
    r = runner.invoke(args=list(args))
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def refused(runner, *args) -> str:
    r = runner.invoke(args=list(args))
    assert r.exit_code != 0, r.output
    assert r.stdout == "" and "Traceback" not in r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_departments_and_officials(runner, app):
    citizen("wang")
    assert ok(runner, "departments", "create", "--code", "SCJGJ", "--name", "本溪市市场监督管理局") == {
        "code": "SCJGJ", "name": "本溪市市场监督管理局"}
    assert ok(runner, "departments", "list") == [{"code": "SCJGJ", "name": "本溪市市场监督管理局", "status": "active"}]
    assert "exists" in refused(runner, "departments", "create", "--code", "SCJGJ", "--name", "again")
    out = ok(runner, "officials", "add", "--username", "wang", "--department", "SCJGJ", "--role", "approver")
    assert out["role"] == "approver"
    listed = ok(runner, "officials", "list", "--department", "SCJGJ")
    assert [(o["username"], o["role"]) for o in listed] == [("wang", "approver")]
    assert "no department" in refused(runner, "officials", "add", "--username", "wang", "--department", "X")
    assert "no active account" in refused(runner, "officials", "add", "--username", "nobody", "--department", "SCJGJ")
    assert ok(runner, "officials", "remove", "--username", "wang", "--department", "SCJGJ") == {
        "username": "wang", "department": "SCJGJ", "status": "ended", "sessions_ended": 0, "tokens_revoked": 0}
    assert ok(runner, "officials", "list") == []
    assert {"department.created", "official.added", "official.removed"} <= set(audit_actions())


def test_closing_a_department(runner, app):
    """``idp departments close CODE``: its memberships end; closing it again is a one-line refusal."""
    citizen("wang")
    ok(runner, "departments", "create", "--code", "SCJGJ", "--name", "本溪市市场监督管理局")
    ok(runner, "officials", "add", "--username", "wang", "--department", "SCJGJ")
    assert ok(runner, "departments", "close", "SCJGJ") == {
        "code": "SCJGJ", "status": "closed", "officials_removed": 1, "sessions_ended": 0, "tokens_revoked": 0}
    assert ok(runner, "officials", "list") == []
    assert "already closed" in refused(runner, "departments", "close", "SCJGJ")
    assert "no department" in refused(runner, "departments", "close", "NOPE")
    assert "is not active" in refused(runner, "officials", "add", "--username", "wang", "--department", "SCJGJ")


def test_default_role_is_staff(runner, app):
    citizen("lisi")
    ok(runner, "departments", "create", "--code", "RSJ", "--name", "人社局")
    assert ok(runner, "officials", "add", "--username", "lisi", "--department", "RSJ")["role"] == "staff"


def test_businesses_create_add_agent_list(runner, app):
    boss = citizen("boss", verified=True)
    clerk = citizen("clerk")
    created = ok(runner, "businesses", "create", "--uscc", TENCENT.lower(), "--name", "腾讯科技（深圳）有限公司",
                 "--representative", "boss")
    assert created["id"] and created["uscc"] == TENCENT
    added = ok(runner, "businesses", "add-agent", "--business", created["id"], "--username", "clerk",
               "--until", "2099-12-31")
    assert added["status"] == "pending"  # the agent must still confirm
    assert added["valid_until"] == "2099-12-31T16:00:00Z"  # the end of that day in China
    [listed] = ok(runner, "businesses", "list")
    assert listed["id"] == created["id"] and listed["representative"] == "boss"
    assert listed["agents"] == [{"username": "clerk", "status": "pending", "valid_from": listed["agents"][0]["valid_from"],
                                 "valid_until": "2099-12-31T16:00:00Z"}]
    from idp.accounts import representation as reps

    assert reps.usable_representations(clerk) == []
    assert len(reps.usable_representations(boss)) == 1
    assert {"business.registered", "representation.granted"} <= set(audit_actions())


@pytest.mark.parametrize("args, words", [
    (["--uscc", "9144030071526726XA", "--name", "x", "--representative", "boss"], "check character should be G, not A"),
    (["--uscc", "91440300715267", "--name", "x", "--representative", "boss"], "18 characters"),
    (["--uscc", TENCENT, "--name", "x", "--representative", "plain"], "real name has been verified"),
    (["--uscc", TENCENT, "--name", "x", "--representative", "nobody"], "no active account"),
])
def test_businesses_create_refusals(runner, app, args, words):
    citizen("boss", verified=True)
    citizen("plain")
    assert words in refused(runner, "businesses", "create", *args)


def test_messages_are_english_for_operators_even_after_a_chinese_page(runner, client, app):
    """The CLI speaks the source language whatever a page (Chinese by default) chose before."""
    citizen("boss", verified=True)
    client.get("/login")
    line = refused(runner, "businesses", "create", "--uscc", "9144030071526726XA", "--name", "x",
                   "--representative", "boss")
    assert "check character should be G, not A" in line


def test_one_business_per_uscc_and_agent_refusals(runner, app):
    citizen("boss", verified=True)
    citizen("boss2", verified=True)
    citizen("clerk")
    bid = ok(runner, "businesses", "create", "--uscc", HUAWEI, "--name", "华为技术有限公司", "--representative", "boss")["id"]
    assert "already registered" in refused(runner, "businesses", "create", "--uscc", HUAWEI, "--name", "y",
                                           "--representative", "boss2")
    assert "no such business" in refused(runner, "businesses", "add-agent", "--business", "nope", "--username", "clerk")
    assert "no active account" in refused(runner, "businesses", "add-agent", "--business", bid, "--username", "x")
    assert "in the future" in refused(runner, "businesses", "add-agent", "--business", bid, "--username", "clerk",
                                      "--until", "2001-01-01")
    r = runner.invoke(args=["businesses", "add-agent", "--business", bid, "--username", "clerk", "--until", "31/12/2099"])
    assert r.exit_code != 0 and "Traceback" not in r.output
    ok(runner, "businesses", "add-agent", "--business", bid, "--username", "clerk")
    assert "already an agent" in refused(runner, "businesses", "add-agent", "--business", bid, "--username", "clerk")
