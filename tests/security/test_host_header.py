"""A forged Host (and X-Forwarded-*/Forwarded) header changes nothing the hub publishes or redirects to.

Requirement: every URL the hub publishes or redirects to is built from the configured issuer
(http://127.0.0.1:5000 in tests), never from the request's Host header. OIDC Discovery §3/§4.3
(issuer and endpoints are the issuer's), RFC 9207 §2 (iss in authorization responses), RFC 9700
§4.11 (open redirection) and the OWASP "Host header injection" class of attacks (password-reset
poisoning, cache poisoning). Each case runs directly and behind a trusted proxy (loopback trusted:
the test client's address), where forwarded headers are believed for the client address only.
"""
from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from werkzeug.datastructures import Headers

from tests.conftest import PASSWORD, basic, exchange, form_fields, pkce_pair
from tests.security.support import (ISSUER, IsolatedClient, assert_error_page, assert_error_redirect,
                                    create_alice, module_app)

EVIL = "evil.example"

HEADER_SETS = {
    "host": {"Host": EVIL},
    "host-with-port": {"Host": EVIL + ":8443"},
    "forwarded": {"X-Forwarded-Host": EVIL, "X-Forwarded-Proto": "https", "X-Forwarded-Port": "8443",
                  "X-Forwarded-Server": EVIL, "X-Forwarded-Prefix": "/" + EVIL, "X-Forwarded-For": "203.0.113.7",
                  "Forwarded": f"for=203.0.113.7;host={EVIL};proto=https", "X-Original-Host": EVIL,
                  "X-Host": EVIL, "X-HTTP-Host-Override": EVIL},
}
HEADER_SETS["everything"] = {**HEADER_SETS["forwarded"], "Host": EVIL}


@pytest.fixture(scope="module", params=[{}, {"TRUSTED_PROXIES": "127.0.0.0/8"}], ids=["direct", "trusted-proxy"])
def app(request, tmp_path_factory, template_dir):
    """Directly exposed, and behind a proxy the hub trusts (the test client's loopback address)."""
    yield from module_app(tmp_path_factory, template_dir, **request.param)


@pytest.fixture(scope="module")
def user(app):
    return create_alice()


class ForgedClient(IsolatedClient):
    """A test client that adds the forged headers to every request and keeps every response.

    Requests arrive over TLS (wsgi.url_scheme https), as in production; plain http with a forged
    Host is the subject of its own test below."""

    forged: dict = {}
    scheme = "https"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.responses = []

    def open(self, *args, **kwargs):
        headers = Headers(kwargs.pop("headers", None) or {})
        for name, value in self.forged.items():
            headers[name] = value
        # A browser posting a form over TLS sends Referer (Flask-WTF's strict CSRF check wants it).
        headers.setdefault("Referer", f"{self.scheme}://{headers.get('Host', 'localhost')}/")
        kwargs["headers"] = headers
        kwargs.setdefault("environ_overrides", {})["wsgi.url_scheme"] = self.scheme
        resp = super().open(*args, **kwargs)
        self.responses.append(resp)
        return resp


@pytest.fixture(params=sorted(HEADER_SETS))
def forged(request, app):
    c = ForgedClient(app, app.response_class, use_cookies=True)
    c.forged = HEADER_SETS[request.param]
    c.header_set = request.param
    return c


def assert_clean(resp, what=""):
    """Neither the body nor any header mentions the forged host; redirects stay on the issuer
    (relative path) or go to a registered client."""
    body = resp.get_data(as_text=True)
    assert EVIL not in body, f"{what}: body mentions {EVIL}: ...{body[max(0, body.find(EVIL) - 120):body.find(EVIL) + 60]}"
    for name, value in resp.headers.items():
        assert EVIL not in value, f"{what}: header {name}: {value}"
    loc = resp.headers.get("Location")
    if loc is not None:
        rel = not urlsplit(loc).scheme and not urlsplit(loc).netloc and loc.startswith("/") and not loc.startswith("//")
        assert rel or loc.startswith(ISSUER + "/") or loc.startswith("https://rp.example.cn/"), f"{what}: Location {loc}"


def assert_all_clean(c):
    assert c.responses, "no requests were made"
    for r in c.responses:
        assert_clean(r, f"{r.request.method} {r.request.full_path}")


def test_discovery_is_built_from_the_issuer(forged):
    """OIDC Discovery §3 and §4.3, RFC 8414 §3.3: issuer is the configured one, and every endpoint
    URL in the document is under it, whatever Host/X-Forwarded-* say."""
    for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
        resp = forged.get(path)
        assert resp.status_code == 200
        doc = resp.get_json()
        assert doc["issuer"] == ISSUER
        for key, value in doc.items():
            if isinstance(value, str) and value.startswith(("http:", "https:")):
                assert value.startswith(ISSUER + "/") or value == ISSUER, (key, value)
        for key in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri",
                    "revocation_endpoint", "introspection_endpoint"):
            assert doc[key].startswith(ISSUER + "/"), (key, doc[key])
    assert forged.get("/jwks.json").status_code == 200
    assert_all_clean(forged)


def test_login_consent_code_and_tokens_ignore_the_forged_host(forged, rp, user):
    """The whole code flow under forged headers: the login redirect from /authorize and the login
    form post to relative paths; the consent form action is relative; the authorization response
    goes to the registered redirect_uri with iss = the configured issuer (RFC 9207 §2); the ID and
    access tokens carry that issuer (OIDC Core §2, RFC 9068 §2.2); so do UserInfo's
    WWW-Authenticate realm and introspection's iss (RFC 7662 §2.2)."""
    verifier, challenge = pkce_pair()
    params = {"response_type": "code", "client_id": rp["client_id"], "redirect_uri": rp["redirect_uri"],
              "scope": "openid profile", "state": "st-1", "nonce": "n-1", "code_challenge": challenge,
              "code_challenge_method": "S256"}
    resp = forged.get("/authorize?" + urlencode(params))
    assert resp.status_code == 303 and resp.location.startswith("/login?"), \
        (resp.status_code, resp.location, re.sub(r"\s+", " ", resp.get_data(as_text=True))[-400:])
    nxt = parse_qs(urlsplit(resp.location).query)["next"][0]
    assert nxt.startswith("/authorize?"), nxt

    page = forged.get(resp.location)
    html = page.get_data(as_text=True)
    assert re.search(r'<form method="post" action="/login"', html), "login form must post to a relative path"
    resp = forged.post("/login", data={**form_fields(html), "username": "alice", "password": PASSWORD})
    assert resp.status_code == 303 and resp.location.startswith("/authorize?"), resp.location

    consent = forged.get(resp.location)
    html = consent.get_data(as_text=True)
    assert consent.status_code == 200 and 'name="decision"' in html
    action = unescape(re.search(r'<form method="post" action="([^"]+)"', html).group(1))
    assert action.startswith("/authorize?") and not action.startswith("//"), action

    resp = forged.post(action, data={**form_fields(html), "decision": "allow"})
    assert resp.status_code == 302, resp.get_data(as_text=True)[:300]
    assert resp.location.startswith(rp["redirect_uri"] + "?"), resp.location
    q = parse_qs(urlsplit(resp.location).query)
    assert q["iss"] == [ISSUER] and q["state"] == ["st-1"]

    tok = exchange(forged, rp, q["code"][0], verifier)
    assert tok.status_code == 200, tok.get_json()
    keys = KeySet.import_key_set(forged.get("/jwks.json").get_json())
    body = tok.get_json()
    assert jwt.decode(body["id_token"], keys).claims["iss"] == ISSUER
    assert jwt.decode(body["access_token"], keys).claims["iss"] == ISSUER

    ui = forged.get("/userinfo")
    assert ui.status_code == 401 and f'realm="{ISSUER}"' in ui.headers["WWW-Authenticate"]
    intro = forged.post("/introspect", data={"token": body["access_token"]}, headers=basic(rp))
    assert intro.get_json()["iss"] == ISSUER

    if "Host" in forged.forged:
        # The forged Host really reached the application: cookies were set for it.
        assert any(EVIL in str(key) for key in forged._cookies), "the forged Host header was not applied"
    assert_all_clean(forged)


def test_error_pages_and_error_redirects_ignore_the_forged_host(forged, rp, user):
    """RFC 6749 §4.1.2.1: error pages (bad client, bad redirect_uri) and error redirects (to the
    registered URI, with iss per RFC 9207 §2); 404/405/414 pages: none mention the forged host."""
    assert_error_page(forged.get("/authorize?" + urlencode({"client_id": "nope", "redirect_uri": "https://x.example/"})))
    assert_error_page(forged.get("/authorize?" + urlencode({"client_id": rp["client_id"],
                                                             "redirect_uri": f"https://{EVIL}/cb"})))
    _, challenge = pkce_pair()
    resp = forged.get("/authorize?" + urlencode({"response_type": "token", "client_id": rp["client_id"],
                                                 "redirect_uri": rp["redirect_uri"], "state": "s",
                                                 "code_challenge": challenge, "code_challenge_method": "S256"}))
    assert_error_redirect(resp, rp["redirect_uri"], {"unsupported_response_type"}, "token", state="s")
    resp = forged.get("/authorize?" + urlencode({"response_type": "code", "client_id": rp["client_id"],
                                                 "redirect_uri": rp["redirect_uri"], "prompt": "none", "state": "s",
                                                 "code_challenge": challenge, "code_challenge_method": "S256"}))
    assert_error_redirect(resp, rp["redirect_uri"], {"login_required"}, "prompt=none", state="s")
    assert forged.get("/no-such-page").status_code == 404
    assert forged.post("/.well-known/openid-configuration").status_code == 405
    assert forged.get("/login?a=" + "x" * 9000).status_code == 414
    assert forged.post("/token", data={"grant_type": "nope"}, headers=basic(rp)).status_code == 400
    assert forged.post("/token", data={"grant_type": "authorization_code", "code": "x"}).status_code == 401
    assert forged.get("/").status_code == 200
    assert forged.get("/login?next=/authorize").status_code == 200
    assert_all_clean(forged)


def test_absolute_form_request_target_is_ignored(client, rp, user):
    """RFC 9112 §3.2.2: a request line in absolute form names another host; still nothing but the
    issuer comes back."""
    resp = client.get(f"http://{EVIL}/.well-known/openid-configuration")
    assert resp.status_code == 200 and resp.get_json()["issuer"] == ISSUER
    assert_clean(resp, "absolute-form discovery")
    resp = client.get(f"https://{EVIL}/authorize?" + urlencode({"response_type": "code", "client_id": rp["client_id"],
                                                                 "redirect_uri": rp["redirect_uri"], "scope": "openid",
                                                                 "code_challenge": pkce_pair()[1],
                                                                 "code_challenge_method": "S256"}))
    assert resp.status_code == 303
    assert_clean(resp, "absolute-form authorize")


@pytest.mark.parametrize("header_set", ["host", "host-with-port", "everything"])
def test_forged_host_over_plain_http_changes_no_outcome(app, rp, user, header_set):
    """A forged Host must change nothing (the requirement): the same request over the same
    transport gets the same answer with or without it. In particular the protocol endpoints do not
    judge transport security from the Host header (the issuer, not Host, says what the hub's URL
    is), and never answer with a code outside RFC 6749 §4.1.2.1 / §5.2 such as insecure_transport."""
    _, challenge = pkce_pair()
    authz = "/authorize?" + urlencode({"response_type": "code", "client_id": rp["client_id"],
                                        "redirect_uri": rp["redirect_uri"], "scope": "openid", "state": "s",
                                        "code_challenge": challenge, "code_challenge_method": "S256"})
    requests = [
        ("GET", authz, {}),
        ("POST", "/token", {"data": {"grant_type": "nope"}, "headers": basic(rp)}),
        ("POST", "/revoke", {"data": {"token": "unknown"}, "headers": basic(rp)}),
        ("POST", "/introspect", {"data": {"token": "unknown"}, "headers": basic(rp)}),
        ("GET", "/userinfo", {"headers": {"Authorization": "Bearer unknown"}}),
    ]
    forged = ForgedClient(app, app.response_class, use_cookies=True)
    forged.forged, forged.scheme = HEADER_SETS[header_set], "http"
    honest = IsolatedClient(app, app.response_class, use_cookies=True)
    differences = []
    for method, path, kw in requests:
        expected = honest.open(path, method=method, **kw)
        got = forged.open(path, method=method, **kw)
        if (got.status_code, got.headers.get("Location"), got.get_data()) != \
                (expected.status_code, expected.headers.get("Location"), expected.get_data()):
            differences.append(f"{method} {path.split('?')[0]}: got {got.status_code} {got.headers.get('Location')} "
                               f"{got.get_data()[:120]!r}, without the forged Host {expected.status_code} "
                               f"{expected.headers.get('Location', '')[:60]} {expected.get_data()[:80]!r}")
    assert not differences, "the forged Host changed the outcome:\n" + "\n".join(differences)
    assert_all_clean(forged)
