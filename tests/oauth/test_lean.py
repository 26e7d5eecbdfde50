"""The lean path (``idp.oauth.lean``) answers the plain successful token, introspection and UserInfo
requests without Flask, and must answer exactly what the general path (Flask + Authlib) answers:
every request here is sent twice, once with the lean path on and once with it off, and the two
answers compared. Anything that is not the plain successful case must reach the general path with
its body intact."""
from __future__ import annotations

import base64

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from idp.oauth.lean import LeanEndpoints
from tests.conftest import basic, make_rp


def _lean(app) -> LeanEndpoints:
    layer = app.wsgi_app
    while not isinstance(layer, LeanEndpoints):
        layer = layer.wsgi_app
    return layer


class _Paths:
    """Send a request through the lean path, then through the general path alone, and say which answered."""

    def __init__(self, app, client):
        self.client, self.lean = client, _lean(app)
        self.flask_calls = 0
        inner = self.lean.wsgi_app

        def counting(environ, start_response):
            self.flask_calls += 1
            return inner(environ, start_response)

        self.lean.wsgi_app = counting

    def send(self, method: str, path: str, **kw):
        self.flask_calls = 0
        resp = self.client.open(path, method=method, **kw)
        return resp, self.flask_calls == 0

    def both(self, method: str, path: str, **kw):
        """(lean answer, whether the lean path answered it, general-path answer)."""
        lean, took_lean = self.send(method, path, **kw)
        routes, self.lean.routes = self.lean.routes, {}
        try:
            general = self.client.open(path, method=method, **kw)
        finally:
            self.lean.routes = routes
        return lean, took_lean, general


@pytest.fixture
def paths(app, client):
    return _Paths(app, client)


def _claims(client, token: str) -> dict:
    return jwt.decode(token, KeySet.import_key_set(client.get("/jwks.json").get_json())).claims


def _same_token_response(client, a, b) -> None:
    """Two token responses of one request: same fields, same claims but their own jti/iat/exp."""
    ja, jb = a.get_json(), b.get_json()
    assert ja.keys() == jb.keys() and {k: v for k, v in ja.items() if k != "access_token"} == \
        {k: v for k, v in jb.items() if k != "access_token"}
    ca, cb = _claims(client, ja["access_token"]), _claims(client, jb["access_token"])
    fresh = {"jti", "iat", "exp"}
    assert {k: v for k, v in ca.items() if k not in fresh} == {k: v for k, v in cb.items() if k not in fresh}
    assert ca["jti"] != cb["jti"]
    for resp in (a, b):
        assert resp.headers["Cache-Control"] == "no-store" and resp.headers["Pragma"] == "no-cache"  # RFC 6749 §5.1
        assert resp.mimetype == "application/json" and resp.headers["X-Content-Type-Options"] == "nosniff"


def test_client_credentials_lean_answer_equals_the_general_one(app, client, paths):
    """RFC 6749 §4.4.2–4.4.3 with HTTP Basic (§2.3.1): the lean path issues the same token."""
    rp = make_rp(app, grant_types=["client_credentials"], redirect_uris=[], scopes=["openid"])
    lean, took_lean, general = paths.both("POST", "/token", data={"grant_type": "client_credentials"}, headers=basic(rp))
    assert took_lean and lean.status_code == general.status_code == 200
    _same_token_response(client, lean, general)
    assert "scope" not in lean.get_json()


def _basic_raw(client_id: str, secret: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def _token_variants(rp):
    ok = basic(rp)
    return {
        "wrong secret (RFC 6749 §5.2 invalid_client)": dict(data={"grant_type": "client_credentials"},
                                                            headers=_basic_raw(rp["client_id"], "nope")),
        "unknown client": dict(data={"grant_type": "client_credentials"}, headers=_basic_raw("nobody", "x")),
        "repeated parameter (§3.2)": dict(data="grant_type=client_credentials&grant_type=client_credentials",
                                          content_type="application/x-www-form-urlencoded", headers=ok),
        "user scope (openid) for a client token": dict(data={"grant_type": "client_credentials", "scope": "openid"},
                                                       headers=ok),
        "scope the client lacks": dict(data={"grant_type": "client_credentials", "scope": "profile"}, headers=ok),
        "empty scope": dict(data={"grant_type": "client_credentials", "scope": ""}, headers=ok),
        "credentials in the body (client_secret_post)": dict(
            data={"grant_type": "client_credentials", "client_id": rp["client_id"],
                  "client_secret": rp["client_secret"]}),
        "no grant_type": dict(data={"scope": "openid"}, headers=ok),
        "another grant": dict(data={"grant_type": "password", "username": "u", "password": "p"}, headers=ok),
        "query string": dict(data={"grant_type": "client_credentials"}, headers=ok, query_string={"x": "1"}),
        "malformed Basic header": dict(data={"grant_type": "client_credentials"},
                                       headers={"Authorization": "Basic %%%"}),
        "JSON body": dict(json={"grant_type": "client_credentials"}, headers=ok),
    }


@pytest.mark.parametrize("variant", list(_token_variants({"client_id": "x", "client_secret": "y"})))
def test_anything_but_the_plain_case_gets_the_general_answer(app, client, paths, variant):
    """Every refusal (RFC 6749 §5.2) and every other form of request is the general path's: the lean
    path declines it untouched, body included, so the answers of both runs are the same."""
    rp = make_rp(app, grant_types=["client_credentials"], redirect_uris=[], scopes=["openid"])
    kw = _token_variants(rp)[variant]
    lean, took_lean, general = paths.both("POST", "/token", **kw)
    assert not took_lean, "the lean path must not answer this request"
    assert lean.status_code == general.status_code
    if lean.status_code == 200:
        _same_token_response(client, lean, general)
    else:
        assert lean.get_json() == general.get_json() and lean.get_json()["error"]


def test_client_secret_post_still_works_after_the_lean_path_read_the_body(app, client, paths):
    """RFC 6749 §2.3.1: credentials in the body are the general path's; the body it reads is whole."""
    rp = make_rp(app, grant_types=["client_credentials"], redirect_uris=[], auth_method="client_secret_post")
    resp, took_lean = paths.send("POST", "/token", data={"grant_type": "client_credentials", "client_id": rp["client_id"],
                                                         "client_secret": rp["client_secret"]})
    assert resp.status_code == 200 and resp.get_json()["access_token"] and not took_lean


def test_a_client_registered_for_another_method_is_not_let_in_by_basic(app, client, paths):
    """RFC 7591 §2 token_endpoint_auth_method: a client_secret_post client sending Basic is refused,
    by the general path, the same as without the lean path."""
    rp = make_rp(app, grant_types=["client_credentials"], redirect_uris=[], auth_method="client_secret_post")
    lean, took_lean, general = paths.both("POST", "/token", data={"grant_type": "client_credentials"}, headers=basic(rp))
    assert not took_lean and lean.status_code == general.status_code == 401
    assert lean.get_json() == general.get_json()


def test_a_dpop_proof_goes_to_the_general_path(app, client, paths):
    """RFC 9449 §5: a request with a DPoP header is the general path's, which checks the proof and
    binds the token (``token_type`` ``DPoP``, ``cnf.jkt``, §6.1); with the lean path on or off the
    answer is the same (each with its own proof: a proof is good once, §11.1), and a bad proof is
    the same 400 ``invalid_dpop_proof``."""
    from joserfc.jwk import ECKey

    from tests.oauth.dpop_support import proof, rfc7638

    rp = make_rp(app, grant_types=["client_credentials"], redirect_uris=[])
    key, url = ECKey.generate_key("P-256"), app.config["ISSUER"] + "/token"
    data = {"grant_type": "client_credentials"}
    lean, took_lean = paths.send("POST", "/token", data=data, headers={**basic(rp), "DPoP": proof(key, htu=url)})
    routes, paths.lean.routes = paths.lean.routes, {}
    try:
        general = client.post("/token", data=data, headers={**basic(rp), "DPoP": proof(key, htu=url)})
    finally:
        paths.lean.routes = routes
    assert not took_lean and lean.status_code == general.status_code == 200
    _same_token_response(client, lean, general)
    assert lean.get_json()["token_type"] == "DPoP"
    assert _claims(client, lean.get_json()["access_token"])["cnf"] == {"jkt": rfc7638(key)}
    lean, took_lean, general = paths.both("POST", "/token", data=data, headers={**basic(rp), "DPoP": "not-a-proof"})
    assert not took_lean and lean.status_code == general.status_code == 400
    assert lean.get_json() == general.get_json() and lean.get_json()["error"] == "invalid_dpop_proof"


def test_a_client_that_must_use_dpop_gets_no_bearer_token_from_the_lean_path(app, client, paths):
    """RFC 9449 §5.2: a client registered with ``dpop_bound_access_tokens`` is refused without a
    DPoP header; the lean path, which answers only requests without one, declines, and both paths
    give the general path's 400 ``invalid_dpop_proof`` (§5) — never a Bearer token."""
    rp = make_rp(app, grant_types=["client_credentials"], redirect_uris=[], dpop_bound_access_tokens=True)
    lean, took_lean, general = paths.both("POST", "/token", data={"grant_type": "client_credentials"}, headers=basic(rp))
    assert not took_lean and lean.status_code == general.status_code == 400
    assert lean.get_json() == general.get_json() and lean.get_json()["error"] == "invalid_dpop_proof"


def test_introspection_lean_answers_equal_the_general_ones(app, client, paths, tokens, rp, rp2):
    """RFC 7662 §2.2: active tokens (user access, refresh, a client's stateless token) with their
    fields, and inactive ones (unknown, another client's) as ``{"active": false}``, the same on both paths."""
    cc = make_rp(app, grant_types=["client_credentials"], redirect_uris=[])
    stateless = client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(cc)).get_json()["access_token"]
    cases = [
        (rp, {"token": tokens["access_token"]}, True),
        (rp, {"token": tokens["access_token"], "token_type_hint": "access_token"}, True),
        (rp, {"token": tokens["refresh_token"], "token_type_hint": "refresh_token"}, True),
        (cc, {"token": stateless}, True),
        (rp2, {"token": tokens["access_token"]}, False),  # not its token: inactive (no cross-subsite tracking)
        (rp, {"token": "no-such-token"}, False),
    ]
    for who, data, active in cases:
        lean, took_lean, general = paths.both("POST", "/introspect", data=data, headers=basic(who))
        assert took_lean and lean.status_code == general.status_code == 200
        assert lean.get_json() == general.get_json() and lean.get_json()["active"] is active
        assert lean.headers["Cache-Control"] == "no-store"


def test_introspection_refusals_are_the_general_paths(app, client, paths, tokens, rp):
    """RFC 7662 §2.1 / RFC 6749 §5.2: no token parameter, or a wrong secret: the general path's errors."""
    for data, headers in (({}, basic(rp)), ({"token": tokens["access_token"]}, _basic_raw(rp["client_id"], "bad"))):
        lean, took_lean, general = paths.both("POST", "/introspect", data=data, headers=headers)
        assert not took_lean and lean.status_code == general.status_code >= 400
        assert lean.get_json() == general.get_json()


def test_userinfo_lean_answer_equals_the_general_one(client, paths, tokens):
    """OIDC Core §5.3.2: the same claims for the same bearer token (RFC 6750 §2.1)."""
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    lean, took_lean, general = paths.both("GET", "/userinfo", headers=auth)
    assert took_lean and lean.status_code == general.status_code == 200
    assert lean.get_json() == general.get_json() and lean.get_json()["sub"]
    assert lean.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("how", ["bad token", "no header", "token in query", "POST"])
def test_userinfo_refusals_and_other_forms_are_the_general_paths(client, paths, tokens, how):
    """RFC 6750 §3.1: invalid tokens and missing credentials get the general path's challenge."""
    kw = {"bad token": dict(method="GET", headers={"Authorization": "Bearer nope"}),
          "no header": dict(method="GET"),
          "token in query": dict(method="GET", query_string={"access_token": tokens["access_token"]}),
          "POST": dict(method="POST", headers={"Authorization": f"Bearer {tokens['access_token']}"})}[how]
    method = kw.pop("method")
    lean, took_lean, general = paths.both(method, "/userinfo", **kw)
    assert not took_lean and lean.status_code == general.status_code
    assert lean.get_json() == general.get_json()
    assert lean.headers.get("WWW-Authenticate") == general.headers.get("WWW-Authenticate")


def test_a_revoked_token_is_refused_at_once_on_the_lean_path(client, paths, tokens, rp):
    """RFC 7009 §2.2: after revocation the token no longer works (no cached verdict on the lean path)."""
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert paths.send("GET", "/userinfo", headers=auth)[0].status_code == 200
    assert client.post("/revoke", data={"token": tokens["access_token"]}, headers=basic(rp)).status_code == 200
    resp, took_lean = paths.send("GET", "/userinfo", headers=auth)
    assert resp.status_code == 401 and not took_lean
    resp, took_lean = paths.send("POST", "/introspect", data={"token": tokens["access_token"]}, headers=basic(rp))
    assert resp.get_json() == {"active": False} and took_lean


def test_a_database_outage_is_answered_503_once(app, client, paths, tokens, rp, monkeypatch):
    """RFC 6749 §5.2 / RFC 7231 §6.6.4: an unreachable database is ``temporarily_unavailable`` (503)
    with the general path's message, at once: the general path does not wait for the database again."""
    from sqlalchemy.exc import OperationalError

    from idp.oauth import tokens as token_store

    calls = []

    def down(*args, **kwargs):
        calls.append(1)
        raise OperationalError("SELECT ...", {}, ConnectionRefusedError("connection refused"))

    monkeypatch.setattr(token_store, "find_token_row", down)
    monkeypatch.setattr(token_store, "find_access_row", down)
    monkeypatch.setattr(token_store, "find_live_access_with_person", down)
    for method, path, kw in (("POST", "/introspect", dict(data={"token": tokens["access_token"]}, headers=basic(rp))),
                             ("GET", "/userinfo", dict(headers={"Authorization": f"Bearer {tokens['access_token']}"}))):
        calls.clear()
        resp, took_lean = paths.send(method, path, **kw)
        assert resp.status_code == 503 and took_lean and len(calls) == 1
        assert resp.get_json() == {"error": "temporarily_unavailable", "error_description":
                                   "The service is temporarily unavailable. Please try again in a few minutes."}
        assert resp.headers["Cache-Control"] == "no-store"
        general = paths.both(method, path, **kw)[2]  # the general path's own answer to the same outage
        assert general.status_code == 503 and general.get_json() == resp.get_json()


def test_a_bound_token_sent_as_bearer_is_refused_on_both_paths(app, client, paths, browser, user, rp):
    """RFC 9449 §7.1/§7.2: a DPoP-bound user token presented as Bearer gets no claims on either path:
    the lean path declines (``tokens.sender_ok``, the rule both paths apply) and the general path
    answers 401 with the ``DPoP`` challenge; introspection of the token reports its binding (§6.2)
    the same on both paths."""
    from joserfc.jwk import ECKey

    from tests.conftest import exchange
    from tests.oauth.dpop_support import proof, rfc7638

    key = ECKey.generate_key("P-256")
    code, verifier, _ = browser.code(rp)
    resp = client.post("/token", data={"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                                       "redirect_uri": rp["redirect_uri"]},
                       headers={**basic(rp), "DPoP": proof(key, htu=app.config["ISSUER"] + "/token")})
    assert resp.status_code == 200 and resp.get_json()["token_type"] == "DPoP"
    token = resp.get_json()["access_token"]
    lean, took_lean, general = paths.both("GET", "/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert not took_lean and lean.status_code == general.status_code == 401
    assert lean.get_json() == general.get_json() and lean.get_json()["error"] == "invalid_token"
    assert lean.headers["WWW-Authenticate"] == general.headers["WWW-Authenticate"]
    assert lean.headers["WWW-Authenticate"].startswith("DPoP ")
    lean, took_lean, general = paths.both("POST", "/introspect", data={"token": token}, headers=basic(rp))
    assert took_lean and lean.get_json() == general.get_json()
    assert lean.get_json()["cnf"] == {"jkt": rfc7638(key)} and lean.get_json()["token_type"] == "DPoP"
    # An unbound token of the same client still takes the lean path.
    code, verifier, _ = browser.code(rp)
    plain = exchange(client, rp, code, verifier).get_json()["access_token"]
    assert paths.send("GET", "/userinfo", headers={"Authorization": f"Bearer {plain}"})[0].status_code == 200


def _general(paths, method: str, path: str, **kw):
    routes, paths.lean.routes = paths.lean.routes, {}
    try:
        return paths.client.open(path, method=method, **kw)
    finally:
        paths.lean.routes = routes


def _code_body(rp, code: str, verifier: str, **extra) -> dict:
    return {"grant_type": "authorization_code", "code": code, "redirect_uri": rp["redirect_uri"],
            "code_verifier": verifier, **extra}


def test_code_exchange_lean_answer_equals_the_general_one(app, client, browser, user, rp, paths):
    """RFC 6749 §4.1.3–4.1.4, OIDC Core §3.1.3.3: two codes of one sign-on (the second by single
    sign-on), one exchanged on the lean path and one on the general path, give the same token
    response: the same fields, an ID token and an access token with the same claims but their own
    ``jti``/times/hashes/nonce, a refresh token; and the lean path's tokens work."""
    code, verifier, params = browser.code(rp)
    lean, took_lean = paths.send("POST", "/token", data=_code_body(rp, code, verifier), headers=basic(rp))
    code2, verifier2, params2 = browser.code(rp)
    general = _general(paths, "POST", "/token", data=_code_body(rp, code2, verifier2), headers=basic(rp))
    assert took_lean and lean.status_code == general.status_code == 200, lean.get_json()
    a, b = lean.get_json(), general.get_json()
    assert a.keys() == b.keys() >= {"access_token", "id_token", "refresh_token", "expires_in", "token_type", "scope"}
    assert {k: a[k] for k in ("token_type", "expires_in", "scope")} == {k: b[k] for k in ("token_type", "expires_in", "scope")}
    own = {"jti", "iat", "exp", "nonce", "at_hash", "c_hash"}
    for name in ("id_token", "access_token"):
        ca, cb = _claims(client, a[name]), _claims(client, b[name])
        assert {k: v for k, v in ca.items() if k not in own} == {k: v for k, v in cb.items() if k not in own}
    assert _claims(client, a["id_token"])["nonce"] == params["nonce"]  # OIDC Core §3.1.3.6
    for resp in (lean, general):
        assert resp.headers["Cache-Control"] == "no-store" and resp.headers["Pragma"] == "no-cache"  # RFC 6749 §5.1
        assert resp.mimetype == "application/json" and resp.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get("/userinfo", headers={"Authorization": f"Bearer {a['access_token']}"}).status_code == 200
    refreshed = client.post("/token", data={"grant_type": "refresh_token", "refresh_token": a["refresh_token"]},
                            headers=basic(rp))
    assert refreshed.status_code == 200, refreshed.get_json()


def test_code_exchange_refusals_are_answered_once_as_the_general_path_does(app, client, browser, user, rp, paths):
    """Once the grant has begun, the lean path answers its errors itself, the same as the general path
    (RFC 6749 §5.2): a wrong PKCE verifier (RFC 7636 §4.6) and a wrong redirect_uri leave the code
    unused; a replayed code (§4.1.2) is refused, revokes what the code issued, and is audited once."""
    from idp.audit.models import AuditEvent

    code, verifier, _ = browser.code(rp)
    code2, verifier2, _ = browser.code(rp)
    for change in ({"code_verifier": "w" * 43}, {"redirect_uri": rp["redirect_uri"] + "x"}):
        lean, took_lean = paths.send("POST", "/token", data={**_code_body(rp, code, verifier), **change},
                                     headers=basic(rp))
        general = _general(paths, "POST", "/token", data={**_code_body(rp, code2, verifier2), **change},
                           headers=basic(rp))
        assert took_lean and lean.status_code == general.status_code == 400
        assert lean.get_json() == general.get_json() and lean.get_json()["error"] in ("invalid_grant", "invalid_request")
        assert lean.headers["Cache-Control"] == "no-store"
    first, took_lean = paths.send("POST", "/token", data=_code_body(rp, code, verifier), headers=basic(rp))
    assert took_lean and first.status_code == 200  # the refusals left it unused
    replay, took_lean = paths.send("POST", "/token", data=_code_body(rp, code, verifier), headers=basic(rp))
    assert took_lean and replay.status_code == 400 and replay.get_json()["error"] == "invalid_grant"
    assert client.get("/userinfo", headers={"Authorization": f"Bearer {first.get_json()['access_token']}"}
                      ).status_code == 401  # revoked
    assert AuditEvent.query.filter_by(action="code.replayed").count() == 1
    assert _general(paths, "POST", "/token", data=_code_body(rp, code2, verifier2), headers=basic(rp)).status_code == 200
    general_replay = _general(paths, "POST", "/token", data=_code_body(rp, code2, verifier2), headers=basic(rp))
    assert general_replay.get_json() == replay.get_json()


def test_other_code_exchanges_go_to_the_general_path(app, client, browser, user, rp, paths):
    """client_secret_post, a parameter the plain case does not have, a DPoP proof (RFC 9449 §5) and
    a client that must use DPoP (§5.2) are the general path's."""
    cases = [
        lambda c, v: dict(data={**_code_body(rp, c, v), "client_id": rp["client_id"], "client_secret": rp["client_secret"]}),
        lambda c, v: dict(data={**_code_body(rp, c, v), "scope": "openid"}, headers=basic(rp)),
        lambda c, v: dict(data=_code_body(rp, c, v), headers={**basic(rp), "DPoP": "not-a-proof"}),
    ]
    for make in cases:
        code, verifier, _ = browser.code(rp)
        resp, took_lean = paths.send("POST", "/token", **make(code, verifier))
        assert not took_lean and resp.status_code in (200, 400, 401)  # 401: this client is registered for Basic


def test_an_unexpected_failure_in_a_begun_code_exchange_is_not_run_again(app, client, browser, user, rp, paths,
                                                                        monkeypatch):
    """A code exchange the grant has begun is never handed to the general path (it would look the code
    up a second time): a failure there is the general path's 500 ``server_error`` answer, with a
    reference in the log, and nothing half-done (the code stays unused, its tokens unstored)."""
    from idp.oauth import tokens

    def broken(*a, **kw):
        raise RuntimeError("simulated")

    code, verifier, _ = browser.code(rp)
    monkeypatch.setattr(tokens, "token_row", broken)
    resp, took_lean = paths.send("POST", "/token", data=_code_body(rp, code, verifier), headers=basic(rp))
    assert took_lean and resp.status_code == 500
    assert resp.get_json()["error"] == "server_error" and "reference" in resp.get_json()["error_description"]
    monkeypatch.undo()
    retry, took_lean = paths.send("POST", "/token", data=_code_body(rp, code, verifier), headers=basic(rp))
    assert took_lean and retry.status_code == 200, retry.get_json()


@pytest.mark.parametrize("lean", [True, False], ids=["lean", "general"])
def test_a_failure_while_signing_the_id_token_leaves_the_code_unused(app, client, browser, user, rp, paths, monkeypatch,
                                                                      lean):
    """The ID token is signed before anything is stored: a failure there (a key store that cannot sign)
    is a 500 ``server_error`` with the code still unused and no token stored, so the client's retry
    is answered (RFC 6749 §4.1.2: a code used twice revokes its tokens; an exchange that failed on
    our side must not count as its first use)."""
    from idp.audit.models import AuditEvent
    from idp.oauth import grants
    from idp.oauth.models import AuthorizationCode, Token

    def broken(*a, **kw):
        raise RuntimeError("simulated: the signing key is unreadable")

    send = (lambda **kw: paths.send("POST", "/token", **kw)[0]) if lean else \
        (lambda **kw: _general(paths, "POST", "/token", **kw))
    code, verifier, _ = browser.code(rp)
    stored = Token.query.count()
    monkeypatch.setattr(grants.OpenIDCode, "encode_id_token", broken)
    resp = send(data=_code_body(rp, code, verifier), headers=basic(rp))
    assert resp.status_code == 500 and resp.get_json()["error"] == "server_error"
    monkeypatch.undo()
    from idp.db import db
    db.session.remove()
    assert Token.query.count() == stored
    assert AuthorizationCode.query.order_by(AuthorizationCode.id.desc()).first().used_at is None
    retry = send(data=_code_body(rp, code, verifier), headers=basic(rp))
    assert retry.status_code == 200, retry.get_json()
    assert "id_token" in retry.get_json() and Token.query.count() == stored + 1
    assert AuditEvent.query.filter_by(action="code.replayed").count() == 0
