"""The token, introspection, discovery and JWKS hot paths stay honest when they take shortcuts:
cached client registrations expire (README ``IDP_CLIENT_CACHE_TTL``), every token is fresh, and
the documents answered before Flask are the ones Flask would send."""
from __future__ import annotations

import time

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import update

from idp.db import db
from idp.oauth.models import Client
from tests.conftest import basic, make_rp


@pytest.fixture
def app_config():
    return {"CLIENT_CACHE_TTL": 0.5}


def _disable(client_id: str) -> None:
    """As an operator (or another node) would: straight in the database, not through this process."""
    db.session.execute(update(Client).where(Client.client_id == client_id).values(status="disabled"))
    db.session.commit()


def test_disabled_client_is_refused_within_the_cache_ttl(app, client):
    """RFC 6749 §2.3 / §5.2: a client disabled in the database stops authenticating within
    IDP_CLIENT_CACHE_TTL seconds on a node that had its registration cached."""
    rp = make_rp(app, grant_types=["client_credentials"], redirect_uris=[])
    assert client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(rp)).status_code == 200
    _disable(rp["client_id"])
    time.sleep(0.6)
    resp = client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(rp))
    assert resp.status_code == 401 and resp.get_json()["error"] == "invalid_client"


@pytest.mark.parametrize("app_config", [{"CLIENT_CACHE_TTL": 0}])
def test_without_cache_a_disabled_client_is_refused_at_once(app, client):
    rp = make_rp(app, grant_types=["client_credentials"], redirect_uris=[])
    assert client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(rp)).status_code == 200
    _disable(rp["client_id"])
    resp = client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(rp))
    assert resp.status_code == 401 and resp.get_json()["error"] == "invalid_client"


def test_a_cached_client_still_needs_its_secret(app, client):
    """The cache holds the registration, never a verdict: a wrong secret is refused on a warm cache."""
    rp = make_rp(app, grant_types=["client_credentials"], redirect_uris=[])
    assert client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(rp)).status_code == 200
    wrong = {**rp, "client_secret": rp["client_secret"][:-2] + "xx"}
    resp = client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(wrong))
    assert resp.status_code == 401 and resp.get_json()["error"] == "invalid_client"


def test_every_client_credentials_token_is_fresh(app, client):
    """RFC 9068 §2.2 / RFC 7519 §4.1.7: each response is a newly signed token with its own jti."""
    rp = make_rp(app, grant_types=["client_credentials"], redirect_uris=[])
    keys = KeySet.import_key_set(client.get("/jwks.json").get_json())
    jtis = set()
    for _ in range(5):
        body = client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(rp)).get_json()
        jtis.add(jwt.decode(body["access_token"], keys).claims["jti"])
    assert len(jtis) == 5


def test_revoked_access_token_is_inactive_at_introspection(app, client):
    """RFC 7009 §2.1 then RFC 7662 §2.2: a revoked access token introspects as inactive."""
    rp = make_rp(app, grant_types=["client_credentials"], redirect_uris=[])
    token = client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(rp)).get_json()["access_token"]
    assert client.post("/introspect", data={"token": token}, headers=basic(rp)).get_json()["active"] is True
    assert client.post("/revoke", data={"token": token}, headers=basic(rp)).status_code == 200
    assert client.post("/introspect", data={"token": token}, headers=basic(rp)).get_json() == {"active": False}


@pytest.mark.parametrize("path", ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server",
                                  "/jwks.json"])
def test_documents_answered_before_flask_match_the_views(client, path):
    """OIDC Discovery §4.2 / RFC 8414 §3.2: the fast answer carries the Flask view's body and headers
    (a query string goes through Flask, so the two can be compared)."""
    fast, slow = client.get(path), client.get(path + "?via=flask")
    assert fast.status_code == slow.status_code == 200
    assert fast.data == slow.data and fast.mimetype == "application/json"
    for header in ("Cache-Control", "Access-Control-Allow-Origin", "X-Content-Type-Options", "Referrer-Policy",
                   "Content-Length"):
        assert fast.headers.get(header) == slow.headers.get(header), header
    assert fast.headers.get("X-Request-Id") and fast.headers["X-Request-Id"] != slow.headers["X-Request-Id"]


def test_client_credentials_tokens_are_stateless_yet_introspectable(app, client):
    """RFC 9068 §4 / RFC 7662 §2.2: a client's own token is not stored, yet introspects as active for
    its client only, and a tampered one is inactive."""
    from sqlalchemy import func, select

    from idp.oauth.models import Token

    rp = make_rp(app, grant_types=["client_credentials"], redirect_uris=[])
    other = make_rp(app, grant_types=["client_credentials"], redirect_uris=[])
    token = client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(rp)).get_json()["access_token"]
    assert db.session.execute(select(func.count()).select_from(Token)).scalar() == 0
    body = client.post("/introspect", data={"token": token}, headers=basic(rp)).get_json()
    assert body["active"] is True and body["client_id"] == body["sub"] == rp["client_id"] and body["jti"]
    assert client.post("/introspect", data={"token": token}, headers=basic(other)).get_json() == {"active": False}
    head, payload, sig = token.split(".")
    forged = f"{head}.{payload}.{sig[:-4]}AAAA"
    assert client.post("/introspect", data={"token": forged}, headers=basic(rp)).get_json() == {"active": False}


def test_user_token_without_its_row_is_inactive(app, client, browser, rp, user):
    """A user-bound token needs its row (its person or session may be gone): it never passes as stateless."""
    from sqlalchemy import delete

    from idp.oauth.models import Token
    from tests.conftest import exchange

    code, verifier, _ = browser.code(rp)
    tokens = exchange(client, rp, code, verifier).get_json()
    db.session.execute(delete(Token))
    db.session.commit()
    assert client.post("/introspect", data={"token": tokens["access_token"]}, headers=basic(rp)).get_json() == {"active": False}
