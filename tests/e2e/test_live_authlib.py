"""The live hub driven by Authlib's OAuth 2.0 client (``authlib.integrations.requests_client``).

Every request goes over HTTP to ``idp serve`` (Granian, 2 workers) on SQLite and on PostgreSQL;
JWTs are checked with ``joserfc`` against the keys published at ``jwks_uri``. The browser part
(login form, consent page) is ``tests.e2e.browser.HubBrowser``.
"""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from joserfc import jwt
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from tests.e2e.browser import HubBrowser, query
from tests.e2e.hub import CliError

pytestmark = pytest.mark.live

LEEWAY = 60


def jwks(discovery: dict) -> KeySet:
    with requests.Session() as http:
        resp = http.get(discovery["jwks_uri"], timeout=10)
    resp.raise_for_status()
    return KeySet.import_key_set(resp.json())


def half_hash(token: str) -> str:
    """OIDC Core §3.1.3.6: base64url of the left half of SHA-256 of the ASCII token (RS256/ES256)."""
    digest = hashlib.sha256(token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


def session_for(rp: dict, scope: str = "openid profile email") -> OAuth2Session:
    return OAuth2Session(rp["client_id"], rp["client_secret"], scope=scope, redirect_uri=rp.get("redirect_uri"),
                         code_challenge_method="S256", token_endpoint_auth_method="client_secret_basic",
                         default_timeout=15)


@dataclass
class Flow:
    """One completed code flow: what the RP sent, what came back, and the tokens."""

    oauth: OAuth2Session
    state: str
    nonce: str
    verifier: str
    authorization_url: str
    callback: str
    token: dict
    started: int


def code_flow(discovery: dict, rp: dict, browser: HubBrowser, oauth: OAuth2Session, **extra) -> Flow:
    started = int(time.time())
    verifier, nonce = generate_token(64), generate_token(24)
    url, state = oauth.create_authorization_url(discovery["authorization_endpoint"], code_verifier=verifier,
                                                nonce=nonce, **extra)
    callback = browser.authorize(url, rp["redirect_uri"])
    assert "code" in query(callback), callback
    token = oauth.fetch_token(discovery["token_endpoint"], authorization_response=callback, state=state,
                              code_verifier=verifier)
    return Flow(oauth, state, nonce, verifier, url, callback, token, started)


@pytest.fixture
def rp_session(live_hub):
    with session_for(live_hub.rp) as oauth:
        yield oauth


@pytest.fixture
def flow(live_hub, discovery, browser, rp_session) -> Flow:
    return code_flow(discovery, live_hub.rp, browser, rp_session)


def validate_id_token(id_token: str, keys: KeySet, *, issuer: str, client_id: str, nonce: str) -> jwt.Token:
    """OIDC Core 1.0 §3.1.3.7 steps 2-3, 6-11 (signature, iss, aud, alg, exp, iat, nonce)."""
    tok = jwt.decode(id_token, keys, algorithms=["RS256"])
    JWTClaimsRegistry(
        leeway=LEEWAY,
        iss={"essential": True, "value": issuer},
        sub={"essential": True},
        aud={"essential": True, "value": client_id},
        exp={"essential": True},
        iat={"essential": True},
        nonce={"essential": True, "value": nonce},
    ).validate(tok.claims)
    return tok


# -- discovery -------------------------------------------------------------------------------------


def test_discovery_document(live_hub, discovery):
    """OIDC Discovery 1.0 §3 and §4.3 (issuer identical to the URL it was fetched from, whatever the
    Host header says), RFC 8414 §2 and §3, RFC 7636 §6.2 (S256 only), RFC 9207 §3 (iss parameter
    advertised)."""
    d = discovery
    assert d["issuer"] == live_hub.issuer
    for name in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri",
                 "revocation_endpoint", "introspection_endpoint"):
        assert d[name].startswith(live_hub.issuer + "/"), (name, d[name])
    assert d["code_challenge_methods_supported"] == ["S256"]
    assert d["authorization_response_iss_parameter_supported"] is True
    assert "code" in d["response_types_supported"]
    assert "RS256" in d["id_token_signing_alg_values_supported"]  # OIDC Discovery §3: RS256 MUST be listed
    assert "public" in d["subject_types_supported"]
    assert set(d["grant_types_supported"]) >= {"authorization_code", "refresh_token", "client_credentials"}
    with requests.Session() as http:
        oauth_meta = http.get(live_hub.url("/.well-known/oauth-authorization-server"), timeout=10)
        # The document is cacheable (public): a forged Host header must not change what it says.
        forged = http.get(live_hub.url("/.well-known/openid-configuration"), headers={"Host": "evil.example"},
                          timeout=10)
    assert oauth_meta.status_code == 200 and oauth_meta.json()["issuer"] == live_hub.issuer
    assert forged.status_code == 200 and forged.json() == d


def test_jwks_is_public_keys_only(discovery):
    """RFC 7517 §4/§5 and OIDC Core §10.1.1: the key set publishes public keys, each with a kid."""
    with requests.Session() as http:
        doc = http.get(discovery["jwks_uri"], timeout=10).json()
    assert doc["keys"]
    for key in doc["keys"]:
        assert key.get("kid"), key
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key), "private key material published"
    assert {k["kty"] for k in doc["keys"]} >= {"RSA"}


# -- authorization code flow -------------------------------------------------------------------------


def test_code_flow_callback_has_state_and_iss(live_hub, flow):
    """RFC 6749 §4.1.2 (state returned unchanged), RFC 9207 §2 (iss equals the issuer, once)."""
    q = query(flow.callback)
    assert q["state"] == [flow.state]
    assert q["iss"] == [live_hub.issuer]
    assert len(q["code"]) == 1 and q["code"][0]
    assert "code_challenge=" in flow.authorization_url and "code_challenge_method=S256" in flow.authorization_url


def test_code_flow_id_token(live_hub, discovery, flow):
    """OIDC Core 1.0 §3.1.3.7 (ID token validation against the JWKS: alg, kid, iss, aud, exp, iat,
    nonce, acr, auth_time), §3.1.3.6 / §3.1.3.8 (at_hash), §2 (auth_time, acr, amr),
    OIDC Front-Channel Logout 1.0 §3 (sid); token response per §3.1.3.3."""
    token = flow.token
    assert token["token_type"].lower() == "bearer" and token["expires_in"] > 0
    keys = jwks(discovery)
    tok = validate_id_token(token["id_token"], keys, issuer=live_hub.issuer,
                            client_id=live_hub.rp["client_id"], nonce=flow.nonce)
    assert tok.header["alg"] == "RS256"
    assert tok.header["kid"] in {k.kid for k in keys.keys}
    c = tok.claims
    now = time.time()
    assert c["sub"] == live_hub.user["sub"]
    assert c["aud"] in (live_hub.rp["client_id"], [live_hub.rp["client_id"]])
    assert c["exp"] > now and c["iat"] <= now + LEEWAY
    assert c["at_hash"] == half_hash(token["access_token"])
    assert isinstance(c["sid"], str) and c["sid"]
    assert isinstance(c["auth_time"], int) and flow.started - LEEWAY <= c["auth_time"] <= now + LEEWAY
    assert c["acr"] in discovery["acr_values_supported"]
    assert c["amr"] == ["pwd"]


def test_pkce_wrong_verifier_is_refused(live_hub, discovery, browser, rp_session):
    """RFC 7636 §4.6: a code_verifier that does not match the code_challenge gets invalid_grant."""
    verifier = generate_token(64)
    url, state = rp_session.create_authorization_url(discovery["authorization_endpoint"], code_verifier=verifier,
                                                     nonce=generate_token(16))
    callback = browser.authorize(url, live_hub.rp["redirect_uri"])
    with pytest.raises(OAuthError) as err:
        rp_session.fetch_token(discovery["token_endpoint"], authorization_response=callback, state=state,
                               code_verifier=generate_token(64))
    assert err.value.error == "invalid_grant"


def test_userinfo(live_hub, discovery, flow):
    """OIDC Core 1.0 §5.3.1-§5.3.2: UserInfo with the bearer access token; its sub MUST equal the
    ID token's sub; profile and email claims for those scopes (§5.4)."""
    resp = flow.oauth.get(discovery["userinfo_endpoint"])
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"].startswith("application/json")
    info = resp.json()
    id_claims = jwt.decode(flow.token["id_token"], jwks(discovery)).claims
    assert info["sub"] == id_claims["sub"] == live_hub.user["sub"]
    assert info["name"] == "张三"
    assert info["email"] == "alice@example.cn"


def test_refresh_rotates_and_reuse_revokes_the_family(live_hub, discovery, flow):
    """RFC 6749 §6 (refresh), RFC 9700 §4.14.2 (rotation: a new refresh token each time; presenting
    a rotated one again is refused with invalid_grant, RFC 6749 §5.2, and revokes the active one)."""
    oauth, endpoint = flow.oauth, discovery["token_endpoint"]
    r1 = flow.token["refresh_token"]
    new = oauth.refresh_token(endpoint, refresh_token=r1)
    r2 = new["refresh_token"]
    assert r2 and r2 != r1
    assert new["access_token"] != flow.token["access_token"]
    assert oauth.get(discovery["userinfo_endpoint"]).status_code == 200  # the new access token works

    with pytest.raises(OAuthError) as err:
        oauth.refresh_token(endpoint, refresh_token=r1)
    assert err.value.error == "invalid_grant"
    with pytest.raises(OAuthError) as err:
        oauth.refresh_token(endpoint, refresh_token=r2)
    assert err.value.error == "invalid_grant"


def test_revocation_then_introspection_is_inactive(live_hub, discovery, flow):
    """RFC 7009 §2.1-§2.2 (revocation answers 200; revoking the refresh token ends the grant),
    RFC 7662 §2.2 (a revoked token introspects as {"active": false}), RFC 6749 §5.2 (invalid_grant)."""
    oauth, access, refresh = flow.oauth, flow.token["access_token"], flow.token["refresh_token"]
    resp = oauth.revoke_token(discovery["revocation_endpoint"], token=access, token_type_hint="access_token")
    assert resp.status_code == 200, resp.text
    resp = oauth.introspect_token(discovery["introspection_endpoint"], token=access, token_type_hint="access_token")
    assert resp.status_code == 200 and resp.json() == {"active": False}
    assert oauth.get(discovery["userinfo_endpoint"]).status_code == 401  # RFC 6750 §3.1

    resp = oauth.revoke_token(discovery["revocation_endpoint"], token=refresh, token_type_hint="refresh_token")
    assert resp.status_code == 200, resp.text
    resp = oauth.introspect_token(discovery["introspection_endpoint"], token=refresh, token_type_hint="refresh_token")
    assert resp.json() == {"active": False}
    with pytest.raises(OAuthError) as err:
        oauth.refresh_token(discovery["token_endpoint"], refresh_token=refresh)
    assert err.value.error == "invalid_grant"
    # RFC 7009 §2.2: revoking an unknown or already revoked token is still a 200.
    resp = oauth.revoke_token(discovery["revocation_endpoint"], token=refresh, token_type_hint="refresh_token")
    assert resp.status_code == 200


def test_introspection_of_a_live_token(live_hub, discovery, flow):
    """RFC 7662 §2.2: an active token introspects as active, with client_id, sub, scope, exp, iat."""
    resp = flow.oauth.introspect_token(discovery["introspection_endpoint"], token=flow.token["access_token"],
                                       token_type_hint="access_token")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["active"] is True
    assert body["client_id"] == live_hub.rp["client_id"]
    assert body["sub"] == live_hub.user["sub"]
    assert "openid" in body["scope"].split()
    assert body["exp"] > time.time() and body["iat"] <= time.time() + LEEWAY
    assert body.get("iss", live_hub.issuer) == live_hub.issuer


def test_another_client_can_neither_introspect_nor_revoke_the_token(live_hub, discovery, flow):
    """RFC 7662 §2.2 and §4 (a client not entitled to a token learns only {"active": false}) and
    RFC 7009 §2.1 (revocation by a client the token was not issued to is refused; the token lives on)."""
    access = flow.token["access_token"]
    with session_for(live_hub.rp_first_party) as other:
        resp = other.introspect_token(discovery["introspection_endpoint"], token=access,
                                      token_type_hint="access_token")
        assert resp.status_code == 200 and resp.json() == {"active": False}, resp.text
        resp = other.revoke_token(discovery["revocation_endpoint"], token=access, token_type_hint="access_token")
        assert 400 <= resp.status_code < 500, (resp.status_code, resp.text)
    resp = flow.oauth.introspect_token(discovery["introspection_endpoint"], token=access,
                                       token_type_hint="access_token")
    assert resp.json()["active"] is True


# -- client credentials --------------------------------------------------------------------------------


def test_client_credentials_access_token_is_a_verified_jwt(live_hub, discovery):
    """RFC 6749 §4.4 (client credentials grant; §4.4.3: no refresh token), RFC 9068 §2.1 (header
    typ at+jwt), §2.2 (iss, exp, aud, sub, client_id, iat, jti) and §4 (validated with the issuer's keys)."""
    service = live_hub.service
    with OAuth2Session(service["client_id"], service["client_secret"], default_timeout=15) as oauth:
        token = oauth.fetch_token(discovery["token_endpoint"], grant_type="client_credentials")
    assert token["token_type"].lower() == "bearer"
    assert "refresh_token" not in token and "id_token" not in token
    at = jwt.decode(token["access_token"], jwks(discovery), algorithms=["ES256", "RS256"])
    assert at.header["typ"].lower() in ("at+jwt", "application/at+jwt")
    assert at.header["kid"]
    JWTClaimsRegistry(
        leeway=LEEWAY,
        iss={"essential": True, "value": live_hub.issuer},
        exp={"essential": True},
        iat={"essential": True},
        jti={"essential": True},
        aud={"essential": True},
        sub={"essential": True, "value": service["client_id"]},
        client_id={"essential": True, "value": service["client_id"]},
    ).validate(at.claims)


# -- single sign-on, prompt=none -----------------------------------------------------------------------


def test_sso_first_party_client_gets_a_code_without_any_page(live_hub, discovery, browser, flow):
    """OIDC Core 1.0 §3.1.2.3 (an End-User already authenticated need not log in again) and §3.1.2.4
    (consent established by other means: a first-party client): the authorization request comes
    straight back with a code; the new ID token names the same person, session and auth_time."""
    assert browser.pages, "the first flow showed the login page"
    first = jwt.decode(flow.token["id_token"], jwks(discovery)).claims
    b = live_hub.rp_first_party
    with session_for(b) as oauth:
        second = code_flow(discovery, b, browser, oauth)
    assert browser.pages == [] and browser.requests == 1, browser.trail
    assert query(second.callback)["iss"] == [live_hub.issuer]
    claims = validate_id_token(second.token["id_token"], jwks(discovery), issuer=live_hub.issuer,
                               client_id=b["client_id"], nonce=second.nonce).claims
    assert claims["sub"] == first["sub"]
    assert claims["sid"] == first["sid"]
    assert claims["auth_time"] == first["auth_time"]


def test_prompt_none_without_a_session_is_login_required(live_hub, discovery, browser, rp_session):
    """OIDC Core 1.0 §3.1.2.1 (prompt=none: no page) and §3.1.2.6 (error=login_required at the
    redirect URI), RFC 6749 §4.1.2.1 (state returned), RFC 9207 §2 (iss, also on errors)."""
    state = "st-" + secrets.token_hex(8)
    url, _ = rp_session.create_authorization_url(discovery["authorization_endpoint"], state=state,
                                                 code_verifier=generate_token(64), nonce=generate_token(16),
                                                 prompt="none")
    callback = browser.authorize(url, live_hub.rp["redirect_uri"])
    assert browser.pages == [] and browser.requests == 1, browser.trail
    q = query(callback)
    assert q["error"] == ["login_required"]
    assert q["state"] == [state]
    assert q["iss"] == [live_hub.issuer]
    assert "code" not in q


def test_consent_denied_is_access_denied_with_state_and_iss(live_hub, discovery, browser, rp_session):
    """RFC 6749 §4.1.2.1 (the user refuses: error=access_denied at the redirect URI, with state),
    RFC 9207 §2 (iss on error responses too), OIDC Core 1.0 §3.1.2.1 (prompt=consent always asks)."""
    state = "st-" + secrets.token_hex(8)
    url, _ = rp_session.create_authorization_url(discovery["authorization_endpoint"], state=state,
                                                 code_verifier=generate_token(64), nonce=generate_token(16),
                                                 prompt="consent")
    callback = browser.authorize(url, live_hub.rp["redirect_uri"], consent="deny")
    assert browser.pages == ["login", "consent"], browser.trail
    q = query(callback)
    assert q["error"] == ["access_denied"] and q["state"] == [state] and q["iss"] == [live_hub.issuer]
    assert "code" not in q


# -- the operator's side ------------------------------------------------------------------------------


def test_keystore_on_disk_is_encrypted(live_hub):
    """RFC 5958 §3 (EncryptedPrivateKeyInfo): with IDP_KEYS_PASSPHRASE set, ``idp init`` stored every
    signing key encrypted and wrapped the data-protection key; nothing private is in the clear."""
    pems = sorted((live_hub.keys_dir / "signing").glob("*.pem"))
    assert pems, sorted(p.name for p in live_hub.keys_dir.rglob("*"))
    for pem in pems:
        text = pem.read_text()
        assert text.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----"), pem.name
        assert "BEGIN PRIVATE KEY" not in text and "BEGIN RSA PRIVATE KEY" not in text
    data_key = json.loads((live_hub.keys_dir / "data-key.json").read_text())
    assert data_key.get("wrap") not in (None, "none") and "key" not in data_key


@pytest.mark.xdist_group("live-sqlite")  # with the other sqlite tests (indirect params carry no marks)
@pytest.mark.parametrize("live_hub", ["sqlite"], indirect=True)
def test_cli_refuses_a_plain_http_redirect_uri(live_hub):
    """RFC 9700 §2.1 / RFC 8252 §7.3: redirect URIs use https, plain http only on loopback. The CLI
    refuses with a one-line message on stderr and a non-zero exit (nothing on stdout)."""
    with pytest.raises(CliError) as err:
        live_hub.create_client(name="不安全的子站", redirect_uris=["http://rp.example.cn/callback"])
    message = str(err.value)
    assert "exited 1" in message and "https" in message and "Traceback" not in message, message


def test_audit_chain_is_intact_after_live_traffic(live_hub, flow):
    """Not a protocol rule but the hub's own invariant (idp/audit): events written concurrently by
    two Granian workers and the CLI still form one unbroken hash chain (``idp audit verify``)."""
    result = live_hub.cli("audit", "verify")
    assert result["intact"] is True and result["first_broken_id"] is None, result
    assert result["events"] >= 5  # key creation, the citizen, three clients, logins ...


# -- concurrency: two Granian workers, one database ---------------------------------------------------


def _race(n: int, send) -> list[requests.Response]:
    """Run ``send(http)`` ``n`` times at once, each on its own connection."""
    barrier = threading.Barrier(n)

    def one(_):
        with requests.Session() as http:
            barrier.wait(timeout=10)
            return send(http)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_concurrent_redemptions_of_one_code_succeed_once(live_hub, discovery, browser, rp_session):
    """RFC 6749 §4.1.2 and §10.5: an authorization code is used at most once, also when several
    redemptions reach different server processes at the same moment; the losers get invalid_grant
    (§5.2); every token response carries Cache-Control: no-store (§5.1)."""
    rp = live_hub.rp
    verifier = generate_token(64)
    url, _ = rp_session.create_authorization_url(discovery["authorization_endpoint"], code_verifier=verifier,
                                                 nonce=generate_token(16))
    code = query(browser.authorize(url, rp["redirect_uri"]))["code"][0]
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": rp["redirect_uri"],
            "code_verifier": verifier}
    responses = _race(4, lambda http: http.post(discovery["token_endpoint"], data=data, timeout=30,
                                                auth=(rp["client_id"], rp["client_secret"])))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 400, 400, 400], [(r.status_code, r.text[:200]) for r in responses]
    for r in responses:  # RFC 6749 §5.1: token responses are not cached
        assert r.headers["Cache-Control"] == "no-store" and r.headers["Pragma"] == "no-cache", r.headers
    assert all(r.json()["error"] == "invalid_grant" for r in responses if r.status_code == 400)


def test_concurrent_refreshes_of_one_token_succeed_at_most_once(live_hub, discovery, flow):
    """RFC 9700 §4.14.2 (refresh token rotation): one refresh token buys at most one new token pair,
    even when it is presented to two server processes at once; the others get invalid_grant."""
    rp = live_hub.rp
    data = {"grant_type": "refresh_token", "refresh_token": flow.token["refresh_token"]}
    responses = _race(4, lambda http: http.post(discovery["token_endpoint"], data=data, timeout=30,
                                                auth=(rp["client_id"], rp["client_secret"])))
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) <= 1 and statuses.count(400) >= 3, [(r.status_code, r.text[:200]) for r in responses]
    assert all(r.json()["error"] == "invalid_grant" for r in responses if r.status_code == 400)
