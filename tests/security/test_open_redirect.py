"""The login page's ``next`` parameter cannot send a signed-in person off-site.

RFC 9700 §4.11 (open redirection: an authorization server must not redirect to arbitrary URLs),
RFC 6749 §10.15, OWASP "Unvalidated redirects and forwards". After a successful login the hub
redirects to ``next``; whatever ``next`` says — in the query of GET /login (carried in the form)
or posted directly — the Location must resolve, the way a browser resolves it, to the issuer's
own origin.
"""
from __future__ import annotations

from urllib.parse import urlencode, urljoin, urlsplit

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.conftest import PASSWORD, form_fields
from tests.security.support import create_alice, module_app

ISSUER_ORIGIN = ("http", "127.0.0.1:5000")
LOGIN_URL = "http://127.0.0.1:5000/login"

ATTACKS = [
    "//evil.example",
    "//evil.example/path",
    "///evil.example",
    "////evil.example",
    "https://evil.example",
    "http://evil.example/authorize",
    "https:evil.example",
    "https:/evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "\\/evil.example",
    "/\\/evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r\n/evil.example",
    "/\n",
    "/x\r\nSet-Cookie: pwned=1",
    "/\x00",
    " //evil.example",
    "\x00//evil.example",
    "\x1f//evil.example",
    "javascript:alert(document.cookie)",
    "JaVaScRiPt:alert(1)",
    " javascript:alert(1)",
    "java\tscript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "%2F%2Fevil.example",
    "/%2F/evil.example",
    "/%2F%2Fevil.example",
    "%5C%5Cevil.example",
    "/%5Cevil.example",
    "/%09/evil.example",
    "/.//evil.example",
    "/..//evil.example",
    "/login?next=//evil.example",
    "//evil.example@127.0.0.1:5000",
    "http://127.0.0.1:5000@evil.example",
    "//127.0.0.1:5000.evil.example",
    "/／evil.example",            # fullwidth solidus
    "/\u2215evil.example",         # division slash
    "／／evil.example",
    "\u3002evil.example",
    "https://evil。example",
    "//evil%E3%80%82example",
    "",
    "x" * 5000,
]


@pytest.fixture(scope="module")
def app(tmp_path_factory, template_dir):
    yield from module_app(tmp_path_factory, template_dir)


@pytest.fixture(scope="module")
def user(app):
    return create_alice()


def browser_resolves(location: str):
    """(scheme, host) a browser would go to for this Location, following the WHATWG URL parser's
    leniency: leading/trailing C0 controls and spaces are stripped, tabs and newlines removed,
    and a backslash counts as a slash in http(s) URLs."""
    loc = location.strip("".join(chr(c) for c in range(0x21)))
    loc = loc.replace("\t", "").replace("\n", "").replace("\r", "").replace("\\", "/")
    parts = urlsplit(urljoin(LOGIN_URL, loc))
    return parts.scheme.lower(), parts.netloc.lower()


def assert_stays_on_site(resp, attack):
    assert resp.status_code == 303, (attack, resp.status_code, resp.get_data(as_text=True)[:300])
    loc = resp.headers["Location"]
    assert browser_resolves(loc) == ISSUER_ORIGIN, f"next={attack!r} redirected off-site: Location {loc!r}"
    assert "evil" not in urlsplit(urljoin(LOGIN_URL, loc)).netloc


def login_via_form(client, next_value):
    """GET /login?next=..., then submit the form as a browser does (next travels in a hidden field)."""
    page = client.get("/login?" + urlencode({"next": next_value}))
    assert page.status_code in (200, 414)
    if page.status_code == 414:
        return None
    fields = form_fields(page.get_data(as_text=True))
    return client.post("/login", data={**fields, "username": "alice", "password": PASSWORD})


def login_posting_next(client, next_value):
    """An attacker-shaped form: the valid CSRF token from the page, but ``next`` set directly."""
    page = client.get("/login")
    fields = form_fields(page.get_data(as_text=True))
    return client.post("/login", data={**fields, "next": next_value, "username": "alice", "password": PASSWORD})


@pytest.mark.parametrize("attack", ATTACKS, ids=[repr(a[:30]) for a in ATTACKS])
def test_next_in_query_never_leaves_the_site(app, user, attack):
    """RFC 9700 §4.11: ``next`` from the login URL never yields an off-site Location."""
    resp = login_via_form(app.test_client(), attack)
    if resp is not None:
        assert_stays_on_site(resp, attack)


@pytest.mark.parametrize("attack", ATTACKS, ids=[repr(a[:30]) for a in ATTACKS])
def test_next_posted_directly_never_leaves_the_site(app, user, attack):
    """RFC 9700 §4.11: the hidden ``next`` field is re-checked on POST (it is attacker-editable)."""
    assert_stays_on_site(login_posting_next(app.test_client(), attack), attack)


def test_legitimate_next_is_kept(app, user):
    """RFC 9700 §4.11 is about off-site targets only: relative paths on the hub (e.g. back to
    /authorize) survive the login unchanged."""
    target = "/authorize?client_id=abc&redirect_uri=https%3A%2F%2Frp.example.cn%2Fcb&state=x"
    resp = login_via_form(app.test_client(), target)
    assert resp.status_code == 303 and resp.headers["Location"] == target


next_values = st.one_of(
    st.text(max_size=60),
    st.tuples(st.sampled_from(["/", "//", "\\", "/\\", "\\/", "http:", "https:", "javascript:", " ", "\t", "%2F", ""]),
              st.sampled_from(["", "/", "\\", "\t", "\n", "%2F", "@", "evil.example"]),
              st.sampled_from(["evil.example", "evil.example/x", "@evil.example", ".evil.example"]))
      .map("".join),
)


@settings(max_examples=25, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(value=next_values, posted=st.booleans())
def test_fuzz_next(app, user, value, posted):
    """RFC 9700 §4.11, generated: any ``next`` (prefix tricks, separators, arbitrary text) resolves
    on-site after a real login (each example is a full login: one password check)."""
    client = app.test_client()
    resp = login_posting_next(client, value) if posted else login_via_form(client, value)
    if resp is not None:
        assert_stays_on_site(resp, value)


@settings(max_examples=400, deadline=None, database=None)
@given(value=st.one_of(st.text(max_size=40), next_values))
def test_fuzz_safe_next_and_redirect(app, value):
    """RFC 9700 §4.11, without the password check so many more inputs: the login view's
    ``safe_next`` and Flask's redirect() together never yield an off-site Location (nor fail)."""
    from flask import redirect

    from idp.authn.views import safe_next

    with app.test_request_context("/login"):
        resp = redirect(safe_next(value), code=303)
    assert browser_resolves(resp.headers["Location"]) == ISSUER_ORIGIN, (value, resp.headers["Location"])
