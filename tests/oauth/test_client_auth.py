"""Client authentication at the token endpoint (RFC 6749 §2.3, OIDC Core §9, RFC 7523)."""
from __future__ import annotations

import time
import uuid

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from tests.conftest import basic, exchange, make_rp


def test_client_secret_post(app, client, browser, user):
    """OIDC Core §9 client_secret_post: credentials in the form body."""
    rp = make_rp(app, auth_method="client_secret_post", first_party=True)
    code, verifier, _ = browser.code(rp)
    resp = client.post("/token", data={"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                                       "redirect_uri": rp["redirect_uri"], "client_id": rp["client_id"],
                                       "client_secret": rp["client_secret"]})
    assert resp.status_code == 200, resp.get_json()


def test_method_must_match_registration(client, browser, rp, user):
    """A client registered for client_secret_basic cannot authenticate with client_secret_post."""
    code, verifier, _ = browser.code(rp)
    resp = client.post("/token", data={"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                                       "redirect_uri": rp["redirect_uri"], "client_id": rp["client_id"],
                                       "client_secret": rp["client_secret"]})
    assert resp.status_code in (400, 401) and resp.get_json()["error"] == "invalid_client"


def test_wrong_secret_is_401_with_challenge(client, rp):
    """RFC 6749 §5.2: invalid_client with 401 and WWW-Authenticate when Basic auth was used."""
    resp = client.post("/token", data={"grant_type": "authorization_code", "code": "x"},
                       headers=basic({**rp, "client_secret": "wrong"}))
    assert resp.status_code == 401 and resp.get_json()["error"] == "invalid_client"
    assert "Basic" in resp.headers.get("WWW-Authenticate", "")


def test_secret_is_stored_as_keyed_hash(app, rp):
    """Client secrets are never stored in the clear."""
    from idp.oauth.models import Client

    c = Client.query.filter_by(client_id=rp["client_id"]).one()
    assert rp["client_secret"] not in (c.secret_digest or "") and len(c.secret_digest) == 64


@pytest.fixture
def jwt_client(app):
    key = ECKey.generate_key("P-256", parameters={"kid": "rp-key-1"})
    rp = make_rp(app, auth_method="private_key_jwt", first_party=True, jwks={"keys": [key.as_dict(private=False)]})
    return rp, key


def _assertion(rp, key, **override):
    now = int(time.time())
    claims = {"iss": rp["client_id"], "sub": rp["client_id"], "aud": "http://127.0.0.1:5000/token",
              "iat": now, "exp": now + 60, "jti": str(uuid.uuid4())}
    claims.update(override)
    return jwt.encode({"alg": "ES256", "kid": "rp-key-1"}, claims, key)


def _jwt_exchange(client, rp, code, verifier, assertion):
    return client.post("/token", data={
        "grant_type": "authorization_code", "code": code, "code_verifier": verifier, "redirect_uri": rp["redirect_uri"],
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion})


def test_private_key_jwt(client, browser, user, jwt_client):
    """RFC 7523 §2.2 / OIDC Core §9 private_key_jwt."""
    rp, key = jwt_client
    code, verifier, _ = browser.code(rp)
    resp = _jwt_exchange(client, rp, code, verifier, _assertion(rp, key))
    assert resp.status_code == 200, resp.get_json()


def test_private_key_jwt_replayed_jti_is_refused(client, browser, user, jwt_client):
    """RFC 7523 §3 item 7: the jti of a used assertion is refused again."""
    rp, key = jwt_client
    assertion = _assertion(rp, key)
    code, verifier, _ = browser.code(rp)
    assert _jwt_exchange(client, rp, code, verifier, assertion).status_code == 200
    code, verifier, _ = browser.code(rp)
    resp = _jwt_exchange(client, rp, code, verifier, assertion)
    assert resp.status_code in (400, 401) and resp.get_json()["error"] == "invalid_client"


@pytest.mark.parametrize("override", [
    {"aud": "https://elsewhere.example/token"},
    {"exp": int(time.time()) - 300},
    {"iss": "someone-else"},
    {"exp": int(time.time()) + 86400},
])
def test_private_key_jwt_bad_claims(client, browser, user, jwt_client, override):
    """RFC 7523 §3: aud must name us, exp in the future (and not far), iss == sub == client_id."""
    rp, key = jwt_client
    code, verifier, _ = browser.code(rp)
    resp = _jwt_exchange(client, rp, code, verifier, _assertion(rp, key, **override))
    assert resp.status_code in (400, 401) and resp.get_json()["error"] == "invalid_client"


def test_private_key_jwt_signed_by_another_key(client, browser, user, jwt_client):
    rp, _ = jwt_client
    other = ECKey.generate_key("P-256", parameters={"kid": "rp-key-1"})
    code, verifier, _ = browser.code(rp)
    resp = _jwt_exchange(client, rp, code, verifier, _assertion(rp, other))
    assert resp.status_code in (400, 401) and resp.get_json()["error"] == "invalid_client"


def test_client_credentials(app, client):
    """RFC 6749 §4.4: a subsite back end gets an RFC 9068 access token for itself; no refresh token."""
    from joserfc.jwk import KeySet

    rp = make_rp(app, grant_types=["client_credentials"], redirect_uris=[])
    resp = client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(rp))
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert "refresh_token" not in body and "id_token" not in body
    tok = jwt.decode(body["access_token"], KeySet.import_key_set(client.get("/jwks.json").get_json()))
    assert tok.header["typ"] == "at+jwt" and tok.header["alg"] == "ES256"
    assert tok.claims["sub"] == rp["client_id"] == tok.claims["client_id"]


def test_client_credentials_cannot_get_user_scopes(app, client):
    rp = make_rp(app, grant_types=["client_credentials"], redirect_uris=[])
    resp = client.post("/token", data={"grant_type": "client_credentials", "scope": "openid profile"}, headers=basic(rp))
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_scope"


def test_grant_type_not_registered(client, rp):
    """RFC 6749 §5.2 unauthorized_client: the client may not use this grant."""
    resp = client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(rp))
    assert resp.status_code == 400 and resp.get_json()["error"] == "unauthorized_client"


def test_es256_id_token_on_client_request(app, client, browser, user):
    """OIDC Registration §2 id_token_signed_response_alg: ES256 when the client registered it."""
    from joserfc.jwk import KeySet

    rp = make_rp(app, first_party=True, id_token_alg="ES256")
    code, verifier, _ = browser.code(rp)
    body = exchange(client, rp, code, verifier).get_json()
    tok = jwt.decode(body["id_token"], KeySet.import_key_set(client.get("/jwks.json").get_json()))
    assert tok.header["alg"] == "ES256"
