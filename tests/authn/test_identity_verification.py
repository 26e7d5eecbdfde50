"""``idp users verify --username U --method counter`` (issue 4, operator commands): an in-person
real-name check raises the identity level to 2; sessions reach level 2 once TOTP is enrolled."""
from __future__ import annotations

import json

from idp.accounts.service import create_citizen
from idp.audit.models import AuditEvent
from idp.db import db
from tests.authn.support import clock, enroll, in_request  # noqa: F401
from tests.conftest import PASSWORD


def test_verify_records_the_check_and_says_the_resulting_assurance(app, runner, user, clock, in_request):
    r = runner.invoke(args=["users", "verify", "--username", "alice", "--method", "counter"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["sub"] == user.sub and out["identity_level"] == 2 and out["identity_method"] == "counter"
    assert out["identity_verified_at"] and out["totp_enrolled"] is False
    assert out["assurance_level"] == 1 and out["acr"] == "urn:idp:loa:1" and "TOTP" in out["note"]
    db.session.refresh(user)
    assert user.level == 2 and user.identity_method == "counter" and user.identity_verified_at is not None
    event = AuditEvent.query.filter_by(action="identity.verified").one()
    assert event.actor == "cli" and event.detail == {"method": "counter"}

    enroll(user, clock)
    again = json.loads(runner.invoke(args=["users", "verify", "--username", "alice", "--method", "counter"]).stdout)
    assert again["totp_enrolled"] is True and again["assurance_level"] == 2 and again["acr"] == "urn:idp:loa:2"


def test_verify_refuses_in_one_line(app, runner, user):
    create_citizen(username="bob", password=PASSWORD)  # no real name or ID number on file
    for args, words in ((["--username", "nobody", "--method", "counter"], "no account"),
                        (["--username", "alice", "--method", "telepathy"], "unknown verification method"),
                        (["--username", "bob", "--method", "counter"], "real name"),
                        (["--username", "alice"], "--method")):
        r = runner.invoke(args=["users", "verify", *args])
        assert r.exit_code != 0 and words in r.output and "Traceback" not in r.output, (args, r.output)
        assert len(r.output.strip().splitlines()) == 1 or words == "--method"
    assert AuditEvent.query.filter_by(action="identity.verified").count() == 0
