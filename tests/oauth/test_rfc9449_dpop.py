"""Sender-constrained tokens (RFC 9449): /api/official accepts the DPoP-bound token only together
with a fresh proof by the bound key; a stolen token alone is useless."""
from __future__ import annotations

import pytest
from joserfc.jwk import ECKey

from clients.sealctl import hub as hubapi
from clients.sealctl.keys import Pkcs12Key
from tests.oauth.official_support import key, quick_pkcs12, token_request, tool  # noqa: F401

URL_PATH = "/api/official"


@pytest.fixture
def token(app, client, key, tool):
    r = token_request(client, app, key, tool)
    assert r.status_code == 200, r.json
    return r.json["access_token"]


def url(app):
    return app.config["ISSUER"] + URL_PATH


def call(client, token, proof=None, scheme="DPoP"):
    headers = {"Authorization": f"{scheme} {token}"}
    if proof:
        headers["DPoP"] = proof
    return client.get(URL_PATH, headers=headers)


def stranger():
    k = Pkcs12Key.__new__(Pkcs12Key)
    k._jwk, k.alg, k._chain = ECKey.generate_key("P-256"), "ES256", []
    return k


def dpop_refusals(app):
    from sqlalchemy import select

    from idp.audit.models import AuditEvent
    from idp.db import db

    rows = db.session.execute(select(AuditEvent).where(AuditEvent.action == "dpop.refused")).scalars()
    return [r.detail["reason"] for r in rows]


def test_whoami_with_token_and_proof(app, client, key, token):
    """RFC 9449 §7.1: Authorization: DPoP <token> and a proof with ath (§4.2) by the bound key."""
    r = call(client, token, hubapi.dpop_proof(key, "GET", url(app), token))
    assert r.status_code == 200, r.json
    body = r.json
    assert body["username"] == "wangwu" and body["official"][0]["department"] == "scjgj"
    assert body["acr"] == app.config["ACR_VALUES"].split()[2] and body["amr"] == ["swk"]
    assert r.headers["Cache-Control"] == "no-store"


def test_stolen_token_as_bearer_is_refused(app, client, token):
    """RFC 9449 §7.1: a DPoP-bound token presented as a Bearer token is refused (and audited)."""
    r = call(client, token, scheme="Bearer")
    assert r.status_code == 401 and r.json["error"] == "invalid_token"
    assert r.headers["WWW-Authenticate"].startswith("DPoP ")
    assert "bearer_use_of_bound_token" in dpop_refusals(app)


def test_stolen_token_without_proof_is_refused(app, client, token):
    """RFC 9449 §4.3 step 1: exactly one DPoP header is required."""
    r = call(client, token)
    assert r.status_code == 401 and r.json["error"] == "invalid_dpop_proof"


def test_stolen_token_with_a_proof_by_another_key(app, client, token):
    """RFC 9449 §4.3 step 12 / §6.1: the proof's key must match the token's cnf.jkt."""
    thief = stranger()
    r = call(client, token, hubapi.dpop_proof(thief, "GET", url(app), token))
    assert r.status_code == 401 and r.json["error"] == "invalid_dpop_proof"
    assert "proof_key_mismatch" in dpop_refusals(app)


def test_replayed_proof(app, client, key, token):
    """RFC 9449 §11.1: a proof's jti is accepted once."""
    proof = hubapi.dpop_proof(key, "GET", url(app), token)
    assert call(client, token, proof).status_code == 200
    r = call(client, token, proof)
    assert r.status_code == 401 and r.json["error"] == "invalid_dpop_proof"
    assert "proof_replayed" in dpop_refusals(app)


@pytest.mark.parametrize("method, where, reason", [
    ("POST", URL_PATH, "proof_wrong_htm"),
    ("GET", "/api/other", "proof_wrong_htu"),
])
def test_proof_for_another_method_or_url(app, client, key, token, method, where, reason):
    """RFC 9449 §4.3 steps 8-9: htm and htu must match this request."""
    proof = hubapi.dpop_proof(key, method, app.config["ISSUER"] + where, token)
    r = call(client, token, proof)
    assert r.status_code == 401 and r.json["error"] == "invalid_dpop_proof"
    assert reason in dpop_refusals(app)


def test_proof_for_another_token_or_without_ath(app, client, key, token):
    """RFC 9449 §4.3 step 11: ath must be the hash of the presented token."""
    r = call(client, token, hubapi.dpop_proof(key, "GET", url(app), token + "x"))
    assert r.status_code == 401
    r = call(client, token, hubapi.dpop_proof(key, "GET", url(app)))
    assert r.status_code == 401 and "proof_wrong_ath" in dpop_refusals(app)


def test_old_proof(app, client, key, token, monkeypatch):
    """RFC 9449 §4.3 step 10 (iat within an acceptable window)."""
    import time

    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - 3600)
    proof = hubapi.dpop_proof(key, "GET", url(app), token)
    monkeypatch.setattr(time, "time", real)
    r = call(client, token, proof)
    assert r.status_code == 401 and "proof_stale" in dpop_refusals(app)


def test_unbound_token_is_refused(app, client, tokens):
    """A plain (code-flow, level 1) Bearer token is not enough, even sent with the DPoP scheme."""
    access = tokens["access_token"]
    proof = hubapi.dpop_proof(stranger(), "GET", url(app), access)
    r = call(client, access, proof)
    assert r.status_code == 401 and r.json["error"] == "invalid_token"
    assert call(client, access, scheme="Bearer").status_code == 401


def test_no_authorization(client):
    """RFC 6750 §3.1 / RFC 9449 §7.1: a challenge naming the DPoP scheme and algorithms."""
    r = client.get(URL_PATH)
    assert r.status_code == 401 and 'algs="ES256' in r.headers["WWW-Authenticate"]


def test_token_endpoint_proof_replay_and_wrong_url(app, client, key, tool):
    """RFC 9449 §4.3 at the token endpoint (§5): a replayed proof or one for another URL is refused."""
    from tests.oauth.official_support import endpoint, refusals

    proof = hubapi.dpop_proof(key, "POST", endpoint(app))
    assert token_request(client, app, key, tool, proof=proof).status_code == 200
    r = token_request(client, app, key, tool, proof=proof)
    assert r.status_code == 400 and r.json["error"] == "invalid_dpop_proof" and "dpop_replayed" in refusals(app)
    r = token_request(client, app, key, tool, proof=hubapi.dpop_proof(key, "POST", app.config["ISSUER"] + "/x"))
    assert r.status_code == 400 and "dpop_wrong_htu" in refusals(app)
