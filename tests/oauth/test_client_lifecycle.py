"""A subsite's life after registration, from the operator's command line: its secret rotated (with a
grace period, so the subsite deploys the new one without an outage; at once for a leaked one), the
subsite disabled (refused everywhere, its tokens revoked) and enabled again; and an account enabled
again after it was disabled.

RFC 6749 §2.3.1 (client passwords), §5.2 (``invalid_client``, 401 with HTTP Basic), RFC 7009 and
RFC 6750 §3.1 (a revoked token is ``invalid_token``)."""
from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest

from idp.audit.models import AuditEvent
from idp.db import db, utcnow
from idp.oauth.clients import forget_client
from idp.oauth.models import Client
from tests.conftest import PASSWORD, Browser, basic, exchange, make_rp


def _basic(client_id: str, secret: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def _service(app):
    """A subsite that also calls the hub for itself (client_credentials)."""
    return make_rp(app, grant_types=["authorization_code", "refresh_token", "client_credentials"],
                   scopes=["openid", "profile", "offline_access"], first_party=True)


def _authenticates(client, rp, secret) -> tuple[int, int]:
    """(a token request's status, on the lean path; a revocation request's, on the general path)."""
    headers = _basic(rp["client_id"], secret)
    token = client.post("/token", data={"grant_type": "client_credentials"}, headers=headers).status_code
    revocation = client.post("/revoke", data={"token": "not-a-token"}, headers=headers).status_code  # RFC 7009 §2.2
    return token, revocation


def _rotate(runner, client_id, *args):
    r = runner.invoke(args=["clients", "rotate-secret", client_id, *args])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_a_rotated_secret_and_the_old_one_both_work_until_the_grace_period_ends(app, client, runner):
    rp = _service(app)
    old = rp["client_secret"]
    out = _rotate(runner, rp["client_id"], "--grace-hours", "2")
    new = out["client_secret"]
    assert new != old and len(new) >= 43 and out["previous_secret_valid_until"].endswith("Z")
    assert _authenticates(client, rp, new) == (200, 200)
    assert _authenticates(client, rp, old) == (200, 200)
    assert _authenticates(client, rp, "wrong")[0] == 401
    # the grace period ends
    Client.query.filter_by(client_id=rp["client_id"]).update({"previous_secret_expires_at": utcnow() - timedelta(seconds=1)})
    db.session.commit()
    forget_client(rp["client_id"])
    refused = client.post("/token", data={"grant_type": "client_credentials"}, headers=_basic(rp["client_id"], old))
    assert refused.status_code == 401 and refused.get_json()["error"] == "invalid_client"
    assert _authenticates(client, rp, old) == (401, 401)
    assert _authenticates(client, rp, new) == (200, 200)
    stored = Client.query.filter_by(client_id=rp["client_id"]).one()
    assert new not in (stored.secret_digest, stored.previous_secret_digest)  # digests only
    event = AuditEvent.query.filter_by(action="client.secret_rotated").one()
    assert event.detail == {"grace_seconds": 7200} and new not in json.dumps(event.detail)


def test_a_leaked_secret_is_rotated_with_no_grace(app, client, runner):
    rp = _service(app)
    out = _rotate(runner, rp["client_id"], "--grace-hours", "0")
    assert out["previous_secret_valid_until"] is None
    assert _authenticates(client, rp, rp["client_secret"]) == (401, 401)
    assert _authenticates(client, rp, out["client_secret"]) == (200, 200)
    # rotating again: only the latest secret and, with a grace period, the one before it
    again = _rotate(runner, rp["client_id"])
    assert _authenticates(client, rp, again["client_secret"]) == (200, 200)
    assert _authenticates(client, rp, out["client_secret"]) == (200, 200)
    assert _authenticates(client, rp, rp["client_secret"]) == (401, 401)


@pytest.mark.parametrize("args, message", [
    (["nosuchclient"], "no client 'nosuchclient'"),
    (["sealctl"], "authenticates with none, not a secret"),
    (["CLIENT", "--grace-hours", "-1"], "-1 is not in the range"),
])
def test_rotation_refusals_are_one_line(app, runner, args, message):
    from idp.oauth.clients import ensure_officials_tool_client

    ensure_officials_tool_client()
    rp = _service(app)
    args = [rp["client_id"] if a == "CLIENT" else a for a in args]
    r = runner.invoke(args=["clients", "rotate-secret", *args])
    assert r.exit_code != 0 and message in r.output and "Traceback" not in r.output
    assert Client.query.filter_by(client_id=rp["client_id"]).one().previous_secret_digest is None


def test_a_disabled_subsite_is_refused_everywhere_and_its_tokens_are_revoked(app, client, runner, user):
    rp = _service(app)
    browser = Browser(client)
    signed_in = exchange(client, rp, *browser.code(rp, scope="openid offline_access", extra={"prompt": "consent"})[:2])
    tokens = signed_in.get_json()
    pending_code, verifier, _ = browser.code(rp)

    r = runner.invoke(args=["clients", "disable", rp["client_id"]])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {"client_id": rp["client_id"], "status": "disabled", "tokens_revoked": 1}

    assert client.get("/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]}).status_code == 401
    assert _authenticates(client, rp, rp["client_secret"]) == (401, 401)
    authorize = browser.authorize(rp)
    assert authorize.status_code == 400 and "code=" not in (authorize.location or "")
    assert AuditEvent.query.filter_by(action="client.disabled").one().detail == {"tokens_revoked": 1}
    again = runner.invoke(args=["clients", "disable", rp["client_id"]])
    assert again.exit_code != 0 and "already disabled" in again.output

    r = runner.invoke(args=["clients", "enable", rp["client_id"]])
    assert r.exit_code == 0 and json.loads(r.stdout) == {"client_id": rp["client_id"], "status": "active"}
    # what disabling revoked stays revoked; the code issued before is no longer valid
    assert client.get("/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]}).status_code == 401
    refresh = client.post("/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                          headers=basic(rp))
    assert refresh.status_code == 400 and refresh.get_json()["error"] == "invalid_grant"
    assert exchange(client, rp, pending_code, verifier).get_json()["error"] == "invalid_grant"
    # new sign-ins work
    code, verifier, _ = browser.code(rp)
    assert exchange(client, rp, code, verifier).status_code == 200


def test_an_account_disabled_by_mistake_is_enabled_again(app, client, runner, user):
    assert runner.invoke(args=["users", "disable", "alice"]).exit_code == 0
    twice = runner.invoke(args=["users", "disable", "alice"])
    assert twice.exit_code != 0 and "already disabled" in twice.output  # and not audited twice
    assert Browser(client).login().status_code != 303
    r = runner.invoke(args=["users", "enable", "alice"])
    assert r.exit_code == 0 and json.loads(r.stdout) == {"sub": user.sub, "status": "active"}
    assert Browser(client).login("alice", PASSWORD).status_code == 303
    assert [e.action for e in AuditEvent.query.filter(AuditEvent.action.in_(("account.disabled", "account.enabled")))
            .order_by(AuditEvent.id)] == ["account.disabled", "account.enabled"]
    again = runner.invoke(args=["users", "enable", "alice"])
    assert again.exit_code != 0 and "not disabled" in again.output
    missing = runner.invoke(args=["users", "enable", "nobody"])
    assert missing.exit_code != 0 and "no account 'nobody'" in missing.output


def test_a_subsite_that_moved_is_updated_in_place(app, client, runner, user):
    """The subsite moved to a new address: its redirect URI is replaced (RFC 6749 §3.1.2.3: matched
    exactly, so the old one is refused, OIDC Core §3.1.2.1), a back-channel logout URI added; the
    client_id, the secret and the subject people have there (pairwise, OIDC Core §8.1) stay."""
    rp = make_rp(app, first_party=True, redirect_uri="https://old.example.cn/cb", subject_type="pairwise")
    browser = Browser(client)
    code, verifier, _ = browser.code(rp)
    before = exchange(client, rp, code, verifier).get_json()

    r = runner.invoke(args=["clients", "update", rp["client_id"], "--redirect-uri", "https://new.example.cn/cb",
                            "--backchannel-logout-uri", "https://new.example.cn/bc"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["redirect_uris"] == ["https://new.example.cn/cb"] and out["backchannel_logout_uri"] == "https://new.example.cn/bc"
    assert out["sector_identifier"] == "old.example.cn"
    assert browser.authorize(rp).status_code == 400  # the old redirect URI is no longer registered
    moved = {**rp, "redirect_uri": "https://new.example.cn/cb"}
    code, verifier, _ = browser.code(moved)
    after = exchange(client, moved, code, verifier).get_json()
    from joserfc import jwt
    from joserfc.jwk import KeySet

    keys = KeySet.import_key_set(client.get("/jwks.json").get_json())
    assert jwt.decode(after["id_token"], keys).claims["sub"] == jwt.decode(before["id_token"], keys).claims["sub"]
    event = AuditEvent.query.filter_by(action="client.updated").one()
    assert event.detail == {"redirect_uris": ["https://new.example.cn/cb"], "backchannel_logout_uri": "https://new.example.cn/bc"}
    # "" removes the logout URI
    r = runner.invoke(args=["clients", "update", rp["client_id"], "--backchannel-logout-uri", ""])
    assert r.exit_code == 0 and json.loads(r.stdout)["backchannel_logout_uri"] is None


@pytest.mark.parametrize("args, message", [
    (["--redirect-uri", "http://evil.example/cb"], "must use https"),
    (["--redirect-uri", "https://x.example.cn/cb#frag"], "fragment"),
    (["--scope", "admin"], "unknown scope 'admin'"),
    (["--name", " "], "1-128 characters"),
    ([], "nothing to change"),
    (["--redirect-uri", "https://rp.example.cn/callback"], "nothing to change"),
])
def test_update_refusals_change_nothing(app, runner, args, message):
    rp = make_rp(app)
    before = Client.query.filter_by(client_id=rp["client_id"]).one().redirect_uris
    r = runner.invoke(args=["clients", "update", rp["client_id"], *args])
    assert r.exit_code != 0 and message in r.output and "Traceback" not in r.output, r.output
    db.session.expire_all()
    assert Client.query.filter_by(client_id=rp["client_id"]).one().redirect_uris == before
    assert AuditEvent.query.filter_by(action="client.updated").count() == 0
