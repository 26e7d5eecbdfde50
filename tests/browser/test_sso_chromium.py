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

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

pytestmark = [pytest.mark.live, pytest.mark.xdist_group("browser-chromium")]

WAIT = 15  # seconds for any one page to appear


# -- helpers --------------------------------------------------------------------------------------


def wait(driver, condition, what: str, demo=None):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, WAIT, poll_frequency=0.1).until(condition)
    except TimeoutException:
        page = driver.page_source[:1500]
        logs = "\n" + demo.logs() if demo is not None else ""
        raise AssertionError(f"timed out waiting for {what}; now at {driver.current_url}\n{page}{logs}") from None


def on_page(url: str, css: str):
    """Condition: the browser is at ``url`` (query ignored) and shows an element matching ``css``."""
    from selenium.webdriver.common.by import By

    def check(driver):
        current = driver.current_url.split("?", 1)[0]
        if current != url:
            return False
        found = driver.find_elements(By.CSS_SELECTOR, css)
        return found[0] if found else False

    return check


def documents(driver) -> list[dict]:
    """Document loads since the last call, from the performance log: one entry per hop.

    Each is {"url", "status"}: a hop that was redirected has the redirect's status (3xx); the
    final hop has the status of the page that was rendered (``rendered`` True)."""
    hops: list[dict] = []
    by_id: dict[str, dict] = {}
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        method, params = msg.get("method"), msg.get("params", {})
        if method == "Network.requestWillBeSent" and params.get("type") == "Document":
            previous = by_id.get(params["requestId"])
            if previous is not None and "redirectResponse" in params:
                previous["status"] = params["redirectResponse"]["status"]
            hop = {"url": params["request"]["url"], "status": None, "rendered": False, "headers": {}}
            by_id[params["requestId"]] = hop
            hops.append(hop)
        elif method == "Network.responseReceived" and params.get("type") == "Document":
            hop = by_id.get(params["requestId"])
            if hop is not None:
                hop["status"] = params["response"]["status"]
                hop["rendered"] = True
                hop["headers"] = {k.lower(): v for k, v in params["response"].get("headers", {}).items()}
    return hops


def where(url: str) -> str:
    p = urlsplit(url)
    return f"{p.scheme}://{p.netloc}{p.path}"


def trail(hops) -> str:
    return "\n  ".join(f"{h['status']} {h['url']}{' (rendered)' if h['rendered'] else ''}" for h in hops)


def click_sign_in(driver, site):
    """On the subsite's home page, signed out: click its sign-in link."""
    from selenium.webdriver.common.by import By

    link = wait(driver, on_page(site.url + "/", "a.button[href='/login']"), f"the sign-in link of {site.name}")
    assert "You are not signed in" in driver.find_element(By.TAG_NAME, "body").text
    link.click()


def fill_login_form(driver, demo):
    from selenium.webdriver.common.by import By

    username = wait(driver, on_page(demo.issuer + "/login", "form input[name='username']"),
                    "the hub's login page", demo)
    username.clear()
    username.send_keys(demo.user["username"])
    driver.find_element(By.CSS_SELECTOR, "form input[name='password']").send_keys(demo.user["password"])
    driver.find_element(By.CSS_SELECTOR, "form button[type='submit']").click()


def signed_in_as(driver, site, demo) -> dict:
    """Wait for the subsite's home page, signed in; returns its claims table."""
    from selenium.webdriver.common.by import By

    name = wait(driver, on_page(site.url + "/", "#display-name"), f"{site.name} signed in", demo)
    assert "Signed in as" in driver.find_element(By.TAG_NAME, "main").text
    assert name.text == demo.user["name"]
    claims = {}
    for row in driver.find_elements(By.CSS_SELECTOR, "#claims tbody tr"):
        claims[row.find_element(By.TAG_NAME, "th").text] = row.find_element(By.TAG_NAME, "td").text
    return claims


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

