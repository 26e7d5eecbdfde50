"""prompt, max_age, login_hint and consent (OIDC Core 1.0 §3.1.2.1, §3.1.2.3, §3.1.2.4, §11)."""
from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

from joserfc import jwt

from tests.conftest import PASSWORD, exchange, form_fields


def _q(resp):
    return parse_qs(urlsplit(resp.location).query)


def test_prompt_none_without_session_returns_login_required(browser, rp, user):
    """OIDC Core §3.1.2.6: prompt=none and no session → login_required at the client, with state and iss."""
    resp = browser.authorize(rp, extra={"prompt": "none"})
    q = _q(resp)
    assert resp.location.startswith(rp["redirect_uri"])
    assert q["error"] == ["login_required"] and q["state"] == [resp.params["state"]]
    assert q["iss"] == ["http://127.0.0.1:5000"]


def test_prompt_none_without_consent_returns_consent_required(browser, rp, user):
    """OIDC Core §3.1.2.6: consent needed but prompt=none → consent_required."""
    browser.login()
    assert _q(browser.authorize(rp, extra={"prompt": "none"}))["error"] == ["consent_required"]


def test_prompt_none_with_session_and_consent_returns_code(browser, rp, user):
    """OIDC Core §3.1.2.1: prompt=none with a live session and consent → code, no page."""
    browser.code(rp)
    resp = browser.authorize(rp, extra={"prompt": "none"}, consent=None)
    assert "code" in _q(resp)


def test_no_session_redirects_to_login_with_hint(browser, rp, user):
    """OIDC Core §3.1.2.1 login_hint: the login page is pre-filled."""
    resp = browser.authorize(rp, extra={"login_hint": "alice"})
    assert resp.status_code == 303 and resp.location.startswith("/login?")
    page = browser.client.get(resp.location).get_data(as_text=True)
    assert form_fields(page)["username"] == "alice"


def test_prompt_login_forces_a_new_login_and_new_session(client, browser, rp, user):
    """OIDC Core §3.1.2.1 prompt=login: re-authenticate even with a session; the session id changes."""
    code, verifier, _ = browser.code(rp)
    first = jwt.decode(exchange(client, rp, code, verifier).get_json()["id_token"], _keys(client)).claims
    resp = browser.authorize(rp, extra={"prompt": "login"})
    assert resp.status_code == 303 and resp.location.startswith("/login")
    time.sleep(1.1)
    code, verifier, _ = browser.code(rp, extra={"prompt": "login"})
    second = jwt.decode(exchange(client, rp, code, verifier).get_json()["id_token"], _keys(client)).claims
    assert second["auth_time"] > first["auth_time"]
    assert second["sid"] != first["sid"]  # no session fixation: new identifier at every login


def test_max_age_zero_requires_fresh_login(browser, rp, user):
    """OIDC Core §3.1.2.1 max_age: an older authentication must be redone."""
    browser.code(rp)
    time.sleep(1.1)
    resp = browser.authorize(rp, extra={"max_age": "0"})
    assert resp.status_code == 303 and resp.location.startswith("/login")
    code, _, _ = browser.code(rp, extra={"max_age": "0"})
    assert code


def test_max_age_large_reuses_session(browser, rp, user):
    browser.code(rp)
    resp = browser.authorize(rp, extra={"max_age": "3600"})
    assert resp.status_code == 302 and "code" in _q(resp)


def test_consent_is_remembered_per_client_and_scopes(browser, rp, user):
    """Consent asked once; a wider scope set asks again."""
    browser.code(rp, scope="openid profile")
    again = browser.authorize(rp, scope="openid profile", consent=None)
    assert again.status_code == 302
    wider = browser.authorize(rp, scope="openid profile email", consent=None)
    assert wider.status_code == 200 and b'name="decision"' in wider.data


def test_consent_denied_returns_access_denied(browser, rp, user):
    """RFC 6749 §4.1.2.1 access_denied when the person refuses."""
    resp = browser.authorize(rp, follow_login=("alice", PASSWORD), consent="deny")
    assert _q(resp)["error"] == ["access_denied"]


def test_first_party_client_skips_consent(browser, rp2, user):
    resp = browser.authorize(rp2, follow_login=("alice", PASSWORD), consent=None)
    assert resp.status_code == 302 and "code" in _q(resp)


def test_offline_access_needs_prompt_consent(client, browser, rp2, user):
    """OIDC Core §11: offline_access is ignored unless prompt=consent; then it is granted explicitly."""
    from idp.oauth.models import Token

    code, verifier, _ = browser.code(rp2, scope="openid offline_access")
    body = exchange(client, rp2, code, verifier).get_json()
    assert "offline_access" not in body["scope"].split()
    code, verifier, _ = browser.code(rp2, scope="openid offline_access", extra={"prompt": "consent"})
    body = exchange(client, rp2, code, verifier).get_json()
    assert "offline_access" in body["scope"].split()
    assert Token.query.filter_by(offline=True).count() == 1


def test_consent_post_without_csrf_token_is_refused(client, browser, rp, user):
    """Every form carries a CSRF token (DESIGN.md): a forged consent POST issues nothing."""
    from idp.oauth.models import AuthorizationCode

    browser.login()
    page = browser.authorize(rp, consent=None)
    assert page.status_code == 200
    import re
    from html import unescape

    action = unescape(re.search(r'<form method="post" action="([^"]+)"', page.get_data(as_text=True)).group(1))
    resp = client.post(action, data={"decision": "allow"})
    assert resp.status_code == 400
    assert AuthorizationCode.query.count() == 0


def _keys(client):
    from joserfc.jwk import KeySet

    return KeySet.import_key_set(client.get("/jwks.json").get_json())
