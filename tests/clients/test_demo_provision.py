"""``clients/demo.py`` provisioning (``make run``), with the ``idp`` command line replaced by a recorder:
subsites are registered with their logout URIs, and demo state from before logout is re-provisioned."""
from __future__ import annotations

import json

import pytest

from clients import demo


@pytest.fixture
def calls(tmp_path, monkeypatch):
    recorded: list[tuple[str, ...]] = []
    created_seals: list[tuple[str, ...]] = []

    def fake_idp(*args: str) -> dict:
        recorded.append(args)
        if args[:2] == ("clients", "create"):
            return {"client_id": f"id-{len(recorded)}", "client_secret": f"-secret-{len(recorded)}"}
        if args[:2] == ("seals", "list"):
            return [{"id": 7, "name": demo.DEMO_SEAL["name"], "status": "active"}] if created_seals else []
        if args[:2] == ("seals", "create"):
            created_seals.append(args)
            return {"id": 7, "name": demo.DEMO_SEAL["name"], "status": "active"}
        if args[:2] == ("pki", "issue"):
            out = args[args.index("--out") + 1]
            with open(out, "wb") as fh:
                fh.write(b"p12")
        return {}

    monkeypatch.setattr(demo, "idp", fake_idp)
    monkeypatch.setattr(demo, "INSTANCE", tmp_path)
    monkeypatch.setattr(demo, "STATE", tmp_path / "demo.json")
    return recorded


def registrations(calls):
    return [c for c in calls if c[:2] == ("clients", "create")]


def option(args: tuple[str, ...], name: str) -> str:
    return args[args.index(name) + 1]


def test_subsites_are_registered_with_their_logout_uris(calls):
    state = demo.provision()
    regs = registrations(calls)
    assert len(regs) == len(demo.SUBSITES)
    for args, (key, _, port) in zip(regs, demo.SUBSITES):
        base = f"http://127.0.0.1:{port}"
        assert option(args, "--redirect-uri") == f"{base}/callback"
        assert option(args, "--post-logout-redirect-uri") == f"{base}/"
        assert option(args, "--backchannel-logout-uri") == f"{base}/backchannel-logout"
        assert option(args, "--frontchannel-logout-uri") == f"{base}/frontchannel-logout"
        assert state[key]["client_id"]
    assert state["version"] == demo.STATE_VERSION
    assert json.loads(demo.STATE.read_text()) == state

    calls.clear()
    demo.provision()  # remembered: nothing registered again
    assert registrations(calls) == []


def test_the_demo_seal_is_created_once_and_the_official_gets_a_certificate(calls):
    """The market regulator's approval seal, zhangsan authorized for it, and zhangsan's PKCS#12 file
    in the instance directory (0600) for `sealctl login`; a second run creates neither again."""
    state = demo.provision()
    [create] = [c for c in calls if c[:2] == ("seals", "create")]
    assert option(create, "--department") == "SCJGJ" and option(create, "--name") == "本溪市市场监督管理局行政审批专用章"
    assert ("seals", "authorize", "--seal", "7", "--username", "zhangsan") in calls
    [issue] = [c for c in calls if c[:2] == ("pki", "issue")]
    assert option(issue, "--username") == "zhangsan" and option(issue, "--password") == state["p12_password"]
    p12 = demo.INSTANCE / "zhangsan.p12"
    assert state["p12"] == str(p12) and state["seal"] == 7 and (p12.stat().st_mode & 0o777) == 0o600
    calls.clear()
    demo.provision()
    assert not any(c[:2] in (("seals", "create"), ("pki", "issue")) for c in calls)
    assert ("seals", "authorize", "--seal", "7", "--username", "zhangsan") in calls  # idempotent


def test_state_from_before_logout_is_reprovisioned(calls):
    old = {"issuer": demo.ISSUER, "user": demo.DEMO_USER["username"],
           **{key: {"client_id": "old", "client_secret": "old"} for key, _, _ in demo.SUBSITES}}
    demo.STATE.write_text(json.dumps(old))
    state = demo.provision()
    assert len(registrations(calls)) == len(demo.SUBSITES)
    assert not any(c[:2] == ("users", "create") for c in calls)  # the citizen is kept
    assert all(state[key]["client_id"] != "old" for key, _, _ in demo.SUBSITES)
    assert state["version"] == demo.STATE_VERSION


def test_the_demo_prints_the_codes_the_hub_would_have_sent(tmp_path, monkeypatch, capsys):
    """``make run`` uses the development outbox; new messages are shown on the console."""
    from idp.messaging.outbox import Outbox

    monkeypatch.setattr(demo, "OUTBOX", tmp_path / "outbox")
    outbox = Outbox(tmp_path / "outbox")
    outbox.send_sms("13900139000", "[Benxi City Identity] Your registration code is 123456.")
    seen = demo.print_new_messages(set())
    assert "[outbox] sms to 13900139000: [Benxi City Identity] Your registration code is 123456." in capsys.readouterr().out
    outbox.send_email("a@example.cn", "Your code", "654321")
    demo.print_new_messages(seen)
    assert capsys.readouterr().out.strip() == "[outbox] email to a@example.cn: Your code — 654321"


def test_the_demo_password_passes_the_password_policy(app):
    from idp.accounts.passwords import check_policy

    u = demo.DEMO_USER
    assert check_policy(u["password"], username=u["username"], id_number=u["id_number"], phone=u["phone"]) is None


def test_the_demo_citizen_is_verified_an_official_and_represents_a_business(calls):
    """Version 3 of the demo data: what the account pages and the ``org`` scope show in ``make run``."""
    demo.provision()
    assert ("users", "verify", "--username", "zhangsan", "--method", "counter") in calls
    assert [c[:2] for c in calls].count(("departments", "create")) == len(demo.DEPARTMENTS)
    business = next(c for c in calls if c[:2] == ("businesses", "create"))
    assert option(business, "--uscc") == demo.DEMO_BUSINESS["uscc"]
    assert option(business, "--representative") == "zhangsan"
    from idp.accounts.identifiers import normalize_uscc

    assert normalize_uscc(demo.DEMO_BUSINESS["uscc"]) == demo.DEMO_BUSINESS["uscc"]  # a valid code
    calls.clear()
    demo.provision()  # remembered: not provisioned twice
    assert not any(c[:2] == ("businesses", "create") for c in calls)
