"""What the browser tests share: waiting for pages, reading the DevTools performance log, and the
steps of signing in on a demo subsite. Imported by the ``test_*_chromium.py`` modules."""
from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

WAIT = 15  # seconds for any one page to appear


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


def events(driver) -> list[dict]:
    """The DevTools events logged since the last call (``{"method", "params"}`` each); drains the log."""
    return [json.loads(entry["message"])["message"] for entry in driver.get_log("performance")]


def documents(driver, logged: list[dict] | None = None) -> list[dict]:
    """Document loads since the last call, from the performance log: one entry per hop.

    Each is {"url", "status"}: a hop that was redirected has the redirect's status (3xx); the
    final hop has the status of the page that was rendered (``rendered`` True). Documents of
    frames are listed too (``frame`` is their frame id). ``logged``: events already drained with
    ``events(driver)``, instead of draining the log here."""
    hops: list[dict] = []
    by_id: dict[str, dict] = {}
    for msg in events(driver) if logged is None else logged:
        method, params = msg.get("method"), msg.get("params", {})
        if method == "Network.requestWillBeSent" and params.get("type") == "Document":
            previous = by_id.get(params["requestId"])
            if previous is not None and "redirectResponse" in params:
                previous["status"] = params["redirectResponse"]["status"]
            hop = {"url": params["request"]["url"], "status": None, "rendered": False, "headers": {},
                   "frame": params.get("frameId"), "failed": None}
            by_id[params["requestId"]] = hop
            hops.append(hop)
        elif method == "Network.responseReceived" and params.get("type") == "Document":
            hop = by_id.get(params["requestId"])
            if hop is not None:
                hop["status"] = params["response"]["status"]
                hop["rendered"] = True
                hop["headers"] = {k.lower(): v for k, v in params["response"].get("headers", {}).items()}
        elif method == "Network.loadingFailed" and params.get("type") == "Document":
            hop = by_id.get(params["requestId"])
            if hop is not None:
                hop["failed"] = params.get("blockedReason") or params.get("errorText") or "failed"
    return hops


def where(url: str) -> str:
    p = urlsplit(url)
    return f"{p.scheme}://{p.netloc}{p.path}"


def trail(hops) -> str:
    return "\n  ".join(f"{h['status']} {h['url']}{' (rendered)' if h['rendered'] else ''}"
                       f"{' (failed: ' + h['failed'] + ')' if h.get('failed') else ''}" for h in hops)


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


def reload_until_signed_out(driver, site, demo, timeout: float = 15.0) -> float:
    """Reload the subsite's home page until it no longer says "Signed in as" (a logout that reaches
    the subsite from the hub's back channel takes a moment); returns the seconds it took.

    Fails after ``timeout`` seconds. At the end the page shows the signed-out home page."""
    from selenium.webdriver.common.by import By

    start = time.monotonic()
    while True:
        driver.get(site.url + "/")
        text = wait(driver, on_page(site.url + "/", "main"), f"the home page of {site.name}", demo).text
        if "Signed in as" not in text:
            break
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{site.name} ({site.url}) still says 'Signed in as' {timeout:.0f} s after the "
                                 f"logout:\n{text}\n{demo.logs()}")
        time.sleep(0.25)
    assert "You are not signed in" in text, text
    assert driver.find_elements(By.CSS_SELECTOR, "a.button[href='/login']"), driver.page_source[:1500]
    assert not driver.find_elements(By.CSS_SELECTOR, "#display-name")
    return time.monotonic() - start
