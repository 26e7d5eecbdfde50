"""A client registered with ``dpop_bound_access_tokens`` (RFC 9449 §5.2): "If true, the authorization
server MUST reject token requests from this client that do not contain the DPoP header." The RFC
names no error code for this refusal; the token endpoint's DPoP error is ``invalid_dpop_proof``
(§5: an invalid proof is answered per RFC 6749 §5.2 with that ``error``; a required proof that is
absent is no valid proof), the same answer the hub already gives when a ``dpop_jkt`` code (§10) or a bound refresh token is presented without a proof.
Every grant refuses (code, refresh, client credentials), audited as ``dpop.refused`` /
``proof_required``; with a proof the tokens are bound as usual; other clients are unchanged, and
/authorize without ``dpop_jkt`` still works for such a client (§10: the binding is checked at the
token endpoint)."""
from __future__ import annotations

import json

import pytest
from joserfc.jwk import ECKey
from sqlalchemy import select

from idp.db import db
from idp.oauth.models import AuthorizationCode
from tests.conftest import basic, make_rp
from tests.oauth.dpop_support import proof, rfc7638
from tests.oauth.test_rfc9449_code_flow import (claims_of, dpop_refusals, redeem, refresh, stored_tokens,
                                                token_url)


@pytest.fixture
def dpop_key():
    return ECKey.generate_key("P-256")


@pytest.fixture
def bound_rp(app):
    """A confidential subsite that must always use DPoP."""
    return make_rp(app, name="必须DPoP子站", redirect_uri="https://dpop.example.cn/cb", dpop_bound_access_tokens=True)


@pytest.fixture
def bound_pub(app):
    """A public client (single-page app) that must always use DPoP."""
    return make_rp(app, name="必须DPoP前端", redirect_uri="https://spa.example.cn/cb", auth_method="none",
                   first_party=True, dpop_bound_access_tokens=True)


@pytest.fixture
def bound_cc(app):
    return make_rp(app, name="必须DPoP后端", grant_types=["client_credentials"], redirect_uris=[],
                   dpop_bound_access_tokens=True)


def _refused(resp) -> None:
    assert resp.status_code == 400, resp.get_json()
    assert resp.get_json()["error"] == "invalid_dpop_proof" and resp.get_json()["error_description"]
    assert resp.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("public", [False, True])
def test_code_exchange_without_a_proof_is_refused_and_the_code_stays_usable(
        app, client, browser, user, bound_rp, bound_pub, dpop_key, public):
    """RFC 9449 §5.2: no DPoP header → rejected (``invalid_dpop_proof``, §5), audited, nothing stored;
    the code (obtained at /authorize without ``dpop_jkt``, §10) is not consumed and redeems with a proof,
    giving a DPoP-bound access token (§6.1)."""
    rp = bound_pub if public else bound_rp
    code, verifier, _ = browser.code(rp, scope="openid offline_access")
    before = stored_tokens()
    _refused(redeem(client, rp, code, verifier))
    assert stored_tokens() == before
    assert db.session.execute(select(AuthorizationCode.used_at)).scalar_one() is None
    assert dpop_refusals() == ["proof_required"]
    r = redeem(client, rp, code, verifier, proof(dpop_key, htu=token_url(app)))
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["token_type"] == "DPoP"
    assert claims_of(client, r.get_json()["access_token"])["cnf"] == {"jkt": rfc7638(dpop_key)}


def test_an_empty_dpop_header_is_a_bad_proof_not_a_missing_one(app, client, browser, user, bound_rp):
    """RFC 9449 §4.3: a DPoP header that is present but empty is checked like any proof, and fails."""
    code, verifier, _ = browser.code(bound_rp)
    _refused(redeem(client, bound_rp, code, verifier, ""))
    assert dpop_refusals() == ["proof_missing"]


def test_refresh_without_a_proof_is_refused(app, client, browser, user, bound_rp, dpop_key):
    """RFC 9449 §5.2 applies to every token request, the refresh too (a confidential client's refresh
    token is not itself bound, §5, but this client must still send a proof): refused without one and
    the refresh token is not spent; with a proof, new DPoP-bound tokens."""
    code, verifier, _ = browser.code(bound_rp, scope="openid offline_access")
    body = redeem(client, bound_rp, code, verifier, proof(dpop_key, htu=token_url(app))).get_json()
    _refused(refresh(client, bound_rp, body["refresh_token"]))
    assert dpop_refusals() == ["proof_required"]
    r = refresh(client, bound_rp, body["refresh_token"], proof(dpop_key, htu=token_url(app)))
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["token_type"] == "DPoP"
    assert claims_of(client, r.get_json()["access_token"])["cnf"] == {"jkt": rfc7638(dpop_key)}


def test_client_credentials_without_a_proof_is_refused(app, client, bound_cc, dpop_key):
    """RFC 9449 §5.2 on the client_credentials grant (RFC 6749 §4.4): no proof, no token (not even a
    Bearer one from the lean path); with a proof, a DPoP-bound token."""
    r = client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(bound_cc))
    _refused(r)
    assert "access_token" not in r.get_json()
    assert dpop_refusals() == ["proof_required"]
    r = client.post("/token", data={"grant_type": "client_credentials"},
                    headers={**basic(bound_cc), "DPoP": proof(dpop_key, htu=token_url(app))})
    assert r.status_code == 200 and r.get_json()["token_type"] == "DPoP"
    assert claims_of(client, r.get_json()["access_token"])["cnf"] == {"jkt": rfc7638(dpop_key)}


def test_other_clients_are_unchanged(app, client, browser, user, rp):
    """RFC 9449 §5.2: the default is false; a client not registered for it still gets Bearer tokens
    without a proof, on every grant."""
    cc = make_rp(app, grant_types=["client_credentials"], redirect_uris=[])
    r = client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(cc))
    assert r.status_code == 200 and r.get_json()["token_type"] == "Bearer"
    code, verifier, _ = browser.code(rp, scope="openid offline_access")
    body = redeem(client, rp, code, verifier).get_json()
    assert body["token_type"] == "Bearer"
    assert refresh(client, rp, body["refresh_token"]).get_json()["token_type"] == "Bearer"
    assert dpop_refusals() == []


def test_the_setting_changed_later_takes_effect_at_once_on_this_node(app, client, dpop_key):
    """RFC 9449 §5.2 set on an existing registration (``idp clients dpop``): the cached registration is
    dropped, so the next token request without a proof is refused; set back, Bearer again."""
    from idp.oauth.clients import set_dpop_bound

    cc = make_rp(app, grant_types=["client_credentials"], redirect_uris=[])

    def ask():
        return client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(cc))

    assert ask().status_code == 200
    assert set_dpop_bound(cc["client_id"], True).dpop_bound_access_tokens is True
    _refused(ask())
    set_dpop_bound(cc["client_id"], False)
    assert ask().get_json()["token_type"] == "Bearer"


def test_cli_registers_a_dpop_bound_client(runner):
    """``idp clients create --dpop-bound``: one JSON line showing the setting; ``clients list`` shows
    it too; ``idp clients dpop ID --optional`` turns it off; an unknown client is a one-line error."""
    r = runner.invoke(args=["clients", "create", "--name", "公积金后端", "--grant-type", "client_credentials",
                            "--dpop-bound"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["dpop_bound_access_tokens"] is True and out["client_secret"]
    plain = json.loads(runner.invoke(args=["clients", "create", "--name", "普通后端", "--grant-type",
                                           "client_credentials"]).stdout)
    assert plain["dpop_bound_access_tokens"] is False
    listed = {c["client_id"]: c for c in json.loads(runner.invoke(args=["clients", "list"]).stdout)}
    assert listed[out["client_id"]]["dpop_bound_access_tokens"] is True
    assert listed[plain["client_id"]]["dpop_bound_access_tokens"] is False
    r = runner.invoke(args=["clients", "dpop", out["client_id"], "--optional"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {"client_id": out["client_id"], "dpop_bound_access_tokens": False}
    r = runner.invoke(args=["clients", "dpop", "nobody", "--required"])
    assert r.exit_code != 0 and "nobody" in r.output and len(r.output.strip().splitlines()) == 1
