"""Malformed, missing, repeated, oversized and wrongly typed input, endpoint by endpoint.

The requirement: every endpoint answers with the RFC's error code (RFC 6749 §4.1.2.1 and §5.2,
RFC 7009 §2.2.1, RFC 7662 §2.3, RFC 6750 §3.1, OIDC Core §3.1.2.6) or a readable error page —
never a 500, never a stack trace — and nothing already stored changes. Each test takes a snapshot
of every table but audit_event and login_throttle (row counts and a digest of the contents) before and after each bad
request and asserts they are equal (tests/security/support.py).

Explicit cases come first; the hypothesis matrices follow them.
"""
from __future__ import annotations

import base64
import json
import secrets
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from idp.db import db, utcnow
from idp.oauth.models import AuthorizationCode, Token
from tests.conftest import PASSWORD, Browser, basic, exchange, form_fields, make_rp, pkce_pair
from tests.security.support import (AUTHORIZE_ERRORS, BEARER_ERRORS, INTROSPECTION_ERRORS, REVOCATION_ERRORS,
                                    TOKEN_ERRORS, Unchanged, assert_error_page,
                                    assert_error_redirect, assert_no_crash, assert_oauth_error, body_text,
                                    create_alice, json_body, module_app)

FORM = "application/x-www-form-urlencoded"
MAX_BODY = 64 * 1024
MAX_QUERY = 8 * 1024

# Function-scoped fixtures are shared by every example on purpose: each example must leave the
# database exactly as it found it, so sharing is part of what is tested.
FUZZ = settings(max_examples=30, deadline=None, database=None, print_blob=True,
                phases=[Phase.explicit, Phase.generate],  # no shrinking: bounded runtime, failing example printed
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.filter_too_much])
FUZZ_SLOW = settings(FUZZ, max_examples=20)  # examples that each run a password check

# ---------------------------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------------------------

SPECIAL = [
    "", " ", "\x00", "\x01\x02\x1f", "\x7f", "\t", "\r\nSet-Cookie: pwned=1", '"', "'", "\\", "\\\\\"",
    "%", "%00", "%zz", "%25", "+", "&", "=", ";", "é", "张三", "𝕏", "\u202e", "\ufeff", "\u2028",
    "<script>alert(1)</script>", "../../etc/passwd", "null", "true", "[]", "{}", '["a"]', '{"a":1}',
    "-1", "0", "1.5", "1e9", "0x10", "²", "١٢", "９", "9" * 30, "a" * 300, "a" * 5000, "openid " * 80,
    "https://evil.example/cb", "javascript:alert(1)", "//evil.example", "S256 S256", "none login",
]

# Any text, including control characters, quotes, backslashes and astral-plane unicode.
nasty = st.one_of(
    st.sampled_from(SPECIAL),
    st.text(max_size=40),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7F), max_size=40),
    st.text(min_size=200, max_size=3000),
)

# Header values arrive as latin-1 decoded bytes (WSGI); CR/LF cannot be sent at all.
header_text = st.one_of(
    st.sampled_from(["", " ", "\x00", '"', "\\", "é", "\xff", "=", "a" * 5000]),
    st.text(alphabet=st.characters(max_codepoint=0xFF, exclude_characters="\r\n"), max_size=60),
    st.text(max_size=30).map(lambda s: s.encode().decode("latin-1").replace("\r", "").replace("\n", "")),
)

json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


def junk_name(known):
    names = st.one_of(st.sampled_from(["é", '"', "\\", "a b", "", "x" * 300, "scope[]", "client_id[]",
                                       "__proto__", "\x00", "%00"]), st.text(max_size=20))
    return names.filter(lambda n: n not in known)


@st.composite
def mutated(draw, base, *, known=(), breaking=None, ops=("drop", "replace", "repeat", "extra", "empty")):
    """``base`` (a list of pairs) with up to four mutations: drop a parameter, replace or empty its
    value, repeat it, or add an unknown one. With ``breaking``, the first mutation always drops,
    empties or replaces one of those (required) parameters, so the request can never succeed."""
    pairs = list(base)
    known = set(known) | {k for k, _ in base}
    steps = []
    if breaking:
        steps.append((draw(st.sampled_from(["drop", "replace", "empty"])), draw(st.sampled_from(breaking))))
    for op in draw(st.lists(st.sampled_from(ops), min_size=0 if breaking else 1, max_size=3)):
        steps.append((op, draw(st.sampled_from([k for k, _ in base]))))
    for op, name in steps:
        if op == "drop":
            pairs = [(k, v) for k, v in pairs if k != name]
        elif op in ("replace", "empty"):
            original = dict(base).get(name)
            value = "" if op == "empty" else draw(nasty.filter(lambda v: v != original))
            pairs = [(k, value if k == name else v) for k, v in pairs] if any(k == name for k, _ in pairs) \
                else pairs + [(name, value)]
        elif op == "repeat":
            pairs.append((name, draw(nasty)))
        elif op == "extra":
            pairs.append((draw(junk_name(known)), draw(nasty)))
    return pairs


def changes(base, pairs) -> str:
    """What a mutation did to ``base``, short enough to read in a failure message."""
    dropped = sorted({k for k, _ in base} - {k for k, _ in pairs})
    added = [(k[:40], v[:60]) for k, v in pairs if (k, v) not in base]
    return f"dropped={dropped} added/changed={added}"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def qs(pairs) -> str:
    return urlencode(pairs)


# ---------------------------------------------------------------------------------------------
# Fixtures and helpers
# ---------------------------------------------------------------------------------------------


def authorize_params(rp, **over):
    _, challenge = pkce_pair()
    p = {"response_type": "code", "client_id": rp["client_id"], "redirect_uri": rp["redirect_uri"],
         "scope": "openid profile", "state": "st-" + secrets.token_hex(4), "nonce": "n-1",
         "code_challenge": challenge, "code_challenge_method": "S256"}
    p.update(over)
    return [(k, v) for k, v in p.items() if v is not None]


def send_authorize(client, method, pairs, **kw):
    if method == "GET":
        return client.get("/authorize?" + qs(pairs), **kw)
    return client.post("/authorize", data=qs(pairs), content_type=FORM, **kw)


# One application per module (a fresh app per test would cost most of the run): every test makes
# its own clients (``rp`` etc. are function-scoped), so tests do not see each other's grants, and
# each refused request is checked to leave the shared database unchanged.


@pytest.fixture(scope="module")
def app(tmp_path_factory, template_dir):
    yield from module_app(tmp_path_factory, template_dir)


@pytest.fixture(scope="module")
def user(app):
    return create_alice()


@pytest.fixture(scope="module")
def signed_in_client(app, user):
    """A browser with a live SSO session for alice (one password check for the whole module)."""
    c = app.test_client()
    resp = Browser(c).login()
    assert resp.status_code == 303, body_text(resp)[:300]
    assert "alice" in body_text(c.get("/")) or "张三" in body_text(c.get("/")), "the module session is not signed in"
    return c


@pytest.fixture
def signed_in(signed_in_client):
    return Browser(signed_in_client)


@pytest.fixture(params=["anonymous", "signed-in"])
def ua(request, app, user):
    """The user agent sending /authorize: without, then with a live SSO session (a session must
    not let an error through)."""
    if request.param == "signed-in":
        return request.getfixturevalue("signed_in_client")
    return app.test_client()


@pytest.fixture
def issued_code(signed_in, rp):
    """An unredeemed code for ``rp`` (a fresh third-party client: consent page, allow): (code, verifier)."""
    code, verifier, _ = signed_in.code(rp)
    return code, verifier


@pytest.fixture
def tokens(client, signed_in, rp):
    """A completed code flow for ``rp``: the token response JSON."""
    code, verifier, _ = signed_in.code(rp)
    resp = exchange(client, rp, code, verifier)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


@pytest.fixture
def public_rp(app):
    return make_rp(app, name="公众号应用", redirect_uri="https://pub.example.cn/cb", auth_method="none")


@pytest.fixture
def service_rp(app):
    return make_rp(app, name="后台服务", redirect_uri="https://svc.example.cn/cb",
                   grant_types=["client_credentials"])


def code_row(code) -> AuthorizationCode:
    from idp.oauth.tokens import digest

    db.session.rollback()
    return db.session.execute(select(AuthorizationCode).where(AuthorizationCode.code_digest == digest(code))).scalar_one()


def still_redeemable(client, rp, code, verifier):
    """After refused attempts the legitimate exchange still works: the code was not consumed."""
    resp = exchange(client, rp, code, verifier)
    assert resp.status_code == 200, resp.get_json()


# =============================================================================================
# /authorize — explicit cases
# =============================================================================================

METHODS = ["GET", "POST"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", [
    "unknown-client", "missing-client", "repeated-client", "too-long-client",
    "unregistered-redirect", "missing-redirect", "repeated-redirect",
])
def test_authorize_bad_client_or_redirect_is_a_page(ua, rp, method, case):
    """RFC 6749 §4.1.2.1 and OIDC Core §3.1.2.6: with a missing, invalid or mismatching client_id or
    redirect_uri the server MUST NOT redirect; it tells the user on a page (400)."""
    over = {
        "unknown-client": {"client_id": "no-such-client"},
        "missing-client": {"client_id": None},
        "too-long-client": {"client_id": "c" * 5000},
        "unregistered-redirect": {"redirect_uri": "https://evil.example/callback"},
        "missing-redirect": {"redirect_uri": None},
    }.get(case, {})
    pairs = authorize_params(rp, **over)
    if case == "repeated-client":
        pairs.append(("client_id", rp["client_id"]))
    if case == "repeated-redirect":
        pairs.append(("redirect_uri", "https://evil.example/callback"))
    with Unchanged(db):
        resp = send_authorize(ua, method, pairs)
    assert_error_page(resp, case)
    assert "evil.example" not in body_text(resp)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("variant", [
    "https://rp.example.cn/callback/",            # trailing slash
    "https://RP.example.cn/callback",             # host case
    "https://rp.example.cn/Callback",             # path case
    "HTTPS://rp.example.cn/callback",             # scheme case
    "https://rp.example.cn/callback?x=1",         # extra query
    "https://rp.example.cn/callback?",            # empty query
    "https://rp.example.cn/callback#frag",        # fragment
    "https://rp.example.cn:443/callback",         # explicit default port
    "http://rp.example.cn/callback",              # scheme downgrade
    "https://rp.example.cn/%63allback",           # percent-encoded unreserved
    "https://rp.example.cn/x/../callback",        # dot segments
    "https://evil.example@rp.example.cn/callback",  # userinfo
    "https://rp.example.cn.evil.example/callback",  # suffix
    "https://rp.example.cn/callback ",             # trailing space
    " https://rp.example.cn/callback",             # leading space
    "https://rp.example.cn/callback\x00",          # NUL
    "https://rp.example.cn\\@evil.example/callback",  # backslash
])
def test_redirect_uri_is_matched_exactly(ua, rp, method, variant):
    """RFC 9700 §4.1.3 and OIDC Core §3.1.2.1: redirect_uri is compared by exact string match;
    any variant of the registered URI gets the error page (RFC 6749 §4.1.2.1), never a redirect."""
    with Unchanged(db):
        resp = send_authorize(ua, method, authorize_params(rp, redirect_uri=variant))
    assert_error_page(resp, variant)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case, over, extra, expected", [
    ("response_type=token", {"response_type": "token"}, [], {"unsupported_response_type"}),
    ("response_type=code id_token", {"response_type": "code id_token"}, [], {"unsupported_response_type"}),
    ("response_type missing", {"response_type": None}, [], {"invalid_request", "unsupported_response_type"}),
    ("response_type empty", {"response_type": ""}, [], {"invalid_request", "unsupported_response_type"}),
    ("code_challenge_method=plain", {"code_challenge_method": "plain"}, [], {"invalid_request"}),
    ("code_challenge_method=s256", {"code_challenge_method": "s256"}, [], {"invalid_request"}),
    ("code_challenge without method", {"code_challenge_method": None}, [], {"invalid_request"}),
    ("code_challenge too short", {"code_challenge": "abc"}, [], {"invalid_request"}),
    ("code_challenge bad chars", {"code_challenge": "é" * 43}, [], {"invalid_request"}),
    ("code_challenge too long", {"code_challenge": "a" * 129}, [], {"invalid_request"}),
    ("repeated scope", {}, [("scope", "openid email")], {"invalid_request"}),
    ("repeated state", {}, [("state", "other")], {"invalid_request"}),
    ("repeated response_type", {}, [("response_type", "code")], {"invalid_request"}),
    ("repeated nonce", {}, [("nonce", "n-2")], {"invalid_request"}),
    ("repeated code_challenge", {}, [("code_challenge", "B" * 43)], {"invalid_request"}),
    ("repeated odd name", {}, [("é\"\\", "1"), ("é\"\\", "2")], {"invalid_request"}),
    ("repeated control-char name", {}, [("\x01", "1"), ("\x01", "2")], {"invalid_request"}),
    ("request object", {}, [("request", "eyJhbGciOiJub25lIn0.e30.")], {"request_not_supported"}),
    ("request_uri", {}, [("request_uri", "https://evil.example/req")], {"request_uri_not_supported"}),
    ("registration", {}, [("registration", "{}")], {"registration_not_supported"}),
    ("prompt=none login", {"prompt": "none login"}, [], {"invalid_request"}),
    ("prompt=none consent", {"prompt": "none consent"}, [], {"invalid_request"}),
    ("prompt unknown", {"prompt": "bogus"}, [], {"invalid_request"}),
    ("max_age=-1", {"max_age": "-1"}, [], {"invalid_request"}),
    ("max_age=abc", {"max_age": "abc"}, [], {"invalid_request"}),
    ("max_age=1.5", {"max_age": "1.5"}, [], {"invalid_request"}),
    ("max_age= 1", {"max_age": " 1"}, [], {"invalid_request"}),
    ("max_age superscript two", {"max_age": "²"}, [], {"invalid_request"}),
    ("max_age huge", {"max_age": "9" * 40}, [], {"invalid_request"}),
    ("response_mode=fragment", {"response_mode": "fragment"}, [], {"invalid_request"}),
    ("response_mode=form_post", {"response_mode": "form_post"}, [], {"invalid_request"}),
    ("nonce too long", {"nonce": "n" * 256}, [], {"invalid_request"}),
    ("login_hint too long", {"login_hint": "h" * 65}, [], {"invalid_request"}),
    ("scope too long", {"scope": "openid " + "x" * 600}, [], {"invalid_request", "invalid_scope"}),
])
def test_authorize_errors_redirect_with_state_and_iss(ua, rp, method, case, over, extra, expected):
    """RFC 6749 §4.1.2.1 and OIDC Core §3.1.2.6: once client and redirect_uri are valid, errors go
    back to the client with the RFC's code and the request's ``state``; RFC 9207 §2 adds ``iss``.
    No code is issued and nothing is stored."""
    pairs = authorize_params(rp, **over) + extra
    state = None if case == "repeated state" else dict(pairs)["state"]  # two states: either may come back
    with Unchanged(db):
        resp = send_authorize(ua, method, pairs)
    q = assert_error_redirect(resp, rp["redirect_uri"], AUTHORIZE_ERRORS, case, state=state)
    assert q["error"][0] in expected, f"{case}: {q['error'][0]} not in {expected}"


@pytest.mark.parametrize("method", METHODS)
def test_unsupported_response_type_is_described_sensibly(client, rp, method):
    """RFC 6749 §4.1.2.1: error_description is human-readable text about the error."""
    resp = send_authorize(client, method, authorize_params(rp, response_type="token"))
    q = assert_error_redirect(resp, rp["redirect_uri"], {"unsupported_response_type"}, "token")
    assert q.get("error_description", [""])[0] not in ("", "code"), q


@pytest.mark.parametrize("method", METHODS)
def test_state_too_long_is_refused_without_echoing_it(client, rp, method):
    """RFC 6749 §4.1.2.1: invalid_request; an oversized state is not reflected back."""
    with Unchanged(db):
        resp = send_authorize(client, method, authorize_params(rp, state="s" * 1025))
    q = assert_error_redirect(resp, rp["redirect_uri"], {"invalid_request"}, "long state")
    assert "state" not in q


@pytest.mark.parametrize("method", METHODS)
def test_public_client_without_pkce_is_refused(ua, public_rp, method):
    """RFC 9700 §2.1.1 and RFC 7636 §4.4.1: a public client must send code_challenge (S256);
    without it: invalid_request."""
    pairs = authorize_params(public_rp, code_challenge=None, code_challenge_method=None)
    with Unchanged(db):
        resp = send_authorize(ua, method, pairs)
    q = assert_error_redirect(resp, public_rp["redirect_uri"], AUTHORIZE_ERRORS, "public no pkce",
                              state=dict(pairs)["state"])
    assert q["error"] == ["invalid_request"]


@pytest.mark.parametrize("method", METHODS)
def test_prompt_none_without_session_is_login_required(client, rp, user, method):
    """OIDC Core §3.1.2.6: prompt=none and nobody signed in: login_required, no page."""
    pairs = authorize_params(rp, prompt="none")
    with Unchanged(db):
        resp = send_authorize(client, method, pairs)
    q = assert_error_redirect(resp, rp["redirect_uri"], AUTHORIZE_ERRORS, "prompt=none", state=dict(pairs)["state"])
    assert q["error"] == ["login_required"]


@pytest.mark.parametrize("method", METHODS)
def test_prompt_none_without_consent_is_consent_required(signed_in_client, rp, method):
    """OIDC Core §3.1.2.6: prompt=none, signed in, no consent yet for a third-party client."""
    pairs = authorize_params(rp, prompt="none")
    with Unchanged(db):
        resp = send_authorize(signed_in_client, method, pairs)
    q = assert_error_redirect(resp, rp["redirect_uri"], AUTHORIZE_ERRORS, "prompt=none", state=dict(pairs)["state"])
    assert q["error"] == ["consent_required"]


def test_consent_post_without_csrf_changes_nothing(signed_in_client, rp):
    """RFC 6749 §10.12 (CSRF): a consent decision without a valid token is refused with a page and
    records no consent."""
    pairs = authorize_params(rp) + [("decision", "allow"), ("csrf_token", "forged")]
    with Unchanged(db):
        resp = signed_in_client.post("/authorize", data=qs(pairs), content_type=FORM)
    assert_error_page(resp, "consent without csrf")


# =============================================================================================
# /token — explicit cases
# =============================================================================================


def test_token_wrong_secret_is_401_with_www_authenticate(client, rp, issued_code):
    """RFC 6749 §5.2: invalid_client; a client that used the Authorization header gets 401 and
    WWW-Authenticate. The code is not consumed."""
    code, verifier = issued_code
    wrong = {"Authorization": "Basic " + b64(f"{rp['client_id']}:wrong-secret".encode())}
    with Unchanged(db):
        resp = client.post("/token", data={"grant_type": "authorization_code", "code": code,
                                           "redirect_uri": rp["redirect_uri"], "code_verifier": verifier}, headers=wrong)
    assert_oauth_error(resp, {"invalid_client"}, "wrong secret", status=401)
    assert resp.headers["WWW-Authenticate"].lower().startswith("basic")
    still_redeemable(client, rp, code, verifier)


def test_token_unknown_grant_type(client, rp):
    """RFC 6749 §5.2: unsupported_grant_type."""
    for grant in ("password", "implicit", "urn:ietf:params:oauth:grant-type:device_code", "é\"\\", "x" * 300):
        with Unchanged(db):
            resp = client.post("/token", data={"grant_type": grant}, headers=basic(rp))
        assert_oauth_error(resp, {"unsupported_grant_type"}, grant, status=400)


def test_token_missing_grant_type(client, rp):
    """RFC 6749 §5.2: a missing required parameter is invalid_request (unsupported_grant_type is
    tolerated: the RFC's list has both)."""
    with Unchanged(db):
        resp = client.post("/token", data={"code": "x"}, headers=basic(rp))
    assert_oauth_error(resp, {"invalid_request", "unsupported_grant_type"}, "no grant_type", status=400)


def test_token_code_of_another_client(app, client, rp, rp2, issued_code):
    """RFC 6749 §4.1.3 and §5.2: a code issued to another client is invalid_grant; the owner can
    still redeem it (nothing changed)."""
    code, verifier = issued_code
    with Unchanged(db):
        resp = exchange(client, {**rp2, "redirect_uri": rp["redirect_uri"]}, code, verifier)
    assert_oauth_error(resp, {"invalid_grant"}, "other client's code", status=400)
    still_redeemable(client, rp, code, verifier)


@pytest.mark.parametrize("redirect_uri", [
    "https://rp2.example.cn/cb", "https://rp.example.cn/callback/", "https://rp.example.cn/callback?x=1",
    "HTTPS://rp.example.cn/callback", "", "é",
])
def test_token_wrong_redirect_uri(client, rp, rp2, issued_code, redirect_uri):
    """RFC 6749 §4.1.3: redirect_uri must be identical to the authorization request's; else
    invalid_grant (RFC 6749 §5.2). The code stays unused."""
    code, verifier = issued_code
    with Unchanged(db):
        resp = exchange(client, rp, code, verifier, redirect_uri=redirect_uri)
    assert_oauth_error(resp, {"invalid_grant", "invalid_request"}, redirect_uri, status=400)
    still_redeemable(client, rp, code, verifier)


def test_token_missing_redirect_uri(client, rp, issued_code):
    """RFC 6749 §4.1.3: redirect_uri is REQUIRED when the authorization request had one."""
    code, verifier = issued_code
    with Unchanged(db):
        resp = client.post("/token", data={"grant_type": "authorization_code", "code": code,
                                           "code_verifier": verifier}, headers=basic(rp))
    assert_oauth_error(resp, {"invalid_grant", "invalid_request"}, "no redirect_uri", status=400)
    still_redeemable(client, rp, code, verifier)


def test_token_wrong_code_verifier(client, rp, issued_code):
    """RFC 7636 §4.6: a verifier that does not match the challenge is invalid_grant."""
    code, verifier = issued_code
    with Unchanged(db):
        resp = exchange(client, rp, code, pkce_pair()[0])
    assert_oauth_error(resp, {"invalid_grant"}, "wrong verifier", status=400)
    still_redeemable(client, rp, code, verifier)


@pytest.mark.parametrize("bad", ["short", "é" * 50, "a" * 129, "a b" * 20, "\x00" * 43])
def test_token_malformed_code_verifier(client, rp, issued_code, bad):
    """RFC 7636 §4.1: verifier is 43-128 unreserved characters; else invalid_request or
    invalid_grant (RFC 7636 §4.6)."""
    code, verifier = issued_code
    with Unchanged(db):
        resp = exchange(client, rp, code, bad)
    assert_oauth_error(resp, {"invalid_request", "invalid_grant"}, repr(bad), status=400)
    still_redeemable(client, rp, code, verifier)


def test_token_missing_verifier_when_challenge_was_sent(client, rp, issued_code):
    """RFC 7636 §4.5/§4.6, RFC 9700 §2.1.1: the challenge was sent, so the verifier is required:
    invalid_request."""
    code, verifier = issued_code
    with Unchanged(db):
        resp = client.post("/token", data={"grant_type": "authorization_code", "code": code,
                                           "redirect_uri": rp["redirect_uri"]}, headers=basic(rp))
    assert_oauth_error(resp, {"invalid_request"}, "no verifier", status=400)
    still_redeemable(client, rp, code, verifier)


def test_token_verifier_without_challenge(client, signed_in, rp):
    """RFC 9700 §4.8.2: a code_verifier for a code issued without code_challenge is refused."""
    code, _, _ = signed_in.code(rp, pkce=False)
    with Unchanged(db):
        resp = exchange(client, rp, code, pkce_pair()[0])
    assert_oauth_error(resp, {"invalid_request", "invalid_grant"}, "verifier without challenge", status=400)


def test_token_expired_code(client, rp, issued_code):
    """RFC 6749 §4.1.2 and §5.2: an expired code is invalid_grant, and stays as stored."""
    code, verifier = issued_code
    row = code_row(code)
    row.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    with Unchanged(db):
        resp = exchange(client, rp, code, verifier)
    assert_oauth_error(resp, {"invalid_grant"}, "expired code", status=400)


@pytest.mark.parametrize("code", ["", "x", "é\x00\"\\", "a" * 257, "a" * 5000])
def test_token_unknown_or_malformed_code(client, rp, code):
    """RFC 6749 §5.2: invalid_grant (or invalid_request for an empty value)."""
    with Unchanged(db):
        resp = exchange(client, rp, code, pkce_pair()[0])
    assert_oauth_error(resp, {"invalid_grant", "invalid_request"}, repr(code[:20]), status=400)


def test_token_replayed_code_only_revokes(client, rp, issued_code):
    """RFC 6749 §4.1.2 and §10.5: a second use of a code is invalid_grant; the one documented side
    effect is revoking the tokens it issued (revoked_at). Nothing else changes."""
    code, verifier = issued_code
    first = exchange(client, rp, code, verifier)
    assert first.status_code == 200
    with Unchanged(db, skip_columns={"token": {"revoked_at"}}):
        second = exchange(client, rp, code, verifier)
    assert_oauth_error(second, {"invalid_grant"}, "replay", status=400)
    db.session.rollback()
    rows = db.session.execute(select(Token).where(Token.client_id == rp["client_id"])).scalars().all()
    assert rows and all(r.revoked_at is not None for r in rows)


@pytest.mark.parametrize("name", ["grant_type", "code", "redirect_uri", "code_verifier"])
def test_token_repeated_parameter_is_invalid_request(client, rp, issued_code, name):
    """RFC 6749 §3.2: request parameters MUST NOT be included more than once; a repeated one is
    invalid_request (RFC 6749 §5.2), and the code is not redeemed."""
    code, verifier = issued_code
    params = [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", rp["redirect_uri"]),
              ("code_verifier", verifier)]
    params.append((name, dict(params)[name]))  # the very same value again
    with Unchanged(db):
        resp = client.post("/token", data=qs(params), content_type=FORM, headers=basic(rp))
    assert_oauth_error(resp, {"invalid_request"}, f"repeated {name}", status=400)


def test_token_repeated_refresh_token_is_invalid_request(client, rp, tokens):
    """RFC 6749 §3.2 and §6: a repeated refresh_token is invalid_request; nothing is rotated."""
    rt = tokens["refresh_token"]
    with Unchanged(db):
        resp = client.post("/token", data=qs([("grant_type", "refresh_token"), ("refresh_token", rt),
                                              ("refresh_token", rt)]), content_type=FORM, headers=basic(rp))
    assert_oauth_error(resp, {"invalid_request"}, "repeated refresh_token", status=400)


@pytest.mark.parametrize("scope", ["openid admin", "é", "openid\x00", "x" * 600])
def test_refresh_with_scope_beyond_grant(client, rp, tokens, scope):
    """RFC 6749 §6: the requested scope MUST NOT include any scope not originally granted:
    invalid_scope (RFC 6749 §5.2); the refresh token is not rotated."""
    with Unchanged(db):
        resp = client.post("/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                                           "scope": scope}, headers=basic(rp))
    assert_oauth_error(resp, {"invalid_scope", "invalid_request"}, repr(scope[:20]), status=400)


def test_refresh_token_of_another_client(client, rp, rp2, tokens):
    """RFC 6749 §6 and §5.2: a refresh token bound to another client is invalid_grant."""
    with Unchanged(db):
        resp = client.post("/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                           headers=basic(rp2))
    assert_oauth_error(resp, {"invalid_grant"}, "other client's refresh token", status=400)


def test_client_credentials_refused_for_clients_without_it(client, rp):
    """RFC 6749 §5.2: unauthorized_client when the grant is not registered for the client."""
    with Unchanged(db):
        resp = client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(rp))
    assert_oauth_error(resp, {"unauthorized_client"}, "cc for code client", status=400)


@pytest.mark.parametrize("scope", ["openid", "profile email", "é", "\x00", "x" * 600])
def test_client_credentials_bad_scope(client, service_rp, scope):
    """RFC 6749 §4.4.2 and §5.2: user scopes are never granted to a client alone: invalid_scope."""
    with Unchanged(db):
        resp = client.post("/token", data={"grant_type": "client_credentials", "scope": scope}, headers=basic(service_rp))
    assert_oauth_error(resp, {"invalid_scope", "invalid_request"}, repr(scope[:20]), status=400)


def test_public_client_cannot_use_basic_with_empty_secret(client, public_rp):
    """RFC 6749 §2.3 and §5.2: a public client has no secret; presenting one is invalid_client."""
    hdr = {"Authorization": "Basic " + b64(f"{public_rp['client_id']}:guess".encode())}
    with Unchanged(db):
        resp = client.post("/token", data={"grant_type": "authorization_code", "code": "x"}, headers=hdr)
    assert_oauth_error(resp, {"invalid_client"}, "public + basic", status=401)


@pytest.mark.parametrize("value", ["Basic ", "Basic  ", "Basic \t", "basic " + b64(b"\xff\xfe:\xfd"),
                                   "Basic " + b64(b"\x80"), "Basic " + b64("é:é".encode("latin-1")),
                                   "Basic =", "Basic ====", "Basic !!!", "Basic " + "A" * 5000,
                                   "Basic " + b64(b"no-colon"), "Basic " + b64(b":"), "Basic " + b64(b"%zz:%zz"),
                                   "Bearer x", "Digest a=b", "Basic"])
@pytest.mark.parametrize("path", ["/token", "/par", "/revoke", "/introspect"])
def test_malformed_basic_auth(client, rp, path, value):
    """RFC 6749 §2.3.1 and §5.2 (RFC 7009 §2.1, RFC 7662 §2.1): bad Basic credentials are
    invalid_client (401 with WWW-Authenticate), never a 500."""
    with Unchanged(db):
        resp = client.post(path, data={"grant_type": "authorization_code", "code": "x", "token": "x"},
                           headers={"Authorization": value})
    assert_oauth_error(resp, {"invalid_client", "invalid_request"}, f"{path} {value[:30]!r}")


# =============================================================================================
# /revoke, /introspect, /userinfo — explicit cases
# =============================================================================================


@pytest.mark.parametrize("hint", ["bogus", "é", "", "ACCESS_TOKEN", "x" * 300])
def test_revoke_ignores_unknown_token_type_hint(client, rp, hint):
    """RFC 7009 §2.1: 'An invalid token type hint value is ignored by the authorization server and
    does not influence the revocation response' — so 200 for an unknown token."""
    with Unchanged(db):
        resp = client.post("/revoke", data={"token": "unknown-token", "token_type_hint": hint}, headers=basic(rp))
    assert_no_crash(resp)
    assert resp.status_code == 200, (resp.status_code, resp.get_data(as_text=True))


@pytest.mark.parametrize("hint", ["bogus", "é", "x" * 300])
def test_introspect_ignores_unknown_token_type_hint(client, rp, tokens, hint):
    """RFC 7662 §2.1: the hint only speeds up the lookup; with an unknown hint the server still
    searches every token type (a live token stays active)."""
    with Unchanged(db):
        resp = client.post("/introspect", data={"token": tokens["access_token"], "token_type_hint": hint},
                           headers=basic(rp))
    assert_no_crash(resp)
    assert resp.status_code == 200, (resp.status_code, resp.get_data(as_text=True))
    assert json_body(resp).get("active") is True


@pytest.mark.parametrize("path", ["/revoke", "/introspect"])
def test_missing_token_parameter(client, rp, path):
    """RFC 7009 §2.1 / RFC 7662 §2.1: ``token`` is REQUIRED: invalid_request."""
    with Unchanged(db):
        resp = client.post(path, data={"token_type_hint": "access_token"}, headers=basic(rp))
    assert_oauth_error(resp, {"invalid_request"}, path, status=400)


@pytest.mark.parametrize("path", ["/revoke", "/introspect"])
def test_repeated_token_parameter(client, rp, tokens, path):
    """RFC 6749 §3.2 (applied by RFC 7009 §2.1 / RFC 7662 §2.1): a repeated parameter is
    invalid_request, and the token is neither revoked nor described."""
    with Unchanged(db):
        resp = client.post(path, data=qs([("token", tokens["refresh_token"]), ("token", "other")]),
                           content_type=FORM, headers=basic(rp))
    assert_oauth_error(resp, {"invalid_request"}, f"{path} repeated token", status=400)


def test_revoke_other_clients_token_changes_nothing(client, rp, rp2, tokens):
    """RFC 7009 §2.1: the server checks the token was issued to the requesting client; another
    client's revocation request is refused (or silently ignored) and revokes nothing."""
    with Unchanged(db):
        resp = client.post("/revoke", data={"token": tokens["refresh_token"]}, headers=basic(rp2))
    assert_no_crash(resp)
    if resp.status_code != 200:
        assert_oauth_error(resp, REVOCATION_ERRORS, "revoke other client's token")


def test_introspect_other_clients_token_is_inactive(client, rp, rp2, tokens):
    """RFC 7662 §2.2 and §4: a client learns nothing about tokens issued to others."""
    with Unchanged(db):
        resp = client.post("/introspect", data={"token": tokens["access_token"]}, headers=basic(rp2))
    assert resp.status_code == 200 and json_body(resp) == {"active": False}


def test_userinfo_token_in_two_places_is_invalid_request(client, tokens):
    """RFC 6750 §2 and §3.1: a client MUST NOT send the token by more than one method; such a
    request is invalid_request (400)."""
    h = {"Authorization": "Bearer " + tokens["access_token"]}
    resp = client.post("/userinfo", data={"access_token": tokens["access_token"]}, headers=h)
    assert_oauth_error(resp, BEARER_ERRORS, "two methods", status=400)
    assert json_body(resp)["error"] == "invalid_request"


@pytest.mark.parametrize("value", ["Bearer", "Bearer ", "Bearer \x00", "Bearer é", "Bearer " + "a" * 5000,
                                   "bearer x", "Bearer a b", "Basic abc", "Token x", "\xff"])
@pytest.mark.parametrize("method", METHODS)
def test_userinfo_malformed_authorization(client, user, value, method):
    """RFC 6750 §3 and §3.1: 401 with WWW-Authenticate: Bearer; error (when present) from §3.1."""
    with Unchanged(db):
        resp = client.open("/userinfo", method=method, headers={"Authorization": value})
    assert_oauth_error(resp, BEARER_ERRORS, repr(value[:20]), status=(400, 401))
    if resp.status_code == 401:
        assert resp.headers.get("WWW-Authenticate", "").startswith("Bearer")


# =============================================================================================
# Transport limits: 413 and 414, and JSON from protocol endpoints
# =============================================================================================

POST_ENDPOINTS = ["/token", "/par", "/revoke", "/introspect", "/userinfo", "/authorize", "/login"]
GET_ENDPOINTS = ["/authorize", "/userinfo", "/login", "/.well-known/openid-configuration", "/jwks.json"]
PROTOCOL = ("/token", "/par", "/revoke", "/introspect", "/userinfo", "/.well-known/openid-configuration", "/jwks.json")


@pytest.mark.parametrize("path", POST_ENDPOINTS)
def test_body_over_64k_is_413(client, rp, path):
    """RFC 9110 §15.5.14: a body over the limit (64 KiB) is refused with 413, before any parsing;
    a body right at the limit is not."""
    over = "a=" + "x" * (MAX_BODY - 1)
    with Unchanged(db):
        resp = client.post(path, data=over, content_type=FORM, headers=basic(rp))
    assert_no_crash(resp, path)
    assert resp.status_code == 413, (path, resp.status_code)
    at_limit = "a=" + "x" * (MAX_BODY - 2)
    with Unchanged(db):
        resp = client.post(path, data=at_limit, content_type=FORM, headers=basic(rp))
    assert_no_crash(resp, path)
    assert resp.status_code != 413, path


@pytest.mark.parametrize("path", GET_ENDPOINTS + ["/token"])
def test_query_over_8k_is_414(client, path):
    """RFC 9110 §15.5.15: a query string over the limit (8 KiB) is refused with 414; one right at
    the limit is not."""
    method = client.post if path == "/token" else client.get
    with Unchanged(db):
        resp = method(path + "?a=" + "x" * (MAX_QUERY - 1))
    assert_no_crash(resp, path)
    assert resp.status_code == 414, (path, resp.status_code)
    with Unchanged(db):
        resp = method(path + "?a=" + "x" * (MAX_QUERY - 2))
    assert_no_crash(resp, path)
    assert resp.status_code != 414, path


@pytest.mark.parametrize("path, method, kw", [
    ("/token", "POST", {"data": "a=" + "x" * MAX_BODY, "content_type": FORM}),
    ("/revoke", "POST", {"data": "a=" + "x" * MAX_BODY, "content_type": FORM}),
    ("/introspect", "POST", {"data": "a=" + "x" * MAX_BODY, "content_type": FORM}),
    ("/token", "POST", {"query_string": "a=" + "x" * MAX_QUERY}),
    ("/token", "GET", {}),
    ("/revoke", "GET", {}),
    ("/introspect", "GET", {}),
    ("/par", "GET", {}),
    ("/par", "POST", {"data": "a=" + "x" * MAX_BODY, "content_type": FORM}),
    ("/userinfo", "DELETE", {}),
    ("/.well-known/openid-configuration", "POST", {}),
    ("/jwks.json", "PUT", {}),
])
def test_protocol_endpoints_answer_json_even_for_transport_errors(client, path, method, kw):
    """RFC 6749 §5.2 (and RFC 7009 §2.2.1, RFC 7662 §2.3): the token, revocation and introspection
    endpoints answer errors with a JSON object carrying ``error``; a machine client sending
    ``Accept: */*`` must not get an HTML page for 405/413/414."""
    with Unchanged(db):
        resp = client.open(path, method=method, headers={"Accept": "*/*"}, **kw)
    assert_no_crash(resp, path)
    assert resp.status_code in (400, 405, 413, 414), (path, resp.status_code)
    body = json_body(resp, f"{method} {path}")
    assert isinstance(body.get("error"), str) and body["error"], body


# =============================================================================================
# Hypothesis matrices
# =============================================================================================

AUTHORIZE_KNOWN = {"response_type", "client_id", "redirect_uri", "scope", "state", "nonce", "code_challenge",
                   "code_challenge_method", "prompt", "max_age", "login_hint", "response_mode", "request",
                   "request_uri", "registration", "decision", "csrf_token", "id_token_hint", "acr_values",
                   "ui_locales", "claims", "display"}
AUTHORIZE_OPTIONAL = [("prompt", "login"), ("max_age", "300"), ("login_hint", "alice"), ("response_mode", "query"),
                      ("acr_values", "urn:idp:loa:1"), ("ui_locales", "zh-CN"), ("display", "page")]


def check_authorize(resp, rp, pairs, what):
    """Whatever was sent, the answer is one of: an error page (bad client/redirect_uri), an error
    redirect to the registered URI with state and iss, the login redirect (relative), the consent
    page, or 413/414 — never a code (no consent exists), never a 500."""
    assert_no_crash(resp, what)
    values = {}
    for k, v in pairs:
        values.setdefault(k, []).append(v)
    client_ok = values.get("client_id") == [rp["client_id"]]
    redirect_ok = values.get("redirect_uri") == [rp["redirect_uri"]]
    if resp.status_code in (413, 414):
        return
    if not (client_ok and redirect_ok):
        assert_error_page(resp, what)
        return
    if resp.status_code == 400:  # e.g. a consent POST without a valid CSRF token
        assert_error_page(resp, what)
        return
    if resp.status_code == 200:
        assert 'name="decision"' in body_text(resp), f"{what}: 200 but not the consent page"
        return
    loc = resp.headers.get("Location", "")
    if resp.status_code == 303 and loc.startswith("/login?"):
        return
    states = values.get("state", [])
    state = states[0] if len(states) == 1 and len(states[0]) <= 1024 and states[0] else None
    assert_error_redirect(resp, rp["redirect_uri"], AUTHORIZE_ERRORS, what, state=state)


@pytest.mark.parametrize("method", METHODS)
@FUZZ
@given(data=st.data())
def test_fuzz_authorize(ua, rp, method, data):
    """RFC 6749 §3.1 and §4.1.2.1, OIDC Core §3.1.2.1 and §3.1.2.6: any mix of missing, repeated,
    unknown and garbage parameters gets a page or an error redirect; nothing is stored."""
    base = authorize_params(rp) + data.draw(st.lists(st.sampled_from(AUTHORIZE_OPTIONAL), max_size=2, unique=True))
    pairs = data.draw(mutated(base, known=AUTHORIZE_KNOWN))
    with Unchanged(db):
        resp = send_authorize(ua, method, pairs)
    check_authorize(resp, rp, pairs, f"{method} {changes(base, pairs)}")


PAR_ERRORS = AUTHORIZE_ERRORS | {"invalid_client", "invalid_dpop_proof", "use_dpop_nonce"}


@FUZZ
@given(data=st.data())
def test_fuzz_par(client, rp, data):
    """RFC 9126 §2.1-§2.3: any mix of missing, repeated, unknown and garbage authorization parameters
    pushed by an authenticated client gets a 201 with a request_uri (one row stored) or the token
    endpoint's JSON error with an authorization error code (nothing stored)."""
    from sqlalchemy import func, select

    from idp.oauth.models import PushedRequest

    base = authorize_params(rp) + data.draw(st.lists(st.sampled_from(AUTHORIZE_OPTIONAL), max_size=2, unique=True))
    pairs = data.draw(mutated(base, known=AUTHORIZE_KNOWN))
    stored = db.session.execute(select(func.count()).select_from(PushedRequest)).scalar()
    resp = client.post("/par", data=qs(pairs), content_type=FORM, headers=basic(rp))
    assert_no_crash(resp)
    after = db.session.execute(select(func.count()).select_from(PushedRequest)).scalar()
    if resp.status_code == 201:
        assert json_body(resp, "par")["request_uri"].startswith("urn:ietf:params:oauth:request_uri:")
        assert after == stored + 1
    elif resp.status_code != 413:
        assert_oauth_error(resp, PAR_ERRORS, f"{changes(base, pairs)}")
        assert after == stored


TOKEN_KNOWN = {"grant_type", "code", "redirect_uri", "code_verifier", "client_id", "client_secret", "refresh_token",
               "scope", "client_assertion", "client_assertion_type", "resource", "audience"}


@FUZZ
@given(data=st.data())
def test_fuzz_token_authorization_code(client, rp, issued_code, data):
    """RFC 6749 §4.1.3 and §5.2, RFC 7636 §4.5: a code exchange with any required parameter
    missing or garbled fails with a §5.2 code and leaves the code unused."""
    code, verifier = issued_code
    base = [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", rp["redirect_uri"]),
            ("code_verifier", verifier)]
    pairs = data.draw(mutated(base, known=TOKEN_KNOWN, breaking=["code", "redirect_uri", "code_verifier", "grant_type"],
                              ops=("extra",)))
    with Unchanged(db):
        resp = client.post("/token", data=qs(pairs), content_type=FORM, headers=basic(rp))
    if resp.status_code not in (413,):
        assert_oauth_error(resp, TOKEN_ERRORS, changes(base, pairs))


@FUZZ
@given(data=st.data())
def test_fuzz_token_refresh(client, rp, tokens, data):
    """RFC 6749 §6 and §5.2: a refresh request with a missing or garbled refresh_token or scope
    fails with a §5.2 code; nothing is rotated or revoked."""
    base = [("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"]), ("scope", "openid")]
    pairs = data.draw(mutated(base, known=TOKEN_KNOWN, breaking=["refresh_token", "grant_type"], ops=("extra",)))
    with Unchanged(db):
        resp = client.post("/token", data=qs(pairs), content_type=FORM, headers=basic(rp))
    if resp.status_code != 413:
        assert_oauth_error(resp, TOKEN_ERRORS, changes(base, pairs))


@FUZZ
@given(data=st.data())
def test_fuzz_token_client_credentials(client, service_rp, data):
    """RFC 6749 §4.4.2 and §5.2: client_credentials with garbage scope or extra parameters."""
    base = [("grant_type", "client_credentials"), ("scope", "x")]
    pairs = data.draw(mutated(base, known=TOKEN_KNOWN, breaking=["scope", "grant_type"], ops=("extra", "repeat")))
    first_scope = next((v for k, v in pairs if k == "scope"), "")
    if not first_scope.split():
        pairs.insert(0, ("scope", "openid"))  # no scope at all is a valid request; keep it failing
    with Unchanged(db):
        resp = client.post("/token", data=qs(pairs), content_type=FORM, headers=basic(service_rp))
    if resp.status_code != 413:
        assert_oauth_error(resp, TOKEN_ERRORS, changes(base, pairs))


@FUZZ
@given(grant_type=nasty.filter(lambda g: g not in ("authorization_code", "refresh_token", "client_credentials")),
       extra=st.lists(st.tuples(junk_name(TOKEN_KNOWN), nasty), max_size=3))
def test_fuzz_token_grant_type(client, rp, grant_type, extra):
    """RFC 6749 §5.2: an unknown grant type is unsupported_grant_type (missing: invalid_request)."""
    with Unchanged(db):
        resp = client.post("/token", data=qs([("grant_type", grant_type)] + extra), content_type=FORM, headers=basic(rp))
    if resp.status_code != 413:
        assert_oauth_error(resp, {"unsupported_grant_type", "invalid_request"}, repr(grant_type[:40]))


basic_credentials = st.one_of(
    st.binary(max_size=80).map(b64),                                   # arbitrary bytes, valid base64
    header_text,                                                       # not base64 at all
    st.tuples(st.sampled_from(["rp", "junk"]), nasty.map(lambda s: s[:200])),  # id:secret with garbage
)


@pytest.mark.parametrize("path", ["/token", "/revoke", "/introspect"])
@FUZZ
@given(scheme=st.sampled_from(["Basic ", "basic ", "BASIC ", "Basic  ", "Basic", "Bearer ", ""]),
       cred=basic_credentials)
def test_fuzz_client_authentication(client, rp, issued_code, path, scheme, cred):
    """RFC 6749 §2.3.1 and §5.2: any malformed Authorization header is invalid_client (401 with
    WWW-Authenticate) or invalid_request; the code it carries is not redeemed."""
    code, verifier = issued_code
    if isinstance(cred, tuple):
        who_, secret = cred
        ident = rp["client_id"] if who_ == "rp" else "junk"
        cred = b64(f"{ident}:{secret}".encode())
    header = (scheme + cred).replace("\r", "").replace("\n", "")
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": rp["redirect_uri"],
            "code_verifier": verifier, "token": "x"}
    with Unchanged(db):
        resp = client.post(path, data=data, headers={"Authorization": header})
    assert_oauth_error(resp, {"invalid_client", "invalid_request"}, f"{path} {header[:60]!r}")


CONTENT_TYPES = [FORM, FORM + "; charset=bogus", FORM + "; charset=latin-1", "application/json", "text/plain",
                 "multipart/form-data", "multipart/form-data; boundary=xyz", "application/xml", "", "é/é"]


@pytest.mark.parametrize("path", ["/token", "/revoke", "/introspect"])
@FUZZ
@given(content_type=st.sampled_from(CONTENT_TYPES),
       body=st.one_of(st.binary(max_size=300),
                      st.dictionaries(st.sampled_from(sorted(TOKEN_KNOWN | {"token", "token_type_hint"})), json_value,
                                      max_size=5).map(lambda d: json.dumps(d).encode()),
                      st.text(max_size=200).map(str.encode)))
def test_fuzz_bodies_and_content_types(client, rp, path, content_type, body):
    """RFC 6749 §3.2 (application/x-www-form-urlencoded) and §5.2: a body of the wrong type, bad
    JSON, wrong types inside JSON or undecodable bytes is a §5.2 error, never a 500."""
    with Unchanged(db):
        resp = client.post(path, data=body, content_type=content_type or None, headers=basic(rp))
    assert_no_crash(resp, f"{path} {content_type} {body[:80]!r}")
    if path == "/revoke" and resp.status_code == 200:
        return  # RFC 7009 §2.2: an unknown token is a successful no-op
    if path == "/introspect" and resp.status_code == 200:
        assert json_body(resp) == {"active": False}
        return
    allowed = {"/token": TOKEN_ERRORS, "/revoke": REVOCATION_ERRORS, "/introspect": INTROSPECTION_ERRORS}[path]
    assert_oauth_error(resp, allowed, f"{path} {content_type} {body[:80]!r}")


@FUZZ
@given(data=st.data())
def test_fuzz_revoke(client, rp, rp2, tokens, data):
    """RFC 7009 §2.1-§2.2.1: garbage, missing or repeated parameters, or another client's token:
    a §2.2.1 error or a 200 no-op; the live tokens are never revoked."""
    # Unknown hints and repeated tokens have their own explicit tests above; here the hint is valid.
    token = data.draw(st.one_of(nasty, st.just(tokens["refresh_token"]), st.just(tokens["access_token"])))
    pairs = data.draw(mutated([("token", token)], known={"token", "token_type_hint"}))
    pairs += data.draw(st.sampled_from([[], [("token_type_hint", "access_token")], [("token_type_hint", "refresh_token")]]))
    auth = basic(rp2) if any(v in (tokens["refresh_token"], tokens["access_token"]) for _, v in pairs) else basic(rp)
    with Unchanged(db):
        resp = client.post("/revoke", data=qs(pairs), content_type=FORM, headers=auth)
    assert_no_crash(resp)
    if resp.status_code not in (200, 413):
        assert_oauth_error(resp, REVOCATION_ERRORS, f"{pairs!r:.300}")


@FUZZ
@given(data=st.data())
def test_fuzz_introspect(client, rp, rp2, tokens, data):
    """RFC 7662 §2.1-§2.3: garbage, missing or repeated parameters: an error or {"active": false};
    another client never learns about rp's tokens."""
    token = data.draw(st.one_of(nasty, st.just(tokens["access_token"])))
    pairs = data.draw(mutated([("token", token)], known={"token", "token_type_hint"}))
    pairs += data.draw(st.sampled_from([[], [("token_type_hint", "access_token")], [("token_type_hint", "refresh_token")]]))
    with Unchanged(db):
        resp = client.post("/introspect", data=qs(pairs), content_type=FORM, headers=basic(rp2))
    assert_no_crash(resp)
    if resp.status_code == 200:
        assert json_body(resp) == {"active": False}, f"{pairs!r:.300}"
    elif resp.status_code != 413:
        assert_oauth_error(resp, INTROSPECTION_ERRORS, f"{pairs!r:.300}")


@pytest.mark.parametrize("method", METHODS)
@FUZZ
@given(auth=st.one_of(st.none(), header_text, header_text.map(lambda s: "Bearer " + s)),
       params=st.lists(st.tuples(st.one_of(st.just("access_token"), junk_name(set())), nasty), max_size=3))
def test_fuzz_userinfo(client, user, method, auth, params):
    """OIDC Core §5.3.3 and RFC 6750 §3.1: without a valid token, UserInfo answers 401 (400/403)
    with WWW-Authenticate: Bearer and an RFC 6750 error, never claims."""
    headers = {"Authorization": auth} if auth is not None else {}
    with Unchanged(db):
        if method == "GET":
            resp = client.get("/userinfo?" + qs(params), headers=headers)
        else:
            resp = client.post("/userinfo", data=qs(params), content_type=FORM, headers=headers)
    if resp.status_code in (413, 414):
        assert_no_crash(resp)
        return
    assert_oauth_error(resp, BEARER_ERRORS, f"{auth!r:.60} {params!r:.200}", status=(400, 401, 403))
    assert resp.headers.get("WWW-Authenticate", "").startswith("Bearer")


@FUZZ
@given(params=st.lists(st.tuples(st.one_of(st.sampled_from(["next", "login_hint"]), junk_name(set())), nasty),
                       max_size=4))
def test_fuzz_login_get(client, params):
    """RFC 9110 §15.5.15 (414) and the requirement's "readable error page": the login page renders
    for any query, never a 500; ``next`` is always an own path (RFC 9700 §4.11); nothing stored."""
    with Unchanged(db):
        resp = client.get("/login?" + qs(params))
    assert_no_crash(resp)
    if resp.status_code != 414:
        assert resp.status_code == 200 and resp.mimetype == "text/html"
        fields = form_fields(body_text(resp))
        assert fields.get("next", "/").startswith("/") and not fields.get("next", "/").startswith("//")


@FUZZ_SLOW
@given(data=st.data())
def test_fuzz_login_post(client, user, data):
    """RFC 6749 §10.12 (CSRF) and the requirement: a refused login (bad or missing fields, bad CSRF,
    wrong password) re-renders the page or shows a 400 page (429 once the throttle locks the name):
    no session is started and nothing but the audit log and the throttle counters change."""
    page = client.get("/login")
    fields = {k: v for k, v in form_fields(body_text(page)).items() if k not in ("username", "password")}
    base = list(fields.items()) + [("username", "alice"), ("password", "not-" + PASSWORD)]
    pairs = data.draw(mutated(base, known={"csrf_token", "next", "username", "password"}))
    if ("password", PASSWORD) in pairs:
        return
    with Unchanged(db):
        resp = client.post("/login", data=qs(pairs), content_type=FORM)
    assert_no_crash(resp)
    # 429: the fuzzer's many wrong passwords for one name hit the login throttle (by design)
    assert resp.status_code in (200, 400, 413, 429), resp.status_code
    assert "Location" not in resp.headers
    assert "idp_session=" not in " ".join(resp.headers.getlist("Set-Cookie"))


DISCOVERY_ENDPOINTS = ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server", "/jwks.json"]


@pytest.mark.parametrize("path", DISCOVERY_ENDPOINTS)
@FUZZ
@given(method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]),
       params=st.lists(st.tuples(junk_name(set()), nasty), max_size=3),
       accept=st.one_of(st.none(), header_text, st.sampled_from(["text/html", "application/xml", "*/*;q=0"])),
       inm=st.one_of(st.none(), header_text))
def test_fuzz_discovery_and_jwks(client, path, method, params, accept, inm):
    """OIDC Discovery §4 and RFC 7517 §5: GET always gives the same JSON document, whatever the
    query or headers; other methods get 405 (OPTIONS may answer); never a 500."""
    baseline = client.get(path).get_data()
    headers = {}
    if accept is not None:
        headers["Accept"] = accept
    if inm is not None:
        headers["If-None-Match"] = inm
    with Unchanged(db):
        resp = client.open(path + "?" + qs(params), method=method, headers=headers)
    assert_no_crash(resp, f"{method} {path}")
    if resp.status_code == 414:
        return
    if method == "GET":
        assert resp.status_code == 200 and resp.get_data() == baseline
    elif method == "HEAD":
        assert resp.status_code == 200
    elif method == "OPTIONS":
        assert resp.status_code in (200, 204)
    else:
        assert resp.status_code == 405


@pytest.mark.parametrize("path", POST_ENDPOINTS)
@settings(FUZZ, max_examples=8)
@given(size=st.integers(MAX_BODY + 1, 4 * MAX_BODY), many=st.booleans())
def test_fuzz_oversized_bodies(client, rp, path, size, many):
    """RFC 9110 §15.5.14: any body over 64 KiB is 413, however it is made up."""
    body = ("a=b&" * (size // 4 + 1))[:size] if many else "a=" + "x" * (size - 2)
    with Unchanged(db):
        resp = client.post(path, data=body, content_type=FORM, headers=basic(rp))
    assert_no_crash(resp, path)
    assert resp.status_code == 413


@pytest.mark.parametrize("path", GET_ENDPOINTS)
@settings(FUZZ, max_examples=8)
@given(size=st.integers(MAX_QUERY + 1, 5 * MAX_QUERY), many=st.booleans())
def test_fuzz_oversized_queries(client, path, size, many):
    """RFC 9110 §15.5.15: any query string over 8 KiB is 414."""
    query = ("a=b&" * (size // 4 + 1))[:size] if many else "a=" + "x" * (size - 2)
    with Unchanged(db):
        resp = client.get(path + "?" + query)
    assert_no_crash(resp, path)
    assert resp.status_code == 414
