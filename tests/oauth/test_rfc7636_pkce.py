"""PKCE (RFC 7636): S256 only, required for public clients, verifier checked at the token endpoint."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import exchange, make_rp, pkce_pair


def _error(resp):
    assert resp.status_code == 302, resp.get_data(as_text=True)[:300]
    return parse_qs(urlsplit(resp.location).query)


def test_plain_method_is_refused(browser, rp, user):
    """RFC 7636 §4.2 and RFC 9700 §2.1.1: we support S256 only; plain is an invalid_request."""
    browser.login()
    q = _error(browser.authorize(rp, extra={"code_challenge_method": "plain"}))
    assert q["error"] == ["invalid_request"]


def test_missing_method_is_an_error_not_plain(browser, rp, user):
    """RFC 7636 §4.3 defaults to plain when the method is absent; we refuse instead of downgrading."""
    browser.login()
    q = _error(browser.authorize(rp, extra={"code_challenge_method": None}))
    assert q["error"] == ["invalid_request"]


def test_public_client_must_send_a_challenge(app, browser, user):
    """RFC 9700 §2.1.1: public clients MUST use PKCE."""
    pub = make_rp(app, auth_method="none", first_party=True)
    browser.login()
    q = _error(browser.authorize(pub, pkce=False))
    assert q["error"] == ["invalid_request"]


def test_public_client_code_flow_with_pkce(app, client, browser, user):
    """RFC 7636 §4.5-4.6: a public client redeems its code with the verifier and no secret."""
    pub = make_rp(app, auth_method="none", first_party=True)
    code, verifier, _ = browser.code(pub)
    resp = client.post("/token", data={"grant_type": "authorization_code", "code": code, "client_id": pub["client_id"],
                                       "redirect_uri": pub["redirect_uri"], "code_verifier": verifier})
    assert resp.status_code == 200, resp.get_json()
    assert "id_token" in resp.get_json()


@pytest.mark.parametrize("verifier", ["wrong-" + "x" * 50, None])
def test_wrong_or_missing_verifier_is_refused_and_code_stays_unused(client, browser, rp, user, verifier):
    """RFC 7636 §4.6: a verifier that does not match is invalid_grant; a missing one invalid_request."""
    from idp.oauth.models import AuthorizationCode

    code, _, _ = browser.code(rp)
    resp = exchange(client, rp, code, verifier)
    assert resp.status_code == 400
    assert resp.get_json()["error"] == ("invalid_grant" if verifier else "invalid_request")
    assert AuthorizationCode.query.one().used_at is None


def test_verifier_without_challenge_is_refused(client, browser, rp, user):
    """RFC 9700 §4.8.2: a code_verifier for a code issued without a challenge is refused."""
    code, _, _ = browser.code(rp, pkce=False)
    verifier, _ = pkce_pair()
    resp = exchange(client, rp, code, verifier)
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_request"
