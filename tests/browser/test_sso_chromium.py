"""Headless Chromium drives the real demo: the hub (``idp serve``) and department subsites
(``python -m clients.subsite``), all live processes on 127.0.0.1 (fixtures in ``conftest.py``).

1. Single sign-on ("一网通办"): sign in once on subsite 1 through the hub's login page, then
   subsite 2's sign-in link signs the citizen in without any hub page being shown.
2. Consent for a client that is not first-party: deny comes back to the subsite as
   ``access_denied`` (HTTP 400 there); allow signs in.
3. The hub's login page refuses to be framed (clickjacking): X-Frame-Options / frame-ancestors.

What the browser loaded is read from the DevTools performance log (``Network.*`` events of
document requests), so "the login page never appeared" is checked on every hop, redirects included.
"""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.browser.helpers import (
    click_sign_in,
    documents,
    fill_login_form,
    on_page,
    signed_in_as,
    trail,
    wait,
    where,
)

pytestmark = [pytest.mark.live, pytest.mark.xdist_group("browser-chromium")]


# -- 1. single sign-on ----------------------------------------------------------------------------


def test_sign_in_once_then_the_second_subsite_signs_in_without_the_login_page(demo, chrome):
    driver, one, two = chrome, demo.sites["sso1"], demo.sites["sso2"]

    # Subsite 1: the sign-in link leads to the hub's login page; the citizen types the password.
    driver.get(one.url + "/")
    click_sign_in(driver, one)
    fill_login_form(driver, demo)
    claims_one = signed_in_as(driver, one, demo)
    assert claims_one["sub"] == demo.user["sub"]
    first = documents(driver)
    login_pages = [h for h in first if where(h["url"]) == demo.issuer + "/login" and h["rendered"]]
    assert login_pages, "the log does not show the hub's login page for the first sign-in:\n  " + trail(first)

    # Subsite 2: signed out there, one click on its sign-in link, and it is signed in.
    driver.get(two.url + "/")
    click_sign_in(driver, two)
    claims_two = signed_in_as(driver, two, demo)
    assert claims_two["sub"] == claims_one["sub"] == demo.user["sub"]

    hops = documents(driver)
    hub_hops = [h for h in hops if h["url"].startswith(demo.issuer + "/")]
    assert not [h for h in hub_hops if where(h["url"]) == demo.issuer + "/login"], \
        "the hub's login page was requested during single sign-on:\n  " + trail(hops)
    assert not [h for h in hub_hops if h["rendered"]], \
        "the hub rendered a page (it should only redirect) during single sign-on:\n  " + trail(hops)
    assert [where(h["url"]) for h in hub_hops] == [demo.issuer + "/authorize"], trail(hops)
    assert hub_hops[0]["status"] in (302, 303), trail(hops)
    # The whole trip: subsite 2's page, its /login, the hub, its /callback, back home signed in.
    assert [where(h["url"]) for h in hops] == [
        two.url + "/", two.url + "/login", demo.issuer + "/authorize", two.url + "/callback", two.url + "/",
    ], trail(hops)
    callback = next(h for h in hops if where(h["url"]) == two.url + "/callback")
    q = parse_qs(urlsplit(callback["url"]).query)
    assert q.get("iss") == [demo.issuer] and q.get("code") and q.get("state"), callback["url"]


# -- 2. consent for a client that is not first-party -----------------------------------------------


def consent_buttons(driver, demo, site):
    from selenium.webdriver.common.by import By

    wait(driver, on_page(demo.issuer + "/authorize", "form button[name='decision']"), "the consent page", demo)
    body = driver.find_element(By.TAG_NAME, "main").text
    assert site.name in body, body
    assert demo.user["name"] in body, body  # "Signed in as 张三"
    assert not driver.find_elements(By.CSS_SELECTOR, "input[name='password']")
    buttons = {b.get_attribute("value"): b for b in driver.find_elements(By.CSS_SELECTOR, "button[name='decision']")}
    assert set(buttons) == {"allow", "deny"}, list(buttons)
    return buttons


def test_consent_page_deny_then_allow(demo, chrome):
    from selenium.webdriver.common.by import By

    driver, site = chrome, demo.sites["consent"]

    driver.get(site.url + "/")
    click_sign_in(driver, site)
    fill_login_form(driver, demo)
    consent_buttons(driver, demo, site)["deny"].click()

    code = wait(driver, on_page(site.url + "/callback", "#error-code"), "the subsite's error page", demo)
    assert code.text == "access_denied"
    q = parse_qs(urlsplit(driver.current_url).query)
    assert q.get("error") == ["access_denied"] and q.get("iss") == [demo.issuer] and q.get("state"), \
        driver.current_url
    assert "code" not in q
    hops = documents(driver)
    callback = [h for h in hops if where(h["url"]) == site.url + "/callback"]
    assert callback and callback[-1]["rendered"] and callback[-1]["status"] == 400, trail(hops)
    assert not driver.find_elements(By.CSS_SELECTOR, "#display-name")

    # Try again: still signed in at the hub, so straight to the consent page; allow signs in.
    driver.get(site.url + "/")
    click_sign_in(driver, site)
    consent_buttons(driver, demo, site)["allow"].click()
    claims = signed_in_as(driver, site, demo)
    assert claims["sub"] == demo.user["sub"]
    hops = documents(driver)
    assert not [h for h in hops if where(h["url"]) == demo.issuer + "/login"], \
        "the login page came back although the citizen is signed in at the hub:\n  " + trail(hops)


# -- 3. the login page cannot be framed -----------------------------------------------------------


class _Pages(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, pages: dict[str, str]):
        self.pages = pages
        super().__init__(("127.0.0.1", 0), _PageHandler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.thread.join(5)
        self.server_close()


class _PageHandler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        page = self.server.pages.get(self.path.split("?", 1)[0])
        body = (page or "not found").encode()
        self.send_response(200 if page is not None else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def frame_shows_login_form(driver, frame_id: str) -> tuple[bool, str]:
    """Enter the iframe (cross-origin is fine for WebDriver): does it show a username input?"""
    from selenium.webdriver.common.by import By

    driver.switch_to.frame(driver.find_element(By.ID, frame_id))
    try:
        shown = bool(driver.find_elements(By.CSS_SELECTOR, "input[name='username']"))
        return shown, driver.execute_script("return document.URL")
    finally:
        driver.switch_to.default_content()


def test_login_page_cannot_be_framed(demo, chrome):
    driver = chrome
    login_url = demo.issuer + "/login?next=%2F"
    # The control: a frameable page with the same kind of form, from another origin, shows up.
    with _Pages({"/form": "<!doctype html><form><input name='username'></form>"}) as other, \
         _Pages({"/": f"<!doctype html><title>not the hub</title>"
                      f"<iframe id='hub' src='{login_url}' width=600 height=400></iframe>"
                      f"<iframe id='control' src='{{other}}/form' width=300 height=100></iframe>"}) as evil:
        evil.pages["/"] = evil.pages["/"].replace("{other}", other.url)
        driver.get(evil.url + "/")
        wait(driver, lambda d: d.execute_script("return document.readyState") == "complete", "the framing page")

        shown, url = frame_shows_login_form(driver, "control")
        assert shown, f"the control frame did not render ({url}): the check below would prove nothing"

        shown, url = frame_shows_login_form(driver, "hub")
        assert not shown, f"the hub's login page rendered inside a frame of {evil.url} ({url})"
        assert not url.startswith(demo.issuer), url

    # The hub did answer (so the frame was refused because of its headers, not a network error) ...
    hops = documents(driver)
    answered = [h for h in hops if where(h["url"]) == demo.issuer + "/login" and h["status"] == 200]
    assert answered, "no 200 answer from the hub's login page in the log:\n  " + trail(hops)
    headers = answered[-1]["headers"]
    assert headers.get("x-frame-options", "").upper() == "DENY", headers
    assert "frame-ancestors 'none'" in headers.get("content-security-policy", ""), headers
    # ... and Chromium says it refused to frame it.
    console = [e["message"] for e in driver.get_log("browser")]
    refused = [m for m in console if demo.issuer in m and ("frame-ancestors" in m or "X-Frame-Options" in m)]
    assert refused, "no console message about the refused frame:\n" + "\n".join(console)

