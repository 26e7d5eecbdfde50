"""/account/security: enrolling TOTP from the page (QR code and manual key, confirmation with a first
code), recovery codes shown once, and turning TOTP off only with re-authentication."""
from __future__ import annotations

import re
from html import unescape

import pyotp

from idp.audit.models import AuditEvent
from idp.authn import totp
from idp.authn.models import TotpCredential
from tests.authn.support import clock, enroll, in_request  # noqa: F401
from tests.conftest import PASSWORD, form_fields


def _form(html: str, form_id: str) -> dict:
    """The fields of one form of the page (the security page has several)."""
    block = re.search(rf'<form[^>]*id="{form_id}"[^>]*>(.*?)</form>', html, re.S)
    assert block, f"no form {form_id}:\n{html[:2000]}"
    return form_fields(block.group(1))


def _enroll_from_page(client, clock):
    page = client.get("/account/security?lang=en").get_data(as_text=True)
    resp = client.post("/account/security/totp", data={**_form(page, "enroll-form"), "password": PASSWORD})
    assert resp.status_code == 303, resp.get_data(as_text=True)[:1000]
    page = client.get("/account/security").get_data(as_text=True)
    key = re.sub(r"\s", "", unescape(re.search(r'<code id="totp-key"[^>]*>([^<]+)</code>', page).group(1)))
    resp = client.post("/account/security/totp/confirm",
                       data={**_form(page, "confirm-form"), "otp": pyotp.TOTP(key).generate_otp(clock.step)})
    clock.tick()
    return key, page, resp


def test_security_page_needs_a_session(client):
    resp = client.get("/account/security")
    assert resp.status_code == 303 and resp.location.startswith("/login?next=%2Faccount%2Fsecurity")


def test_enroll_from_the_page(app, client, browser, user, clock):
    """RFC 6238 enrollment: an otpauth:// key shown as an inline SVG QR code and as text; the first code
    confirms it; ten recovery codes are shown once; the change is audited."""
    browser.login()
    page = client.get("/account/security?lang=en").get_data(as_text=True)
    assert 'href="/account/password"' in page and "Off." in page
    wrong = client.post("/account/security/totp", data={**_form(page, "enroll-form"), "password": "not my password"})
    assert wrong.status_code == 400 and "The password is not right." in wrong.get_data(as_text=True)
    assert TotpCredential.query.count() == 0

    key, page, done = _enroll_from_page(client, clock)
    assert re.fullmatch(r"[A-Z2-7]{32}", key)  # 160 bits (RFC 4226 §4 R6)
    assert "<svg" in page and "data:" not in page  # inline SVG: the page's CSP needs no data: images
    assert 'name="otp"' in page
    assert done.status_code == 200
    codes = re.findall(r"<li><code>([a-z2-9]{5}-[a-z2-9]{5})</code></li>", done.get_data(as_text=True))
    assert len(codes) == 10
    assert totp.has_totp(user)
    assert AuditEvent.query.filter_by(action="mfa.enrolled").count() == 1
    page = client.get("/account/security?lang=en").get_data(as_text=True)
    assert "On:" in page and key not in page and codes[0] not in page  # never shown again
    assert "Unused recovery codes: 10" in page


def test_provisioning_uri_names_the_issuer_and_account(app, user, in_request):
    totp.begin_enrollment(user, PASSWORD)
    e = totp.pending_enrollment(user)
    assert e.uri.startswith("otpauth://totp/") and f"secret={e.key}" in e.uri
    assert "issuer=%E6%9C%AC%E6%BA%AA" in e.uri  # 本溪… (configurable: IDP_TOTP_ISSUER)
    assert "alice" in e.uri and "13800138000" not in e.uri  # the username, not a phone number


def test_a_wrong_first_code_does_not_enable_totp(app, client, browser, user, clock):
    browser.login()
    page = client.get("/account/security").get_data(as_text=True)
    client.post("/account/security/totp", data={**_form(page, "enroll-form"), "password": PASSWORD})
    page = client.get("/account/security?lang=en").get_data(as_text=True)
    resp = client.post("/account/security/totp/confirm", data={**_form(page, "confirm-form"), "otp": "000000"})
    assert resp.status_code == 400 and "That code is not right" in resp.get_data(as_text=True)
    assert not totp.has_totp(user)


def test_disable_needs_the_password_and_a_code(app, client, browser, user, clock):
    """Turning the second factor off is re-authenticated: the current password and a current code
    (or a recovery code); either one wrong leaves TOTP on."""
    browser.login()
    key, _, _ = _enroll_from_page(client, clock)
    page = client.get("/account/security?lang=en").get_data(as_text=True)
    fields = _form(page, "disable-form")

    r = client.post("/account/security/totp/disable", data={**fields, "password": "wrong password!",
                                                            "otp": pyotp.TOTP(key).generate_otp(clock.step)})
    assert r.status_code == 400 and "The password is not right." in r.get_data(as_text=True)
    r = client.post("/account/security/totp/disable", data={**fields, "password": PASSWORD, "otp": "123456"})
    assert r.status_code == 400 and "That code is not right" in r.get_data(as_text=True)
    r = client.post("/account/security/totp/disable", data={**fields, "password": PASSWORD})
    assert r.status_code == 400
    assert totp.has_totp(user)

    r = client.post("/account/security/totp/disable", data={**fields, "password": PASSWORD,
                                                            "otp": pyotp.TOTP(key).generate_otp(clock.step)})
    assert r.status_code == 303 and r.location == "/account/security"
    assert not totp.has_totp(user) and TotpCredential.query.count() == 0
    assert "Two-step verification is off." in client.get("/account/security?lang=en").get_data(as_text=True)
    assert AuditEvent.query.filter_by(action="mfa.disabled").count() == 1
    assert AuditEvent.query.filter_by(action="mfa.reauth_failed").count() == 1


def test_disable_with_a_recovery_code(app, user, clock, in_request):
    _, codes = enroll(user, clock)
    totp.disable(user, PASSWORD, codes[0])
    assert not totp.has_totp(user)


def test_regenerate_recovery_codes_from_the_page(app, client, browser, user, clock):
    browser.login()
    key, _, done = _enroll_from_page(client, clock)
    old = re.findall(r"<li><code>([a-z2-9-]{11})</code></li>", done.get_data(as_text=True))
    page = client.get("/account/security").get_data(as_text=True)
    r = client.post("/account/security/recovery-codes",
                    data={**_form(page, "regenerate-form"), "otp": pyotp.TOTP(key).generate_otp(clock.step)})
    new = re.findall(r"<li><code>([a-z2-9-]{11})</code></li>", r.get_data(as_text=True))
    assert len(new) == 10 and not set(new) & set(old)


def test_pages_are_chinese_by_default(app, client, browser, user):
    browser.login()
    page = client.get("/account/security").get_data(as_text=True)
    assert "账号安全设置" in page and "两步验证" in page and "Security settings" not in page


def test_forms_need_their_csrf_token(app, client, browser, user):
    browser.login()
    r = client.post("/account/security/totp", data={"password": PASSWORD})
    assert r.status_code == 400 and TotpCredential.query.count() == 0
