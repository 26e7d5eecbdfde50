"""Certificate login from the officials' tool: the JWT bearer grant (RFC 7523 §2.1) with the
certificate chain in ``x5c`` (RFC 7515 §4.1.6), every refusal with its own audited reason."""
from __future__ import annotations

import time

from cryptography.hazmat.primitives.asymmetric import ec

from clients.sealctl.keys import Pkcs12Key
from tests.oauth.official_support import (GRANT, P12_PASSWORD, endpoint, key, official_key,  # noqa: F401
                                          quick_pkcs12, refusals, token_request, tool)
from tests.pki.conftest import craft


def claims_of(app, token):
    from idp.keystore.jwt import verify_own_jwt

    return verify_own_jwt(token)


def test_official_gets_a_level3_dpop_bound_token(app, client, key, tool):
    """RFC 7523 §2.1 grant; RFC 9068 access token with acr level 3, amr swk (RFC 8176 §2), cnf.jkt
    (RFC 9449 §6.1) and token_type DPoP (§5); no refresh token."""
    r = token_request(client, app, key, tool)
    assert r.status_code == 200, r.json
    body = r.json
    assert body["token_type"] == "DPoP" and "refresh_token" not in body
    claims = claims_of(app, body["access_token"])
    from joserfc.jwk import ECKey

    assert claims["acr"] == app.config["ACR_VALUES"].split()[2] and claims["amr"] == ["swk"]
    assert claims["cnf"] == {"jkt": ECKey.import_key(key.public_jwk()).thumbprint()}
    assert claims["client_id"] == tool
    from idp.audit.models import AuditEvent
    from idp.db import db
    from sqlalchemy import select

    assert db.session.execute(select(AuditEvent).where(AuditEvent.action == "official_login.succeeded")).scalar()


def test_discovery_lists_the_grant_and_dpop_algs(client):
    """RFC 8414 §2 grant_types_supported; RFC 9449 §5.1 dpop_signing_alg_values_supported."""
    meta = client.get("/.well-known/openid-configuration").json
    assert GRANT in meta["grant_types_supported"]
    assert "ES256" in meta["dpop_signing_alg_values_supported"]


def refused(client, app, key, tool, reason, **kw):
    r = token_request(client, app, key, tool, **kw)
    assert r.status_code in (400, 401), r.json
    assert r.json["error"] in ("invalid_grant", "invalid_request", "unauthorized_client",
                                 "invalid_dpop_proof"), r.json
    assert reason in refusals(app), refusals(app)
    return r


def test_expired_assertion(app, client, key, tool):
    """RFC 7523 §3 item 4: an expired JWT MUST be rejected."""
    now = int(time.time())
    refused(client, app, key, tool, "expired", iat=now - 400, exp=now - 200)


def test_assertion_living_too_long(app, client, key, tool):
    """A short exp (≤ 5 min) is our policy under RFC 7523 §3 item 4 ("reasonable" lifetimes)."""
    now = int(time.time())
    refused(client, app, key, tool, "too_long", exp=now + 3600)


def test_wrong_audience(app, client, key, tool):
    """RFC 7523 §3 item 3: the JWT MUST name the authorization server (its token endpoint) in aud."""
    refused(client, app, key, tool, "wrong_aud", aud=app.config["ISSUER"] + "/elsewhere")


def test_missing_iat_and_jti(app, client, key, tool):
    """RFC 7523 §3 items 6-7: iat and a unique jti are required here."""
    refused(client, app, key, tool, "bad_claims", iat=None)
    refused(client, app, key, tool, "bad_claims", jti=None)


def test_replayed_assertion(app, client, key, tool):
    """RFC 7523 §3 item 7: a jti is accepted once; the replay is refused and audited."""
    from tests.oauth.official_support import assertion
    from clients.sealctl import hub as hubapi

    a = assertion(key, tool, endpoint(app))
    first = client.post("/token", data={"grant_type": GRANT, "assertion": a},
                        headers={"DPoP": hubapi.dpop_proof(key, "POST", endpoint(app))})
    assert first.status_code == 200, first.json
    again = client.post("/token", data={"grant_type": GRANT, "assertion": a},
                        headers={"DPoP": hubapi.dpop_proof(key, "POST", endpoint(app))})
    assert again.status_code == 400 and again.json["error"] == "invalid_grant"
    assert "replayed" in refusals(app)


def test_revoked_certificate(app, client, key, tool):
    """RFC 5280 §6.3 / idp.pki: a revoked certificate signs in nobody."""
    from idp.pki.service import list_certificates, revoke_certificate

    serial = list_certificates("wangwu")[0]["serial"]
    revoke_certificate(serial, "keyCompromise")
    r = refused(client, app, key, tool, "certificate_revoked")
    assert "revoked" in r.json["error_description"]


def test_revoking_the_certificate_revokes_the_tokens_bound_to_its_key(app, client, key, tool):
    """A token the tool obtained with the certificate is bound to its key (RFC 9449 §6.1 ``cnf.jkt``):
    revoking the certificate (keyCompromise) revokes it too, so it stops working at once, not when it
    expires (RFC 7662 §2.2: inactive)."""
    from idp.audit.models import AuditEvent
    from idp.pki.service import list_certificates, revoke_certificate

    r = token_request(client, app, key, tool)
    assert r.status_code == 200, r.json
    access = r.json["access_token"]
    assert _who_am_i(client, app, key, access).status_code == 200
    result = revoke_certificate(list_certificates("wangwu")[0]["serial"], "keyCompromise")
    assert result["tokens_revoked"] == 1
    refused_now = _who_am_i(client, app, key, access)
    assert refused_now.status_code == 401 and refused_now.json["error"] == "invalid_token"
    event = AuditEvent.query.filter_by(action="pki.certificate_revoked").one()
    assert event.detail["tokens_revoked"] == 1


def test_removing_the_official_revokes_the_tokens_bound_to_the_membership_s_certificates(app, client, key, tool):
    """The tool's token is a level-3 official's: once the staff membership its certificate was issued
    for ends, the token stops working at once (RFC 7662 §2.2: inactive), not when it expires."""
    from idp.accounts.officials import remove_official
    from idp.audit.models import AuditEvent

    r = token_request(client, app, key, tool)
    assert r.status_code == 200, r.json
    access = r.json["access_token"]
    assert _who_am_i(client, app, key, access).json["official"][0]["department"] == "scjgj"
    remove_official(username="wangwu", department="scjgj")
    refused_now = _who_am_i(client, app, key, access)
    assert refused_now.status_code == 401 and refused_now.json["error"] == "invalid_token"
    assert AuditEvent.query.filter_by(action="official.removed").one().detail["tokens_revoked"] == 1


def _who_am_i(client, app, key, access):
    """GET /api/official with the DPoP-bound token, retrying once with the nonce asked for (RFC 9449 §9)."""
    from clients.sealctl import hub as hubapi

    url = app.config["ISSUER"] + "/api/official"
    resp = client.get("/api/official", headers={"Authorization": f"DPoP {access}",
                                                "DPoP": hubapi.dpop_proof(key, "GET", url, access)})
    if resp.status_code == 401 and resp.headers.get("DPoP-Nonce"):
        resp = client.get("/api/official", headers={"Authorization": f"DPoP {access}", "DPoP": hubapi.dpop_proof(
            key, "GET", url, access, nonce=resp.headers["DPoP-Nonce"])})
    return resp


def test_non_official(app, client, key, tool, runner):
    """A certificate whose staff membership has ended maps to no official (``unmapped``)."""
    from idp.accounts.officials import remove_official

    remove_official(username="wangwu", department="scjgj")
    refused(client, app, key, tool, "certificate_unmapped")


def test_bad_signature(app, client, key, tool, runner, tmp_path):
    """RFC 7523 §3 item 9: the signature must verify with the certificate's key (here: another
    official's key signs, with wangwu's x5c)."""
    from tests.pki.conftest import make_official

    make_official("lisi", "李四")
    other = official_key(runner, tmp_path, "lisi", "lisi.p12")
    forged = _ForeignChain(other, key.x5c())
    refused(client, app, forged, tool, "bad_signature", proof_key=other)


def test_missing_x5c(app, client, key, tool):
    """RFC 7515 §4.1.6: without the chain there is no certified key to check."""
    refused(client, app, key, tool, "missing_x5c", _header={"x5c": None})


def test_self_made_certificate(app, client, key, tool):
    """A certificate from a CA the hub does not trust (RFC 5280 §6): ``unknown_ca``."""
    cakey = ec.generate_private_key(ec.SECP256R1())
    root, _ = craft(None, None, ca=True, key=cakey, eku=None, key_usage=None)
    leaf, leafkey = craft(root, cakey)
    import base64
    from cryptography.hazmat.primitives.serialization import Encoding

    x5c = [base64.b64encode(c.public_bytes(Encoding.DER)).decode() for c in (leaf, root)]
    refused(client, app, key, tool, "certificate_unknown_ca", _header={"x5c": x5c})


def test_client_not_registered_for_the_grant(app, client, key):
    """RFC 6749 §5.2 unauthorized_client: only clients registered with this grant type."""
    from idp.oauth.clients import create_client

    c, _ = create_client(name="other", redirect_uris=["https://rp.example/cb"])
    r = token_request(client, app, key, c.client_id)
    assert r.status_code == 400 and r.json["error"] == "unauthorized_client"
    assert "grant_not_allowed" in refusals(app)
    refused(client, app, key, "no-such-client", "unknown_client")


def test_wrong_subject(app, client, key, tool):
    """RFC 7523 §3 item 2: sub must be the certificate (its x5t#S256), not some other principal."""
    refused(client, app, key, tool, "wrong_sub", sub="alice")


def test_dpop_proof_required_and_by_the_same_key(app, client, key, tool, runner, tmp_path):
    """RFC 9449 §5: the token request carries a proof; here it must be made with the certified key."""
    assert refused(client, app, key, tool, "dpop_missing", proof="").json["error"] == "invalid_dpop_proof"
    other = Pkcs12Key.__new__(Pkcs12Key)
    from joserfc.jwk import ECKey

    other._jwk, other.alg, other._chain = ECKey.generate_key("P-256"), "ES256", []
    refused(client, app, key, tool, "dpop_key_mismatch", proof_key=other)


class _ForeignChain:
    """Signs with one key while presenting another official's certificate chain."""

    def __init__(self, signer, x5c):
        self.signer, self._x5c, self.alg = signer, x5c, signer.alg

    def x5c(self):
        return self._x5c

    def public_jwk(self):
        return self.signer.public_jwk()

    def sign_jwt(self, header, claims):
        return self.signer.sign_jwt(header, claims)


def test_confidential_client_must_still_authenticate(app, client, key):
    """RFC 6749 §3.2.1: a confidential client registered for the grant authenticates; iss must be it."""
    import base64

    from idp.oauth.clients import create_client

    c, secret = create_client(name="confidential", redirect_uris=[], grant_types=[GRANT])
    r = token_request(client, app, key, c.client_id)
    assert r.status_code in (400, 401) and r.json["error"] == "invalid_client"
    assert "client_authentication" in refusals(app)
    from tests.oauth.official_support import assertion
    from clients.sealctl import hub as hubapi

    basic = base64.b64encode(f"{c.client_id}:{secret}".encode()).decode()
    r = client.post("/token", data={"grant_type": GRANT, "assertion": assertion(key, c.client_id, endpoint(app))},
                    headers={"Authorization": f"Basic {basic}", "DPoP": hubapi.dpop_proof(key, "POST", endpoint(app))})
    assert r.status_code == 200, r.json
