"""Headless Chromium registers a citizen on the live demo hub (``idp serve``), reading the one-time
code from the development outbox as a developer would (issue 4: "browser test of registration").

Then the new account is a real single sign-on account: a department subsite signs the person in
without showing the hub's login page again, and the ID token carries the name typed at registration.
The form is filled and sent with the keyboard only (Tab between inputs, Enter to submit).
"""
from __future__ import annotations

import json
import re
import secrets
import time

import pytest

from tests.browser.helpers import click_sign_in, on_page, wait

pytestmark = [pytest.mark.live, pytest.mark.xdist_group("browser-chromium")]


def _code_from_outbox(demo, phone: str, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in sorted(demo.hub.outbox_dir.glob("*.json")):
            message = json.loads(path.read_text(encoding="utf-8"))
            if message["to"] == phone and (m := re.search(r"\b(\d{6})\b", message["body"])):
                return m.group(1)
        time.sleep(0.1)
    raise AssertionError(f"no code for {phone} in {demo.hub.outbox_dir} after {timeout:.0f} s\n{demo.logs()}")


def test_register_with_a_phone_code_then_single_sign_on(demo, chrome):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver, hub = chrome, demo.issuer
    phone = "139" + f"{secrets.randbelow(10 ** 8):08d}"

    # Step 1: the phone number (Chinese page by default).
    driver.get(hub + "/register")
    field = wait(driver, on_page(hub + "/register", "input[name='destination']"), "the registration page", demo)
    assert driver.find_element(By.CSS_SELECTOR, "label[for='destination']").text == "手机号码或电子邮箱"
    field.send_keys(phone, Keys.ENTER)

    # Step 2: the code from the outbox, then the account details, moving with Tab.
    code_input = wait(driver, on_page(hub + "/register/verify", "input[name='code']"), "step 2", demo)
    notice = driver.find_element(By.ID, "code-sent").text
    assert f"{phone[:3]}****{phone[-4:]}" in notice and "验证码" in notice
    assert driver.switch_to.active_element == code_input  # focus is where the person types next
    code = _code_from_outbox(demo, phone)
    values = [code, "liuyang" + secrets.token_hex(2), "plum blossom river 9", "plum blossom river 9", "刘洋",
              "21050219850118123X"]
    names = ["code", "username", "password", "password_confirm", "name", "id_number"]
    active = code_input
    for i, (name, value) in enumerate(zip(names, values)):
        assert active.get_attribute("name") == name, f"Tab led to {active.get_attribute('name')!r}, not {name!r}"
        active.send_keys(value)
        if i < len(names) - 1:
            active.send_keys(Keys.TAB)
            active = driver.switch_to.active_element
    active.send_keys(Keys.ENTER)

    # Signed in, on the account page, with identifiers masked.
    wait(driver, on_page(hub + "/account", "#id-number"), "the account page after registration", demo)
    assert driver.find_element(By.ID, "id-number").text == "2105**********123X"
    assert driver.find_element(By.ID, "name").text == "刘洋"
    assert driver.find_element(By.ID, "phone").text.startswith(f"{phone[:3]}****{phone[-4:]}")

    # The new account signs in on a department subsite without the hub's login page.
    site = demo.sites["sso1"]
    driver.get(site.url + "/")
    click_sign_in(driver, site)
    name = wait(driver, on_page(site.url + "/", "#display-name"), f"{site.name} signed in", demo)
    assert name.text == "刘洋"
