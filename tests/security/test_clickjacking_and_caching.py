"""Framing, caching and cookie attributes.

- Pages where a person acts (login, consent) and error pages must not be framed (clickjacking:
  RFC 6749 §10.13, OIDC Core §3.1.2.1 notes, RFC 7034 X-Frame-Options, CSP Level 2
  frame-ancestors) and must not be cached (they carry personal data and CSRF tokens).
- Token responses carry Cache-Control: no-store and Pragma: no-cache (RFC 6749 §5.1, §5.2);
  so do UserInfo (personal data, OIDC Core §5.3.2) and introspection (RFC 7662 §4) answers.
- Cookies: HttpOnly, SameSite=Lax, and Secure whenever the issuer is https (RFC 6265 §4.1.2.5-6,
  RFC 6265bis §4.1.2.7), never Secure-less on an https deployment.

Every test runs twice: with the test issuer (http://127.0.0.1:5000) and with an https issuer.
"""
from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from tests.conftest import PASSWORD, basic, exchange, form_fields, make_rp, pkce_pair
from tests.security.support import create_alice, module_app

HTTPS_ISSUER = "https://id.benxi.gov.cn"


@pytest.fixture(scope="module", params=["http://127.0.0.1:5000", HTTPS_ISSUER], ids=["http-issuer", "https-issuer"])
def app_config(request):
    cfg = {"ISSUER": request.param}
    if request.param.startswith("https"):
        cfg["PREFERRED_URL_SCHEME"] = "https"  # the test client then speaks https, as a browser would
    return cfg


@pytest.fixture(scope="module")
def app(app_config, tmp_path_factory, template_dir):
    yield from module_app(tmp_path_factory, template_dir, **app_config)


@pytest.fixture(scope="module")
def user(app):
    return create_alice()


@pytest.fixture
def https(app):
    return app.config["ISSUER"].startswith("https://")


def tls_headers(app):
    # Flask-WTF's strict CSRF check over https wants a same-origin Referer, as a browser sends.
    return {"Referer": "https://localhost/"} if app.config["ISSUER"].startswith("https://") else {}


def assert_page_protected(resp, what):
    h = resp.headers
    assert h.get("X-Frame-Options", "").upper() == "DENY", f"{what}: X-Frame-Options {h.get('X-Frame-Options')!r}"
    csp = h.get("Content-Security-Policy", "")
    directives = {d.strip().split()[0]: d.strip().split()[1:] for d in csp.split(";") if d.strip()}
    assert directives.get("frame-ancestors") == ["'none'"], f"{what}: CSP {csp!r}"
    cc = [v.strip().lower() for v in h.get("Cache-Control", "").split(",")]
    assert "no-store" in cc, f"{what}: Cache-Control {h.get('Cache-Control')!r}"


def assert_no_store(resp, what):
    cc = [v.strip().lower() for v in resp.headers.get("Cache-Control", "").split(",")]
    assert "no-store" in cc, f"{what}: Cache-Control {resp.headers.get('Cache-Control')!r}"
    assert resp.headers.get("Pragma", "").lower() == "no-cache", f"{what}: Pragma {resp.headers.get('Pragma')!r}"


def set_cookies(resp) -> dict[str, str]:
    """name -> the whole Set-Cookie header."""
    return {h.split("=", 1)[0].strip(): h for h in resp.headers.getlist("Set-Cookie")}


def attrs(header: str) -> dict[str, str]:
    out = {}
    for part in header.split(";")[1:]:
        k, _, v = part.strip().partition("=")
        out[k.lower()] = v
    return out


def assert_cookie_flags(header, https, what):
    a = attrs(header)
    assert "httponly" in a, f"{what}: not HttpOnly: {header}"
    assert a.get("samesite", "").lower() == "lax", f"{what}: SameSite {a.get('samesite')!r}: {header}"
    if https:
        assert "secure" in a, f"{what}: https issuer but cookie not Secure: {header}"
    assert "domain" not in a, f"{what}: cookie scoped to a Domain (host-only expected): {header}"


def sign_in(app):
    client = app.test_client()
    page = client.get("/login?next=/")
    resp = client.post("/login", data={**form_fields(page.get_data(as_text=True)), "username": "alice",
                                       "password": PASSWORD}, headers=tls_headers(app))
    assert resp.status_code == 303, resp.get_data(as_text=True)[:300]
    return client, page, resp


def test_login_page_cannot_be_framed_or_cached(app, user):
    """RFC 6749 §10.13 (clickjacking): X-Frame-Options: DENY, CSP frame-ancestors 'none',
    Cache-Control: no-store, on the login page, its refusals and its GET with parameters."""
    client = app.test_client()
    for resp, what in ((client.get("/login"), "GET /login"),
                       (client.get("/login?next=/authorize&login_hint=alice"), "GET /login?next"),
                       (client.post("/login", data={"username": "alice", "password": "x"}, headers=tls_headers(app)),
                        "POST /login refused")):
        assert resp.mimetype == "text/html"
        assert_page_protected(resp, what)


def test_consent_page_cannot_be_framed_or_cached(app, user):
    """RFC 6749 §10.13: the consent page (where a click grants access) is never framed or cached."""
    rp = make_rp(app, first_party=False)
    client, _, _ = sign_in(app)
    _, challenge = pkce_pair()
    resp = client.get("/authorize?" + urlencode({"response_type": "code", "client_id": rp["client_id"],
                                                 "redirect_uri": rp["redirect_uri"], "scope": "openid profile",
                                                 "state": "s", "code_challenge": challenge,
                                                 "code_challenge_method": "S256"}))
    assert resp.status_code == 200 and 'name="decision"' in resp.get_data(as_text=True)
    assert_page_protected(resp, "consent page")


def test_error_and_home_pages_cannot_be_framed(app, user):
    """RFC 7034 §2 / CSP Level 2 §7.7.3: error pages and the home page (which names the signed-in
    person) are not framed, and not cached."""
    client = app.test_client()
    for path in ("/authorize?client_id=nope", "/no-such-page", "/"):
        resp = client.get(path)
        assert resp.mimetype == "text/html", path
        assert_page_protected(resp, path)


def test_token_responses_are_not_cached(app, user):
    """RFC 6749 §5.1 and §5.2: Cache-Control: no-store and Pragma: no-cache on success and on
    errors; also on refresh (§6), UserInfo (OIDC Core §5.3.2) and introspection (RFC 7662 §4)."""
    rp = make_rp(app, first_party=False)
    client, _, _ = sign_in(app)
    verifier, challenge = pkce_pair()
    params = {"response_type": "code", "client_id": rp["client_id"], "redirect_uri": rp["redirect_uri"],
              "scope": "openid profile", "state": "s", "code_challenge": challenge, "code_challenge_method": "S256"}
    resp = client.get("/authorize?" + urlencode(params))
    html = resp.get_data(as_text=True)
    action = unescape(re.search(r'<form method="post" action="([^"]+)"', html).group(1))
    resp = client.post(action, data={**form_fields(html), "decision": "allow"}, headers=tls_headers(app))
    assert resp.status_code == 302, resp.get_data(as_text=True)[:300]
    code = parse_qs(urlsplit(resp.location).query)["code"][0]

    ok = exchange(client, rp, code, verifier)
    assert ok.status_code == 200, ok.get_json()
    assert_no_store(ok, "token success")
    assert_no_store(exchange(client, rp, "bad-code", verifier), "token error (invalid_grant)")
    assert_no_store(client.post("/token", data={"grant_type": "nope"}, headers=basic(rp)), "token error (grant)")
    assert_no_store(client.post("/token", data={"grant_type": "authorization_code"}), "token error (client)")
    tokens = ok.get_json()
    refreshed = client.post("/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                            headers=basic(rp))
    assert refreshed.status_code == 200
    assert_no_store(refreshed, "refresh success")
    at = refreshed.get_json()["access_token"]
    assert_no_store(client.get("/userinfo", headers={"Authorization": "Bearer " + at}), "userinfo")
    assert_no_store(client.get("/userinfo"), "userinfo 401")
    assert_no_store(client.post("/introspect", data={"token": at}, headers=basic(rp)), "introspection")
    assert_no_store(client.post("/revoke", data={"token": at}, headers=basic(rp)), "revocation")


def test_ui_session_cookie_flags(app, user, https):
    """RFC 6265 §4.1.2.5-6 and RFC 6265bis §4.1.2.7: the page-session cookie (CSRF state) is
    HttpOnly and SameSite=Lax, and Secure on an https issuer."""
    resp = app.test_client().get("/login")
    cookies = set_cookies(resp)
    assert cookies, "GET /login set no cookie (the CSRF token needs one)"
    for name, header in cookies.items():
        assert_cookie_flags(header, https, name)


def test_sso_session_cookie_flags(app, user, https):
    """RFC 6265 §4.1.2.5-6, RFC 6265bis §4.1.2.7: the SSO session cookie set at login is HttpOnly,
    SameSite=Lax, Secure on an https issuer; so is every other cookie of that response."""
    _, _, resp = sign_in(app)
    cookies = set_cookies(resp)
    assert app.config["SESSION_COOKIE"] in cookies, cookies
    for name, header in cookies.items():
        assert_cookie_flags(header, https, name)
