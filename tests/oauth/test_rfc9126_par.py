"""Pushed authorization requests (RFC 9126): a subsite pushes its authorization request to ``/par``
and sends the browser to ``/authorize`` with only ``client_id`` and the ``request_uri`` it got."""
from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from sqlalchemy import select

from idp.db import db, transaction, utcnow
from idp.oauth.models import PushedRequest
from tests.conftest import PASSWORD, Browser, basic, exchange, form_fields, make_rp, pkce_pair
from tests.oauth.dpop_support import proof, rfc7638

PREFIX = "urn:ietf:params:oauth:request_uri:"


def push(client, rp, headers=None, auth=True, **params):
    """POST /par with HTTP Basic (or the public client's ``client_id``); returns (response, verifier)."""
    verifier, challenge = pkce_pair()
    data = {"response_type": "code", "client_id": rp["client_id"], "redirect_uri": rp["redirect_uri"],
            "scope": "openid profile", "state": "st-pushed", "nonce": "n-pushed",
            "code_challenge": challenge, "code_challenge_method": "S256", **params}
    data = {k: v for k, v in data.items() if v is not None}
    headers = {**(basic(rp) if auth and rp.get("client_secret") else {}), **(headers or {})}
    return client.post("/par", data=data, headers=headers), verifier


def at_authorize(client, rp, request_uri, **extra):
    return client.get("/authorize?" + urlencode({"client_id": rp["client_id"], "request_uri": request_uri, **extra}))


def code_of(resp) -> dict:
    assert resp.status_code == 302, resp.get_data(as_text=True)[:400]
    return {k: v[0] for k, v in parse_qs(urlsplit(resp.location).query).items()}


def id_token_claims(client, body) -> dict:
    return jwt.decode(body["id_token"], KeySet.import_key_set(client.get("/jwks.json").get_json())).claims


@pytest.fixture
def signed_in(client, user):
    assert Browser(client).login().status_code == 303
    return client


@pytest.fixture
def rp1(app):
    return make_rp(app, first_party=True)


def test_discovery_names_the_endpoint(app, client):
    """RFC 9126 §5: ``pushed_authorization_request_endpoint``; PAR is required per client only."""
    meta = client.get("/.well-known/openid-configuration").get_json()
    assert meta["pushed_authorization_request_endpoint"] == app.config["ISSUER"] + "/par"
    assert meta["require_pushed_authorization_requests"] is False


def test_a_pushed_request_signs_in_with_only_its_request_uri(app, client, signed_in, rp1):
    """§2.2: 201 with a ``request_uri`` of the urn form and ``expires_in``, not stored by caches; §4:
    the browser brings only ``client_id`` and ``request_uri``; the code carries the pushed request's
    state, nonce and PKCE challenge."""
    resp, verifier = push(client, rp1)
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    assert body["request_uri"].startswith(PREFIX) and len(body["request_uri"]) > len(PREFIX) + 40
    assert body["expires_in"] == app.config["PAR_TTL"] and "no-store" in resp.headers["Cache-Control"]
    q = code_of(at_authorize(client, rp1, body["request_uri"]))
    assert q["state"] == "st-pushed" and q["iss"] == app.config["ISSUER"]
    tokens = exchange(client, rp1, q["code"], verifier)
    assert tokens.status_code == 200, tokens.get_json()
    assert id_token_claims(client, tokens.get_json())["nonce"] == "n-pushed"
    assert db.session.execute(select(PushedRequest.uri_digest)).scalar_one() not in body["request_uri"]  # a digest


def test_parameters_in_the_url_are_ignored(client, signed_in, rp1):
    """RFC 9126 §4 with RFC 9101 §5: only the pushed parameters count; a redirect_uri, scope or state
    added to the URL on the way changes nothing."""
    resp, _ = push(client, rp1)
    q = code_of(at_authorize(client, rp1, resp.get_json()["request_uri"], redirect_uri="https://evil.example/cb",
                             scope="openid phone", state="forged"))
    assert q["state"] == "st-pushed"
    from idp.oauth.models import AuthorizationCode

    row = db.session.execute(select(AuthorizationCode)).scalar_one()
    assert row.redirect_uri == rp1["redirect_uri"] and row.scope == "openid profile"


def test_a_request_uri_gives_one_code(client, signed_in, rp1):
    """§4: single use once its code is issued; a reload before that works (the MAY of §4)."""
    resp, _ = push(client, rp1, prompt="consent")
    uri = resp.get_json()["request_uri"]
    page = at_authorize(client, rp1, uri)
    assert page.status_code == 200 and b'name="decision"' in page.data  # the consent page
    assert at_authorize(client, rp1, uri).status_code == 200  # reloaded
    html = page.get_data(as_text=True)
    assert "request_uri=" in html and "st-pushed" not in html  # the form comes back by reference
    decided = client.post("/authorize?" + urlencode({"client_id": rp1["client_id"], "request_uri": uri}),
                          data={**form_fields(html), "decision": "allow"})
    assert "code" in code_of(decided)
    again = at_authorize(client, rp1, uri, lang="en")
    assert again.status_code == 400 and again.location is None and _says_expired(again)


@pytest.mark.parametrize("case", ["unknown", "other_client", "expired", "malformed"])
def test_an_unusable_request_uri_is_an_error_page(app, client, signed_in, rp1, case):
    """§4: an expired request_uri MUST be rejected; §2.2: it is bound to the client that pushed it.
    There is no redirect_uri to trust, so the person sees a page (RFC 6749 §4.1.2.1), not a redirect."""
    resp, _ = push(client, rp1)
    uri = resp.get_json()["request_uri"]
    target = rp1
    if case == "unknown":
        uri = PREFIX + "x" * 43
    elif case == "other_client":
        target = make_rp(app, name="另一个子站", redirect_uri="https://other.example.cn/cb", first_party=True)
    elif case == "expired":
        with transaction():
            db.session.execute(PushedRequest.__table__.update().values(expires_at=utcnow() - timedelta(seconds=1)))
    else:
        uri = PREFIX + "a" * 300
    page = at_authorize(client, target, uri, lang="en")
    assert page.status_code == 400 and page.location is None and _says_expired(page)


def _says_expired(page) -> bool:
    return "This sign-in request has expired or has already been used." in page.get_data(as_text=True)


def test_another_request_uri_is_not_supported(client, signed_in, rp1):
    """A request object by reference (RFC 9101 §5.2) is not supported: with a valid client and
    redirect_uri, ``request_uri_not_supported`` goes back to the client (OIDC Core §3.1.2.6)."""
    resp = client.get("/authorize?" + urlencode({"client_id": rp1["client_id"], "redirect_uri": rp1["redirect_uri"],
                                                 "response_type": "code", "scope": "openid", "state": "s1",
                                                 "request_uri": "https://rp.example.cn/request.jwt"}))
    assert code_of(resp)["error"] == "request_uri_not_supported"


def test_signing_in_on_the_way_keeps_the_request_by_reference(app, client, user, rp1):
    """Not signed in: the login comes back to /authorize with the request_uri, never with the pushed
    parameters; arriving extends its life for the sign-in (PAR_INTERACTION_TTL)."""
    resp, verifier = push(client, rp1, login_hint="alice")
    uri = resp.get_json()["request_uri"]
    to_login = at_authorize(client, rp1, uri)
    assert to_login.status_code == 303 and to_login.location.startswith("/login")
    next_url = parse_qs(urlsplit(to_login.location).query)["next"][0]
    assert parse_qs(urlsplit(next_url).query) == {"client_id": [rp1["client_id"]], "request_uri": [uri]}
    row = db.session.execute(select(PushedRequest)).scalar_one()
    assert row.started_at is not None
    assert row.expires_at - row.started_at == timedelta(seconds=app.config["PAR_INTERACTION_TTL"])
    page = client.get(to_login.location)
    assert 'value="alice"' in page.get_data(as_text=True)  # the pushed login_hint (OIDC Core §3.1.2.1)
    logged_in = client.post("/login", data={**form_fields(page.get_data(as_text=True)), "username": "alice",
                                            "password": PASSWORD})
    assert logged_in.status_code == 303
    q = code_of(client.get(logged_in.location))
    assert exchange(client, rp1, q["code"], verifier).status_code == 200


def test_a_public_client_pushes_with_its_client_id(app, client, signed_in):
    """§2: the token endpoint's client authentication, ``none`` included (PKCE then required)."""
    spa = make_rp(app, auth_method="none", first_party=True, redirect_uri="https://spa.example.cn/cb")
    resp, verifier = push(client, spa)
    assert resp.status_code == 201, resp.get_json()
    q = code_of(at_authorize(client, spa, resp.get_json()["request_uri"]))
    done = client.post("/token", data={"grant_type": "authorization_code", "code": q["code"], "client_id": spa["client_id"],
                                       "redirect_uri": spa["redirect_uri"], "code_verifier": verifier})
    assert done.status_code == 200, done.get_json()
    refused, _ = push(client, spa, code_challenge=None, code_challenge_method=None)
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_request"


@pytest.mark.parametrize("change, status, error", [
    ({"auth": False}, 401, "invalid_client"),
    ({"headers": {"Authorization": "Basic " + "bm9ib2R5Om5vdGhpbmc="}}, 401, "invalid_client"),
    ({"redirect_uri": "https://evil.example/cb"}, 400, "invalid_request"),
    ({"request_uri": PREFIX + "abc"}, 400, "request_uri_not_supported"),
    ({"request": "eyJhbGciOiJub25lIn0.e30."}, 400, "request_not_supported"),
    ({"response_type": "token"}, 400, "unsupported_response_type"),
    ({"code_challenge_method": "plain"}, 400, "invalid_request"),
    ({"response_mode": "fragment"}, 400, "invalid_request"),
    ({"prompt": "none login"}, 400, "invalid_request"),
    ({"max_age": "soon"}, 400, "invalid_request"),
    ({"claims": "{not json"}, 400, "invalid_request"),
    ({"dpop_jkt": "short"}, 400, "invalid_request"),
    ({"state": "s" * 1025}, 400, "invalid_request"),
    ({"client_id": "someone-else"}, 400, "invalid_request"),
])
def test_a_bad_push_gets_the_token_endpoint_s_error_format(client, rp1, change, status, error):
    """§2.3: errors as from the token endpoint (RFC 6749 §5.2: JSON, never a redirect); the checks are
    the authorization endpoint's own. Nothing is stored."""
    resp, _ = push(client, rp1, **change)
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.get_json()["error"] == error and resp.location is None
    assert "no-store" in resp.headers["Cache-Control"]
    assert db.session.execute(select(PushedRequest)).first() is None


def test_repeated_parameters_and_other_methods_are_refused(client, rp1):
    """RFC 6749 §3.1 (parameters not repeated); §2.3: 405 for anything but POST."""
    data = [("response_type", "code"), ("client_id", rp1["client_id"]), ("redirect_uri", rp1["redirect_uri"]),
            ("scope", "openid"), ("scope", "openid profile")]
    resp = client.post("/par", data=urlencode(data), headers={**basic(rp1), "Content-Type":
                                                              "application/x-www-form-urlencoded"})
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_request"
    assert client.get("/par").status_code == 405


def test_prompt_none_is_checked_when_the_browser_arrives(client, user, rp1):
    """§2.3: no error about the person at the push (nobody has signed in yet); OIDC Core §3.1.2.6's
    login_required comes from /authorize, redirected to the subsite."""
    resp, _ = push(client, rp1, prompt="none")
    assert resp.status_code == 201, resp.get_json()
    q = code_of(at_authorize(client, rp1, resp.get_json()["request_uri"]))
    assert q["error"] == "login_required" and q["state"] == "st-pushed"


def test_a_client_can_be_required_to_push(app, client, signed_in, runner):
    """§4 and §6 ``require_pushed_authorization_requests``: that client's plain authorization request is
    refused with invalid_request (redirected: the client and its redirect_uri are known); pushed, it works."""
    strict = make_rp(app, first_party=True, redirect_uri="https://strict.example.cn/cb")
    out = runner.invoke(args=["clients", "par", strict["client_id"], "--required"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["require_pushed_authorization_requests"] is True
    plain = Browser(client).authorize(strict)
    assert code_of(plain)["error"] == "invalid_request"
    resp, _ = push(client, strict)
    assert "code" in code_of(at_authorize(client, strict, resp.get_json()["request_uri"]))
    assert "code" in code_of(Browser(client).authorize(make_rp(app, first_party=True,
                                                               redirect_uri="https://relaxed.example.cn/cb")))


def test_a_dpop_proof_on_the_push_binds_the_code_to_its_key(app, client, signed_in, rp1):
    """RFC 9449 §10.1: a DPoP proof on the PAR request is checked (§4.3) and binds the code as a pushed
    ``dpop_jkt`` would: the code is redeemed only with a proof by that key."""
    key = ECKey.generate_key("P-256")
    resp, verifier = push(client, rp1, headers={"DPoP": proof(key, htu=app.config["ISSUER"] + "/par")})
    assert resp.status_code == 201, resp.get_json()
    q = code_of(at_authorize(client, rp1, resp.get_json()["request_uri"]))
    unbound = exchange(client, rp1, q["code"], verifier)
    assert unbound.status_code == 400 and unbound.get_json()["error"] == "invalid_dpop_proof"
    bound = client.post("/token", data={"grant_type": "authorization_code", "code": q["code"],
                                        "redirect_uri": rp1["redirect_uri"], "code_verifier": verifier},
                        headers={**basic(rp1), "DPoP": proof(key, htu=app.config["ISSUER"] + "/token")})
    assert bound.status_code == 200 and bound.get_json()["token_type"] == "DPoP"


def test_a_proof_by_another_key_than_the_pushed_dpop_jkt_is_refused(app, client, rp1):
    """RFC 9449 §10.1: both mechanisms at once must name the same key."""
    key, other = ECKey.generate_key("P-256"), ECKey.generate_key("P-256")
    resp, _ = push(client, rp1, dpop_jkt=rfc7638(other),
                   headers={"DPoP": proof(key, htu=app.config["ISSUER"] + "/par")})
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_dpop_proof"
    wrong_url, _ = push(client, rp1, headers={"DPoP": proof(key, htu=app.config["ISSUER"] + "/token")})
    assert wrong_url.status_code == 400 and wrong_url.get_json()["error"] == "invalid_dpop_proof"
    assert db.session.execute(select(PushedRequest)).first() is None


def test_consuming_twice_gives_one_code(client, rp1):
    """The guarded UPDATE that claims the pushed request in the code's transaction: a second claim (a
    racing tab that read it unused) gets nothing, so the request issues one code."""
    from idp.oauth import par

    resp, _ = push(client, rp1)
    row = db.session.execute(select(PushedRequest)).scalar_one()
    pushed = par.Pushed(row.id, row.client_id, resp.get_json()["request_uri"])
    with transaction():
        assert par.consume(pushed) is True
    with transaction():
        assert par.consume(pushed) is False


def test_a_pushed_consent_decision_decides_nothing(app, client, signed_in):
    """The consent page's own fields are the person's, from the page (with its CSRF token): pushed
    along with the request, ``decision=allow`` is dropped, and the person is still asked."""
    third_party = make_rp(app, first_party=False, redirect_uri="https://third.example.cn/cb")
    resp, _ = push(client, third_party, decision="allow", csrf_token="x")
    assert resp.status_code == 201, resp.get_json()
    assert set(db.session.execute(select(PushedRequest)).scalar_one().params).isdisjoint({"decision", "csrf_token"})
    page = at_authorize(client, third_party, resp.get_json()["request_uri"])
    assert page.status_code == 200 and b'name="decision"' in page.data


@pytest.mark.parametrize("app_config", [{"DPOP_NONCE": "on"}])
def test_with_nonces_on_a_push_s_proof_needs_the_nonce_too(app, client, rp1):
    """RFC 9449 §8 applies to the PAR request's proof as to the token request's: without the hub's
    nonce, 400 ``use_dpop_nonce`` with the nonce in ``DPoP-Nonce``; with it, the push is accepted."""
    key = ECKey.generate_key("P-256")
    htu = app.config["ISSUER"] + "/par"
    first, _ = push(client, rp1, headers={"DPoP": proof(key, htu=htu)})
    assert first.status_code == 400 and first.get_json()["error"] == "use_dpop_nonce"
    nonce = first.headers["DPoP-Nonce"]
    again, _ = push(client, rp1, headers={"DPoP": proof(key, htu=htu, nonce=nonce)})
    assert again.status_code == 201, again.get_json()
    assert db.session.execute(select(PushedRequest)).scalar_one().params["dpop_jkt"] == rfc7638(key)
