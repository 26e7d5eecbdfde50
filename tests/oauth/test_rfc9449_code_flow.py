"""DPoP for a person's tokens (RFC 9449): the code exchange (§5) and the refresh (§5) bind the access
token to the proof's key (``cnf.jkt``, §6.1; ``token_type`` ``DPoP``); a public client's refresh
token is bound too; ``dpop_jkt`` at /authorize binds the code (§10). A refused proof is
``invalid_dpop_proof`` (§5), audited, stores nothing and leaves the code usable."""
from __future__ import annotations

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from sqlalchemy import func, select

from idp.audit.models import AuditEvent
from idp.db import db
from idp.oauth.models import AuthorizationCode, Token
from tests.conftest import basic, exchange, make_rp
from tests.oauth.dpop_support import proof, rfc7638


@pytest.fixture
def dpop_key():
    return ECKey.generate_key("P-256")


@pytest.fixture
def pub(app):
    """A public client (a single-page app): no secret, PKCE (RFC 9700 §2.1.1)."""
    return make_rp(app, auth_method="none", first_party=True)


def token_url(app) -> str:
    return app.config["ISSUER"] + "/token"


def _token_request(client, rp, data: dict, dpop=None):
    """POST /token as a confidential (HTTP Basic) or a public client (``client_id``), with a proof if given."""
    headers = {"DPoP": dpop} if dpop is not None else {}
    if rp["client_secret"]:
        headers.update(basic(rp))
    else:
        data = {**data, "client_id": rp["client_id"]}
    return client.post("/token", data=data, headers=headers)


def redeem(client, rp, code, verifier, dpop=None):
    return _token_request(client, rp, {"grant_type": "authorization_code", "code": code,
                                       "redirect_uri": rp["redirect_uri"], "code_verifier": verifier}, dpop)


def refresh(client, rp, refresh_token, dpop=None):
    return _token_request(client, rp, {"grant_type": "refresh_token", "refresh_token": refresh_token}, dpop)


def claims_of(client, token: str) -> dict:
    return jwt.decode(token, KeySet.import_key_set(client.get("/jwks.json").get_json())).claims


def stored_tokens() -> int:
    return db.session.execute(select(func.count()).select_from(Token)).scalar()


def dpop_refusals() -> list[str]:
    rows = db.session.execute(select(AuditEvent).where(AuditEvent.action == "dpop.refused")).scalars()
    return [r.detail["reason"] for r in rows]


def bound_tokens(app, client, browser, rp, key, **kw):
    code, verifier, _ = browser.code(rp, scope="openid profile offline_access", **kw)
    r = redeem(client, rp, code, verifier, proof(key, htu=token_url(app)))
    assert r.status_code == 200, r.get_json()
    return r.get_json()


@pytest.mark.parametrize("public", [True, False])
def test_code_exchange_with_a_proof_binds_the_access_token(app, client, browser, user, rp, pub, dpop_key, public):
    """RFC 9449 §5: a valid proof with the code exchange gives ``token_type`` ``DPoP`` and an access
    token whose ``cnf.jkt`` is the RFC 7638 thumbprint of the proof's key (§6.1); the row remembers it."""
    body = bound_tokens(app, client, browser, pub if public else rp, dpop_key)
    assert body["token_type"] == "DPoP" and body["refresh_token"]
    assert claims_of(client, body["access_token"])["cnf"] == {"jkt": rfc7638(dpop_key)}
    assert db.session.execute(select(Token.cnf_jkt)).scalar_one() == rfc7638(dpop_key)


def test_code_exchange_without_a_proof_stays_bearer(app, client, browser, user, rp):
    """RFC 9449 §5: DPoP is the client's choice; no proof, a Bearer token without ``cnf``."""
    code, verifier, _ = browser.code(rp)
    body = exchange(client, rp, code, verifier).get_json()
    assert body["token_type"] == "Bearer" and "cnf" not in claims_of(client, body["access_token"])
    assert db.session.execute(select(Token.cnf_jkt)).scalar_one() is None


@pytest.mark.parametrize("bad", ["garbage", "", "wrong_url", "old", "replayed"])
def test_a_bad_proof_is_refused_and_the_code_stays_usable(app, client, browser, user, rp, dpop_key, bad):
    """RFC 9449 §4.3, §5: a bad proof is ``invalid_dpop_proof`` (400); it is checked before the code is
    consumed and tokens stored, so nothing is stored and the code still redeems with a good proof
    (RFC 9700 §4.5 burns codes on replay, not on a refused request that issued nothing)."""
    code, verifier, _ = browser.code(rp)
    good = proof(dpop_key, htu=token_url(app))
    bad_proof = {"garbage": "not-a-jws", "": "", "wrong_url": proof(dpop_key, htu="https://evil.example/token"),
                 "old": proof(dpop_key, htu=token_url(app), iat=1), "replayed": good}[bad]
    if bad == "replayed":  # the same proof used once already (at another code exchange)
        other_code, other_verifier, _ = browser.code(rp)
        assert redeem(client, rp, other_code, other_verifier, good).status_code == 200
    before = stored_tokens()
    r = redeem(client, rp, code, verifier, bad_proof)
    assert r.status_code == 400 and r.get_json()["error"] == "invalid_dpop_proof", r.get_json()
    assert r.headers["Cache-Control"] == "no-store"
    assert stored_tokens() == before
    row = db.session.execute(select(AuthorizationCode).where(AuthorizationCode.used_at.is_(None))).scalars().one()
    assert row.used_at is None
    assert dpop_refusals()
    r = redeem(client, rp, code, verifier, proof(dpop_key, htu=token_url(app)))
    assert r.status_code == 200 and r.get_json()["token_type"] == "DPoP"


def test_public_clients_refresh_token_is_bound_to_the_key(app, client, browser, user, pub, dpop_key):
    """RFC 9449 §5: a refresh token issued to a public client with a proof is bound to its key; "the
    binding MUST be validated when the refresh token is later presented": no proof, or a proof by
    another key, is ``invalid_dpop_proof`` and the refresh token is not spent; the right key gets new
    tokens, still bound, and so is the next refresh token."""
    body = bound_tokens(app, client, browser, pub, dpop_key)
    for dpop in (None, proof(ECKey.generate_key("P-256"), htu=token_url(app)), "nope"):
        r = refresh(client, pub, body["refresh_token"], dpop)
        assert r.status_code == 400 and r.get_json()["error"] == "invalid_dpop_proof", r.get_json()
    assert "proof_key_mismatch" in dpop_refusals() and "proof_missing" in dpop_refusals()
    r = refresh(client, pub, body["refresh_token"], proof(dpop_key, htu=token_url(app)))
    assert r.status_code == 200, r.get_json()
    new = r.get_json()
    assert new["token_type"] == "DPoP" and claims_of(client, new["access_token"])["cnf"] == {"jkt": rfc7638(dpop_key)}
    assert refresh(client, pub, new["refresh_token"]).get_json()["error"] == "invalid_dpop_proof"
    assert refresh(client, pub, new["refresh_token"], proof(dpop_key, htu=token_url(app))).status_code == 200


def test_public_clients_unbound_refresh_token_binds_on_first_proof(app, client, browser, user, pub, dpop_key):
    """RFC 9449 §5: a refresh token issued to a public client that presents a proof MUST be bound: an
    unbound one refreshed with a proof gives bound tokens, and the new refresh token needs the key."""
    code, verifier, _ = browser.code(pub, scope="openid offline_access")
    body = redeem(client, pub, code, verifier).get_json()
    assert body["token_type"] == "Bearer"
    new = refresh(client, pub, body["refresh_token"], proof(dpop_key, htu=token_url(app))).get_json()
    assert new["token_type"] == "DPoP"
    assert refresh(client, pub, new["refresh_token"]).get_json()["error"] == "invalid_dpop_proof"


def test_confidential_clients_refresh_token_is_not_bound(app, client, browser, user, rp, dpop_key):
    """RFC 9449 §5: a confidential client's refresh token is not bound (its authentication constrains
    it); each new access token is bound to the key of the proof sent with that refresh, if any."""
    body = bound_tokens(app, client, browser, rp, dpop_key)
    plain = refresh(client, rp, body["refresh_token"])
    assert plain.status_code == 200 and plain.get_json()["token_type"] == "Bearer"
    other = ECKey.generate_key("P-256")
    r = refresh(client, rp, plain.get_json()["refresh_token"], proof(other, htu=token_url(app)))
    assert r.status_code == 200 and r.get_json()["token_type"] == "DPoP"
    assert claims_of(client, r.get_json()["access_token"])["cnf"] == {"jkt": rfc7638(other)}
    bad = refresh(client, rp, r.get_json()["refresh_token"], "garbage")
    assert bad.status_code == 400 and bad.get_json()["error"] == "invalid_dpop_proof"


def test_dpop_jkt_binds_the_code(app, client, browser, user, pub, dpop_key):
    """RFC 9449 §10: with ``dpop_jkt`` the code is stored with the thumbprint; at the exchange a proof
    by another key or no proof is refused ("it MUST reject the request", ``invalid_dpop_proof``) and
    the code stays usable; the named key redeems it."""
    code, verifier, _ = browser.code(pub, extra={"dpop_jkt": rfc7638(dpop_key)})
    assert db.session.execute(select(AuthorizationCode.dpop_jkt)).scalar_one() == rfc7638(dpop_key)
    for dpop in (None, proof(ECKey.generate_key("P-256"), htu=token_url(app))):
        r = redeem(client, pub, code, verifier, dpop)
        assert r.status_code == 400 and r.get_json()["error"] == "invalid_dpop_proof", r.get_json()
    assert stored_tokens() == 0
    r = redeem(client, pub, code, verifier, proof(dpop_key, htu=token_url(app)))
    assert r.status_code == 200 and r.get_json()["token_type"] == "DPoP"


@pytest.mark.parametrize("value", ["short", "x" * 44, "a" * 42 + "+="])
def test_malformed_dpop_jkt_is_an_invalid_request(app, browser, user, pub, value):
    """RFC 9449 §10: ``dpop_jkt`` is a base64url SHA-256 thumbprint (43 characters); anything else is
    an ``invalid_request`` sent back to the client (RFC 6749 §4.1.2.1) and no code is made."""
    from urllib.parse import parse_qs, urlsplit

    browser.login()
    resp = browser.authorize(pub, extra={"dpop_jkt": value})
    assert resp.status_code == 302 and resp.location.startswith(pub["redirect_uri"])
    q = parse_qs(urlsplit(resp.location).query)
    assert q["error"] == ["invalid_request"] and "code" not in q
    assert db.session.execute(select(func.count()).select_from(AuthorizationCode)).scalar() == 0


def userinfo_url(app) -> str:
    return app.config["ISSUER"] + "/userinfo"


def userinfo(client, token, dpop=None, scheme="DPoP", method="GET"):
    headers = {"Authorization": f"{scheme} {token}"}
    if dpop is not None:
        headers["DPoP"] = dpop
    return client.open("/userinfo", method=method, headers=headers)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_userinfo_with_a_bound_token_and_its_proof(app, client, browser, user, pub, dpop_key, method):
    """RFC 9449 §7.1: ``Authorization: DPoP <token>`` and a proof for this method and URL with ``ath``
    (§4.2, §4.3) by the bound key: the claims (OIDC Core §5.3.2)."""
    at = bound_tokens(app, client, browser, pub, dpop_key)["access_token"]
    r = userinfo(client, at, proof(dpop_key, htm=method, htu=userinfo_url(app), access_token=at), method=method)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["sub"] == claims_of(client, at)["sub"] and r.headers["Cache-Control"] == "no-store"


def test_a_bound_token_sent_as_bearer_is_refused(app, client, browser, user, pub, dpop_key):
    """RFC 9449 §7.1/§7.2: a DPoP-bound token used as a Bearer token (a stolen token without its key)
    is 401 with the ``DPoP`` challenge and ``invalid_token``; audited."""
    at = bound_tokens(app, client, browser, pub, dpop_key)["access_token"]
    for proof_value in (None, proof(dpop_key, htm="GET", htu=userinfo_url(app), access_token=at)):
        r = userinfo(client, at, proof_value, scheme="Bearer")
        assert r.status_code == 401 and r.get_json()["error"] == "invalid_token"
        challenge = r.headers["WWW-Authenticate"]
        assert challenge.startswith("DPoP ") and 'error="invalid_token"' in challenge
    assert dpop_refusals().count("bearer_use_of_bound_token") == 2


@pytest.mark.parametrize("bad", ["none", "no_ath", "other_key", "wrong_url", "replayed"])
def test_userinfo_refuses_a_bad_proof(app, client, browser, user, pub, dpop_key, bad):
    """RFC 9449 §4.3, §7.1: no proof, a proof without ``ath`` (or for another URL), by another key, or
    used before: 401 ``invalid_dpop_proof`` with the ``DPoP`` challenge; audited."""
    at = bound_tokens(app, client, browser, pub, dpop_key)["access_token"]
    good = proof(dpop_key, htm="GET", htu=userinfo_url(app), access_token=at)
    if bad == "replayed":
        assert userinfo(client, at, good).status_code == 200
    value = {"none": None, "no_ath": proof(dpop_key, htm="GET", htu=userinfo_url(app)),
             "other_key": proof(ECKey.generate_key("P-256"), htm="GET", htu=userinfo_url(app), access_token=at),
             "wrong_url": proof(dpop_key, htm="GET", htu=app.config["ISSUER"] + "/api/official", access_token=at),
             "replayed": good}[bad]
    r = userinfo(client, at, value)
    assert r.status_code == 401 and r.get_json()["error"] == "invalid_dpop_proof", r.get_json()
    assert r.headers["WWW-Authenticate"].startswith("DPoP ")
    assert dpop_refusals()


def test_an_unbound_token_with_the_dpop_scheme_is_refused(app, client, browser, user, rp, dpop_key):
    """RFC 9449 §7.1: the ``DPoP`` scheme is for bound tokens; a Bearer token sent with it is
    ``invalid_token`` (and still works as Bearer, RFC 6750 §2.1)."""
    code, verifier, _ = browser.code(rp)
    at = exchange(client, rp, code, verifier).get_json()["access_token"]
    r = userinfo(client, at, proof(dpop_key, htm="GET", htu=userinfo_url(app), access_token=at))
    assert r.status_code == 401 and r.get_json()["error"] == "invalid_token"
    assert userinfo(client, at, scheme="Bearer").status_code == 200


def test_introspection_reports_the_binding(app, client, browser, user, rp, dpop_key):
    """RFC 9449 §6.2, RFC 7662 §2.2: introspecting a bound user token says ``token_type`` ``DPoP`` and
    ``cnf.jkt``; its refresh token (a confidential client's: not bound) says no ``cnf``."""
    body = bound_tokens(app, client, browser, rp, dpop_key)
    info = client.post("/introspect", data={"token": body["access_token"]}, headers=basic(rp)).get_json()
    assert info["active"] is True and info["token_type"] == "DPoP" and info["cnf"] == {"jkt": rfc7638(dpop_key)}
    info = client.post("/introspect", data={"token": body["refresh_token"]}, headers=basic(rp)).get_json()
    assert info["active"] is True and info["token_type"] == "refresh_token" and "cnf" not in info
