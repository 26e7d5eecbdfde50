"""Headless Chromium against the live demo (fixtures in ``conftest.py``): a citizen sets up TOTP on the
hub's security page, reading the manual key off the page (RFC 6238 with pyotp as the "phone"), then
signs in on a subsite with the password and the second step (``otp``).

The citizen's real name is first verified at the counter (``idp users verify``), so the sign-in with
both factors reaches assurance level 2 (DESIGN.md "Assurance"), which ``idp sessions list`` shows.
"""
from __future__ import annotations

import time

import pyotp
import pytest

from tests.browser.helpers import click_sign_in, documents, fill_login_form, on_page, signed_in_as, trail, wait, where

pytestmark = [pytest.mark.live, pytest.mark.xdist_group("browser-chromium")]


def _submit(form) -> None:
    from selenium.webdriver.common.by import By

    form.find_element(By.CSS_SELECTOR, "button[type='submit']").click()


def test_enroll_totp_on_the_page_then_sign_in_with_the_second_step(demo, chrome):
    from selenium.webdriver.common.by import By

    driver, site, hub = chrome, demo.sites["sso1"], demo.issuer
    username, password = demo.user["username"], demo.user["password"]
    verified = demo.hub.cli("users", "verify", "--username", username, "--method", "counter")
    assert verified["identity_level"] == 2 and verified["assurance_level"] == 1, verified

    # 1. Sign in at the hub and open the security page (English, so the assertions read plainly).
    driver.get(hub + "/login?lang=en&next=/account/security")
    fill_login_form(driver, demo)
    enroll = wait(driver, on_page(hub + "/account/security", "form#enroll-form"), "the security page", demo)
    assert driver.find_elements(By.CSS_SELECTOR, "a[href='/account/password']")
    driver.find_element(By.ID, "enroll-password").send_keys(password)
    _submit(enroll)

    # 2. The QR code (inline SVG) and the manual key; the "phone" computes the code from the key.
    key_text = wait(driver, on_page(hub + "/account/security", "#totp-key"), "the TOTP key", demo).text
    key = key_text.replace(" ", "")
    assert len(key) == 32, key_text
    assert driver.find_elements(By.CSS_SELECTOR, "#totp-qr svg path"), "no QR code on the page"
    label = driver.find_element(By.CSS_SELECTOR, "label[for='confirm-otp']")
    assert label.text
    driver.find_element(By.ID, "confirm-otp").send_keys(pyotp.TOTP(key).now())
    _submit(driver.find_element(By.ID, "confirm-form"))
    codes = wait(driver, on_page(hub + "/account/security/totp/confirm", "#recovery-codes"), "the recovery codes", demo)
    assert len(codes.find_elements(By.TAG_NAME, "li")) == 10
    driver.get(hub + "/account/security")
    status = wait(driver, on_page(hub + "/account/security", "#totp-status"), "the security page again", demo)
    assert status.text.startswith("On"), status.text
    assert not driver.find_elements(By.ID, "totp-key")  # the key is never shown again

    # 3. Sign out of the hub (the confirmation page, as a person would).
    driver.get(hub + "/logout")
    wait(driver, on_page(hub + "/logout", "button[name='decision'][value='logout']"), "the logout page", demo).click()
    wait(driver, lambda d: "/logout" in d.current_url
         and not d.find_elements(By.CSS_SELECTOR, "button[name='decision']"), "the signed-out page", demo)

    # 4. Sign in on the subsite: the password, then the code of the next time step (the one now was
    #    spent confirming the app, and a used code is refused).
    documents(driver)  # drain the log
    driver.get(site.url + "/")
    click_sign_in(driver, site)
    fill_login_form(driver, demo)
    otp = wait(driver, on_page(hub + "/login/otp", "form input[name='otp']"), "the second step", demo)
    otp.send_keys(pyotp.TOTP(key).generate_otp(int(time.time()) // 30 + 1))
    _submit(driver.find_element(By.CSS_SELECTOR, "form[action='/login/otp']"))
    claims = signed_in_as(driver, site, demo)
    assert claims["sub"] == demo.user["sub"]
    hops = documents(driver)
    assert [where(h["url"]) for h in hops if h["rendered"] and h["url"].startswith(hub)] == \
        [hub + "/login", hub + "/login/otp"], trail(hops)

    sessions = demo.hub.cli("sessions", "list", "--username", username)
    assert [s["acr"] for s in sessions] == ["urn:idp:loa:2"], sessions
