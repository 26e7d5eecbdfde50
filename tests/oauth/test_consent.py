"""The consent page lists exactly what a subsite will receive, claim by claim (OIDC Core 1.0
§3.1.2.4 "obtains End-User consent"), with the person's own values masked; the ID number is
asked separately as sensitive personal information (PIPL Art. 29-30). Consents are reviewed and
withdrawn at /account/consents; withdrawal revokes the subsite's tokens (RFC 7009 §2.1 effect).
"""
from __future__ import annotations

import re

import pytest

from idp.audit.models import AuditEvent
from idp.oauth.models import Consent
from tests.conftest import basic, form_fields, make_rp
from tests.oauth.privacy_support import (EMAIL, ID_NUMBER, PHONE, answer, consent_page, sign_in, tokens_for,
                                         userinfo)

ALL = "openid profile email phone id_card"


@pytest.fixture
def id_rp(app):
    return make_rp(app, name="人社局", redirect_uri="https://rsj.example.cn/cb",
                   scopes=["openid", "profile", "email", "phone", "offline_access", "id_card"])


def _claims_on(html: str) -> set[str]:
    return set(re.findall(r'data-claim="([^"]+)"', html))


def test_page_lists_each_claim_with_masked_values_and_the_id_number_apart(client, browser, user, id_rp):
    """Claim by claim, masked (手机号码 138****8000); the ID number in its own section with its
    purpose and an unticked box; no identifier in the clear anywhere on the page."""
    sign_in(browser, user, level=2)
    page = consent_page(browser, id_rp, ALL)
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    for label, shown in (("姓名", "张三"), ("用户名", "alice"), ("手机号码", "138****8000"),
                         ("电子邮箱", "a***@example.cn"), ("居民身份证号码", "1101**********002X")):
        assert re.search(re.escape(label) + r"(</td><td>|</strong>: )" + re.escape(shown), html), label
    for clear in (ID_NUMBER, PHONE, EMAIL):
        assert clear not in html
    sensitive = html[html.index("敏感个人信息"):html.index("</section>")]
    assert "1101**********002X" in sensitive and "用途" in sensitive
    box = re.search(r'<input type="checkbox" id="consent-sensitive" name="consent_sensitive" value="id_card">', sensitive)
    assert box, "the separate consent is an unticked checkbox"
    assert re.search(r'<label for="consent-sensitive"[^>]*>我单独同意', sensitive)
    assert 'name="decision" value="allow"' in html and 'name="decision" value="deny"' in html


def test_page_lists_exactly_what_is_then_released(client, browser, user, id_rp):
    """What the page lists is what UserInfo then returns: no claim more, no claim less."""
    sign_in(browser, user, level=2)
    page = consent_page(browser, id_rp, ALL)
    listed = _claims_on(page.get_data(as_text=True))
    body = tokens_for(client, id_rp, answer(client, page, share_id_card=True))
    released = set(userinfo(client, body["access_token"]).get_json()) - {"sub"}
    assert listed == released
    assert "id_card_number" in released


def test_page_in_english(client, browser, user, id_rp):
    """The page follows the language choice (idp_lang cookie)."""
    client.set_cookie("idp_lang", "en")
    sign_in(browser, user, level=2)
    html = consent_page(browser, id_rp, "openid phone id_card").get_data(as_text=True)
    assert "Mobile phone number" in html and "138****8000" in html
    assert "Sensitive personal information" in html and "Purpose:" in html
    assert _claims_on(html) == {"phone_number", "phone_number_verified", "id_card_number"}


def test_page_at_level_one_says_the_id_number_will_not_be_shared(client, browser, user, id_rp):
    """Below level 2 the page does not offer the ID number, and says why."""
    sign_in(browser, user, level=1)
    html = consent_page(browser, id_rp, ALL).get_data(as_text=True)
    assert "id_card_number" not in _claims_on(html) and 'name="consent_sensitive"' not in html
    assert 'data-withheld="id_card_number"' in html and "本次不会提供" in html


def test_page_omits_what_the_person_does_not_have(app, client, browser):
    """A claim with no value is not released, so not listed."""
    from idp.accounts.service import create_citizen

    rp = make_rp(app, name="子站")
    create_citizen(username="alice", password="correct horse battery")  # no phone, email or ID number
    assert browser.login().status_code == 303
    html = consent_page(browser, rp, "openid profile email phone").get_data(as_text=True)
    assert _claims_on(html) == {"preferred_username", "updated_at"}


def _consent_with_tokens(client, browser, user, rp, scope="openid profile phone", level=1):
    sign_in(browser, user, level)
    return tokens_for(client, rp, answer(client, consent_page(browser, rp, scope), share_id_card=True))


def test_consents_page_lists_and_withdraws(client, browser, user, rp, id_rp):
    """Review: each subsite, what it may receive, when; withdraw: consent gone, that subsite's
    tokens revoked (refresh and access, offline too), audited, the next authorization asks again."""
    assert client.get("/account/consents").location.startswith("/login")
    mine = _consent_with_tokens(client, browser, user, rp)
    offline = tokens_for(client, rp, answer(client, consent_page(browser, rp, "openid offline_access",
                                                                 extra={"prompt": "consent"})))
    other = _consent_with_tokens(client, browser, user, id_rp, ALL, level=2)
    page = client.get("/account/consents?lang=en")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "人社局" in html and "测试子站" in html
    row = html[html.index(f'data-client="{rp["client_id"]}"'):]
    row = row[:row.index("</tr>")]
    assert "Your name and username" in row and "Your mobile phone number" in row and "UTC" in row
    assert "email" not in row.lower()

    resp = client.post("/account/consents/withdraw", data={**form_fields(html), "client_id": rp["client_id"]})
    assert resp.status_code == 303 and resp.location == "/account/consents"
    assert Consent.query.filter_by(client_id=rp["client_id"]).count() == 0
    for body in (mine, offline):
        assert userinfo(client, body["access_token"]).status_code == 401
        refresh = client.post("/token", data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
                              headers=basic(rp))
        assert refresh.get_json()["error"] == "invalid_grant"
    assert userinfo(client, other["access_token"]).status_code == 200  # another subsite is untouched
    event = AuditEvent.query.filter_by(action="consent.withdrawn").one()
    assert event.target == f"client:{rp['client_id']}" and event.detail == {"tokens_revoked": 2}
    assert f'data-client="{rp["client_id"]}"' not in client.get("/account/consents").get_data(as_text=True)
    again = consent_page(browser, rp, "openid profile phone")
    assert again.status_code == 200 and b'name="decision"' in again.data


def test_withdraw_needs_the_csrf_token_and_ones_own_consent(app, client, browser, user, rp):
    """Every form carries a CSRF token (DESIGN.md); nobody withdraws another person's consent."""
    from idp.accounts.service import create_citizen

    _consent_with_tokens(client, browser, user, rp)
    forged = client.post("/account/consents/withdraw", data={"client_id": rp["client_id"]})
    assert forged.status_code == 400
    assert Consent.query.filter_by(client_id=rp["client_id"]).count() == 1
    create_citizen(username="bob", password="correct horse battery")
    assert browser.login("bob").status_code == 303
    token = form_fields(client.get("/account/sessions").get_data(as_text=True))["csrf_token"]
    other = client.post("/account/consents/withdraw", data={"csrf_token": token, "client_id": rp["client_id"]})
    assert other.status_code == 404
    assert Consent.query.filter_by(client_id=rp["client_id"]).count() == 1


def test_a_second_withdrawal_racing_the_first_changes_and_records_nothing(app, client, browser, user, rp, monkeypatch):
    """Two clicks (two tabs): the second read the consent before the first deleted it. Its DELETE
    deletes nothing, so it answers 404 and records no second ``consent.withdrawn``."""
    from idp.db import db
    from idp.oauth import consent

    _consent_with_tokens(client, browser, user, rp)
    stale = consent._row(user.id, rp["client_id"])
    assert consent.withdraw(user, rp["client_id"])["client_id"] == rp["client_id"]
    monkeypatch.setattr(consent, "_row", lambda person_id, client_id: stale)  # as the second request read it
    from idp.errors import NotFound

    with pytest.raises(NotFound):
        consent.withdraw(user, rp["client_id"])
    db.session.rollback()
    assert AuditEvent.query.filter_by(action="consent.withdrawn").count() == 1
