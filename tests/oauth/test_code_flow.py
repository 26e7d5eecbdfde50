"""Authorization code flow end to end through the Flask test client.

OIDC Core 1.0 §3.1 (https://openid.net/specs/openid-connect-core-1_0.html#CodeFlowAuth).
"""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from joserfc import jwt
from joserfc.jwk import KeySet

from tests.conftest import basic, exchange


def _jwks(client):
    return KeySet.import_key_set(client.get("/jwks.json").get_json())


def test_login_consent_code_and_tokens(client, browser, rp, user):
    """§3.1.2.5 successful authentication response carries code, state and RFC 9207 iss."""
    code, verifier, params = browser.code(rp)
    resp = exchange(client, rp, code, verifier)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0
    assert resp.headers["Cache-Control"] == "no-store" and resp.headers["Pragma"] == "no-cache"
    idt = jwt.decode(body["id_token"], _jwks(client))
    assert idt.header["alg"] == "RS256" and idt.header["kid"]
    c = idt.claims
    assert c["iss"] == "http://127.0.0.1:5000" and c["aud"] == rp["client_id"] and c["sub"] == user.sub
    assert c["nonce"] == params["nonce"]
    for claim in ("exp", "iat", "auth_time", "acr", "amr", "sid", "at_hash"):
        assert claim in c, claim
    assert c["amr"] == ["pwd"]
    at = jwt.decode(body["access_token"], _jwks(client))
    assert at.header["typ"] == "at+jwt"  # RFC 9068 §2.1
    for claim in ("iss", "exp", "aud", "sub", "client_id", "iat", "jti"):
        assert claim in at.claims, claim
    assert "refresh_token" in body


def test_authorization_response_has_state_and_iss(browser, rp, user):
    resp = browser.authorize(rp, follow_login=("alice", "correct horse battery"))
    q = parse_qs(urlsplit(resp.location).query)
    assert q["state"] == [resp.params["state"]]
    assert q["iss"] == ["http://127.0.0.1:5000"]  # RFC 9207 §2


def test_second_client_gets_code_without_any_page(client, browser, rp, rp2, user):
    """SSO: a live session answers a second (first-party) client's /authorize with a code at once."""
    browser.code(rp)
    resp = browser.authorize(rp2, follow_login=None, consent=None)
    assert resp.status_code == 302 and "code=" in resp.location


def test_userinfo_get_and_post(client, tokens, user):
    """OIDC Core §5.3.1: UserInfo accepts GET and POST with a bearer token."""
    h = {"Authorization": "Bearer " + tokens["access_token"]}
    for method in (client.get, client.post):
        resp = method("/userinfo", headers=h)
        assert resp.status_code == 200
        assert resp.get_json()["sub"] == user.sub
        assert resp.get_json()["name"] == "张三"


def test_userinfo_without_token_says_so_in_www_authenticate(client):
    """RFC 6750 §3: a missing or bad token is answered with WWW-Authenticate."""
    resp = client.get("/userinfo")
    assert resp.status_code == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")
    resp = client.get("/userinfo", headers={"Authorization": "Bearer nope"})
    assert resp.status_code == 401 and 'error="invalid_token"' in resp.headers["WWW-Authenticate"]


def test_refresh_rotation_and_reuse_revokes_family(client, tokens, rp):
    """RFC 9700 §4.14.2: rotated refresh token reuse revokes the whole family."""
    r1 = tokens["refresh_token"]
    resp = client.post("/token", data={"grant_type": "refresh_token", "refresh_token": r1}, headers=basic(rp))
    assert resp.status_code == 200, resp.get_json()
    r2 = resp.get_json()["refresh_token"]
    a2 = resp.get_json()["access_token"]
    assert r2 != r1
    reuse = client.post("/token", data={"grant_type": "refresh_token", "refresh_token": r1}, headers=basic(rp))
    assert reuse.status_code == 400 and reuse.get_json()["error"] == "invalid_grant"
    again = client.post("/token", data={"grant_type": "refresh_token", "refresh_token": r2}, headers=basic(rp))
    assert again.get_json()["error"] == "invalid_grant"
    assert client.get("/userinfo", headers={"Authorization": "Bearer " + a2}).status_code == 401


def test_code_is_single_use_and_replay_revokes_tokens(client, browser, rp, user):
    """RFC 6749 §4.1.2: a code used twice is refused and what it issued is revoked."""
    code, verifier, _ = browser.code(rp)
    first = exchange(client, rp, code, verifier)
    assert first.status_code == 200
    second = exchange(client, rp, code, verifier)
    assert second.status_code == 400 and second.get_json()["error"] == "invalid_grant"
    at = first.get_json()["access_token"]
    assert client.get("/userinfo", headers={"Authorization": "Bearer " + at}).status_code == 401


def test_introspection_and_revocation(client, tokens, rp):
    """RFC 7662 §2.2 active/inactive; RFC 7009 §2.1 revoking a refresh token ends the grant."""
    at, rt = tokens["access_token"], tokens["refresh_token"]
    resp = client.post("/introspect", data={"token": at}, headers=basic(rp))
    body = resp.get_json()
    assert body["active"] is True and body["client_id"] == rp["client_id"]
    assert client.post("/revoke", data={"token": rt, "token_type_hint": "refresh_token"}, headers=basic(rp)).status_code == 200
    assert client.post("/introspect", data={"token": at}, headers=basic(rp)).get_json() == {"active": False}
    assert client.post("/introspect", data={"token": rt}, headers=basic(rp)).get_json() == {"active": False}


def test_a_disabled_account_redeems_nothing(client, browser, rp, user, runner):
    """RFC 6749 §5.2 ``invalid_grant``: a code issued before the account was disabled is not exchanged
    (the code and its person are read in one query; ``Person.active`` decides), and a refresh token
    issued before buys no new tokens (the account's sessions ended with it)."""
    code, verifier, _ = browser.code(rp)
    earlier = exchange(client, rp, *browser.code(rp)[:2])
    assert earlier.status_code == 200, earlier.get_json()
    assert runner.invoke(args=["users", "disable", "alice"]).exit_code == 0
    late = exchange(client, rp, code, verifier)
    assert late.status_code == 400 and late.get_json()["error"] == "invalid_grant", late.get_json()
    refresh = client.post("/token", data={"grant_type": "refresh_token",
                                          "refresh_token": earlier.get_json()["refresh_token"]}, headers=basic(rp))
    assert refresh.status_code == 400 and refresh.get_json()["error"] == "invalid_grant", refresh.get_json()
