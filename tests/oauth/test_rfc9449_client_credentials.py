"""DPoP on the client_credentials grant (RFC 9449 §5): a subsite's back end that sends a proof gets
an access token bound to the proof's key (``cnf.jkt``, §6.1; ``token_type`` ``DPoP``, §5), still
stateless (no row) yet introspectable (RFC 7662, ``cnf`` per §6.2) and revocable (RFC 7009); a bad
proof is refused with ``invalid_dpop_proof`` and nothing is issued; no proof, a Bearer token."""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time

import pytest
from joserfc import jws, jwt
from joserfc.jwk import ECKey, KeySet
from sqlalchemy import func, select

from idp.audit.models import AuditEvent
from idp.db import db
from idp.oauth.models import Token
from tests.conftest import basic, make_rp
from tests.oauth.dpop_support import proof, rfc7638
from tests.oauth.official_support import key, tool  # noqa: F401


@pytest.fixture
def cc(app):
    return make_rp(app, grant_types=["client_credentials"], redirect_uris=[])


@pytest.fixture
def dpop_key():
    return ECKey.generate_key("P-256")


def token_url(app) -> str:
    return app.config["ISSUER"] + "/token"


def ask(client, cc, dpop=None, **data):
    headers = basic(cc)
    if dpop is not None:
        headers["DPoP"] = dpop
    return client.post("/token", data={"grant_type": "client_credentials", **data}, headers=headers)


def claims_of(client, token: str) -> dict:
    return jwt.decode(token, KeySet.import_key_set(client.get("/jwks.json").get_json())).claims


def introspect(client, cc, token: str) -> dict:
    return client.post("/introspect", data={"token": token}, headers=basic(cc)).get_json()


def stored_tokens() -> int:
    return db.session.execute(select(func.count()).select_from(Token)).scalar()


def dpop_refusals() -> list[str]:
    rows = db.session.execute(select(AuditEvent).where(AuditEvent.action == "dpop.refused")).scalars()
    return [r.detail["reason"] for r in rows]


def test_a_valid_proof_binds_the_token(app, client, cc, dpop_key):
    """RFC 9449 §5: the proof is checked and the token bound: ``token_type`` ``DPoP``, the JWT's
    ``cnf.jkt`` the RFC 7638 thumbprint of the proof's key (§6.1); still stateless (RFC 9068, no row),
    and introspection says active with the ``cnf`` (§6.2, RFC 7662 §2.2)."""
    r = ask(client, cc, proof(dpop_key, htu=token_url(app)))
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["token_type"] == "DPoP" and "refresh_token" not in body
    assert r.headers["Cache-Control"] == "no-store"
    c = claims_of(client, body["access_token"])
    assert c["cnf"] == {"jkt": rfc7638(dpop_key)} and c["sub"] == c["client_id"] == cc["client_id"]
    assert stored_tokens() == 0
    info = introspect(client, cc, body["access_token"])
    assert info["active"] is True and info["cnf"] == {"jkt": rfc7638(dpop_key)}
    assert info["token_type"] == "DPoP" and info["client_id"] == cc["client_id"]


def test_without_a_proof_the_token_is_bearer(app, client, cc):
    """RFC 9449 §5: DPoP is the client's choice; without a proof the answer is the RFC 6749 §4.4.3
    Bearer token it always was, with no ``cnf``."""
    r = ask(client, cc)
    assert r.status_code == 200 and r.get_json()["token_type"] == "Bearer"
    token = r.get_json()["access_token"]
    assert "cnf" not in claims_of(client, token)
    info = introspect(client, cc, token)
    assert info["active"] is True and info["token_type"] == "Bearer" and "cnf" not in info


def test_the_thumbprint_is_the_proof_keys_for_rsa_too(app, client, cc):
    """RFC 9449 §6.1 / RFC 7638 §3.2: an RSA proof key binds by its own thumbprint (e, kty, n)."""
    from joserfc.jwk import RSAKey

    rsa = RSAKey.generate_key(2048)
    claims = {"htm": "POST", "htu": token_url(app), "iat": int(time.time()), "jti": secrets.token_urlsafe(16)}
    pub = rsa.as_dict(private=False)
    signed = jws.serialize_compact({"typ": "dpop+jwt", "alg": "PS256", "jwk": pub}, json.dumps(claims).encode(), rsa,
                                    algorithms=["PS256"])
    r = ask(client, cc, signed)
    assert r.status_code == 200, r.get_json()
    canonical = json.dumps({"e": pub["e"], "kty": "RSA", "n": pub["n"]}, separators=(",", ":")).encode()
    expected = base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()
    assert claims_of(client, r.get_json()["access_token"])["cnf"] == {"jkt": expected}


@pytest.mark.parametrize("make, reason", [
    (lambda app, k: proof(k, htm="GET", htu=token_url(app)), "proof_wrong_htm"),                   # §4.3 step 8
    (lambda app, k: proof(k, htu=app.config["ISSUER"] + "/introspect"), "proof_wrong_htu"),        # §4.3 step 9
    (lambda app, k: proof(k, htu=token_url(app), header_key=ECKey.generate_key("P-256")), "proof_bad_signature"),  # step 6
    (lambda app, k: proof(k, htu=token_url(app), iat=int(time.time()) - 3600), "proof_stale"),     # §4.3 step 10
    (lambda app, k: "not-a-proof", "proof_malformed"),                                             # §4.3 step 2
    (lambda app, k: "", "proof_missing"),                                                          # §4.3 step 1
])
def test_a_bad_proof_is_refused_and_nothing_issued(app, client, cc, dpop_key, make, reason):
    """RFC 9449 §5: a proof failing the §4.3 checks gets 400 ``invalid_dpop_proof`` (no Bearer token
    instead), and the refusal is audited."""
    r = ask(client, cc, make(app, dpop_key))
    assert r.status_code == 400, r.get_json()
    body = r.get_json()
    assert body["error"] == "invalid_dpop_proof" and body["error_description"] and "access_token" not in body
    assert dpop_refusals() == [reason]
    assert stored_tokens() == 0


def test_a_replayed_proof_is_refused(app, client, cc, dpop_key):
    """RFC 9449 §11.1 (and §4.3 step 12): a proof's ``jti`` is accepted once, also at the token endpoint."""
    p = proof(dpop_key, htu=token_url(app))
    assert ask(client, cc, p).status_code == 200
    r = ask(client, cc, p)
    assert r.status_code == 400 and r.get_json()["error"] == "invalid_dpop_proof"
    assert dpop_refusals() == ["proof_replayed"]


def test_two_proofs_are_refused(app, client, cc, dpop_key):
    """RFC 9449 §4.3 step 1: exactly one ``DPoP`` header."""
    headers = [("Authorization", basic(cc)["Authorization"]), ("DPoP", proof(dpop_key, htu=token_url(app))),
               ("DPoP", proof(dpop_key, htu=token_url(app)))]
    r = client.post("/token", data={"grant_type": "client_credentials"}, headers=headers)
    assert r.status_code == 400 and r.get_json()["error"] == "invalid_dpop_proof"


def test_a_wrong_secret_is_refused_before_the_proof_is_used(app, client, cc, dpop_key):
    """RFC 6749 §3.2.1 first: an unauthenticated request is ``invalid_client``, and its proof is not
    spent (the real client may still use it)."""
    p = proof(dpop_key, htu=token_url(app))
    wrong = {**cc, "client_secret": "wrong"}
    r = client.post("/token", data={"grant_type": "client_credentials"}, headers={**basic(wrong), "DPoP": p})
    assert r.status_code == 401 and r.get_json()["error"] == "invalid_client"
    assert ask(client, cc, p).status_code == 200


def test_a_bound_client_token_is_revocable(app, client, cc, dpop_key):
    """RFC 7009 §2.1-2.2: the bound stateless token is revoked (a revoked row by digest), after which
    introspection says inactive (RFC 7662 §2.2)."""
    token = ask(client, cc, proof(dpop_key, htu=token_url(app))).get_json()["access_token"]
    r = client.post("/revoke", data={"token": token}, headers=basic(cc))
    assert r.status_code == 200
    assert stored_tokens() == 1
    assert introspect(client, cc, token) == {"active": False}


def test_another_client_cannot_introspect_a_bound_token(app, client, cc, dpop_key):
    """RFC 7662 §2.1 / §4: a subsite sees only its own tokens, bound or not."""
    other = make_rp(app, grant_types=["client_credentials"], redirect_uris=[])
    token = ask(client, cc, proof(dpop_key, htu=token_url(app))).get_json()["access_token"]
    assert introspect(client, other, token) == {"active": False}


def test_user_tokens_still_need_their_row(app, client, key, tool):
    """The stateless shape rule stays strict for people: an official's DPoP-bound token (``cnf`` plus
    ``auth_time``/``acr``/``amr``) is never taken for a client's own token, with or without its row."""
    from sqlalchemy import delete

    from idp.oauth import tokens
    from tests.oauth.official_support import token_request

    r = token_request(client, app, key, tool)
    assert r.status_code == 200 and r.get_json()["token_type"] == "DPoP"
    access = r.get_json()["access_token"]
    assert "cnf" in claims_of(client, access)
    assert tokens.stateless_claims(access) is None
    db.session.execute(delete(Token))
    db.session.commit()
    assert tokens.stateless_claims(access) is None and tokens.find_access_token(access) is None



def test_an_officials_bound_token_introspects_with_its_cnf(app, client, key):
    """RFC 9449 §6.2 / RFC 7662 §2.2: a stored DPoP-bound user token (the officials' JWT bearer
    grant, RFC 7523 §2.1, here by a confidential client that may introspect) reports ``cnf`` and
    ``token_type`` ``DPoP``; a user's Bearer token reports neither."""
    from clients.sealctl import hub as hubapi
    from tests.oauth.official_support import GRANT, assertion, endpoint

    rp = make_rp(app, grant_types=[GRANT], redirect_uris=[])
    r = client.post("/token", data={"grant_type": GRANT, "assertion": assertion(key, rp["client_id"], endpoint(app))},
                    headers={**basic(rp), "DPoP": hubapi.dpop_proof(key, "POST", endpoint(app))})
    assert r.status_code == 200 and r.get_json()["token_type"] == "DPoP", r.get_json()
    access = r.get_json()["access_token"]
    info = introspect(client, rp, access)
    assert info["active"] is True and info["token_type"] == "DPoP"
    assert info["cnf"] == claims_of(client, access)["cnf"] == {"jkt": rfc7638(ECKey.import_key(key.public_jwk()))}


def test_a_users_bearer_token_has_no_cnf(app, client, rp, tokens):
    """RFC 7662 §2.2: an unbound user access token introspects as Bearer without ``cnf``."""
    info = introspect(client, rp, tokens["access_token"])
    assert info["active"] is True and info["token_type"] == "Bearer" and "cnf" not in info
