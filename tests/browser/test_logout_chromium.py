"""Headless Chromium signs out of the real demo (hub + subsites, live processes; ``conftest.py``).

1. RP-initiated logout ends single sign-on everywhere: signed in on subsite 1 (password typed on
   the hub's login page) and on subsite 2 (no password), "退出 / Sign out" on subsite 2 goes to the
   hub's end_session_endpoint with id_token_hint and comes back to subsite 2 signed out; subsite 1
   is signed out too, by the hub's back-channel logout token alone: while the hub's page frames
   the front-channel logout, the browser holds no cookie of subsite 1 (the test sets it aside and
   puts it back afterwards), so that iframe cannot end subsite 1's session. Signing in on subsite 1
   then asks for the password again.
2. "Sign out everywhere" ("全部退出") on the hub's sessions page (/account/sessions): the session lists
   both subsites; after the button, both are signed out (front-channel iframes and back-channel
   tokens both delivered) and the hub asks for the password again.
3. A failing browser test leaves a screenshot, its page source and the demo's logs behind
   (``save_artifacts`` of ``conftest.py``, in ``$BROWSER_ARTIFACTS`` or tests/browser/artifacts/).

A back-channel logout reaches a subsite a moment after the hub answers, so "signed out" is
checked by reloading the subsite's page until it says so (at most ``LOGOUT_WITHIN`` seconds).
"""
from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.browser.helpers import (
    click_sign_in,
    documents,
    events,
    fill_login_form,
    on_page,
    reload_until_signed_out,
    signed_in_as,
    trail,
    wait,
    where,
)

pytestmark = [pytest.mark.live, pytest.mark.xdist_group("browser-chromium")]

LOGOUT_WITHIN = 15.0  # seconds for a logout to reach a subsite


# -- helpers --------------------------------------------------------------------------------------


def sign_in_on_both(driver, demo) -> dict:
    """Sign in on subsite 1 by typing the password at the hub, then on subsite 2 by single sign-on."""
    one, two = demo.sites["sso1"], demo.sites["sso2"]
    driver.get(one.url + "/")
    click_sign_in(driver, one)
    fill_login_form(driver, demo)
    claims = signed_in_as(driver, one, demo)
    assert claims["sub"] == demo.user["sub"], claims
    documents(driver)  # forget the first sign-in's hops

    driver.get(two.url + "/")
    click_sign_in(driver, two)
    assert signed_in_as(driver, two, demo)["sub"] == demo.user["sub"]
    hops = documents(driver)
    assert not [h for h in hops if where(h["url"]) == demo.issuer + "/login"], \
        "subsite 2 needed the hub's login page although the citizen had just signed in:\n  " + trail(hops)
    return claims


def front_channel_hops(hops, site) -> list[dict]:
    return [h for h in hops if where(h["url"]) == site.url + "/frontchannel-logout"]


def check_front_channel_url(hop, demo, sid: str | None = None) -> str:
    """Front-Channel Logout 1.0 §2: ``iss`` and ``sid`` in the query; returns the sid."""
    q = parse_qs(urlsplit(hop["url"]).query)
    assert q.get("iss") == [demo.issuer], hop["url"]
    assert len(q.get("sid", [])) == 1 and q["sid"][0], hop["url"]
    if sid is not None:
        assert q["sid"] == [sid], hop["url"]
    return q["sid"][0]


def wait_for_back_channel(site, sid: str, demo, since: int) -> float:
    """Wait until the subsite's log says it accepted a back-channel logout token for ``sid``
    (logged by ``clients.subsite`` after validating it); returns the seconds it took."""
    line = f"back-channel logout: sid {sid}"
    start = time.monotonic()
    while line not in site.full_log()[since:]:
        if time.monotonic() - start > LOGOUT_WITHIN:
            raise AssertionError(f"{site.name} did not accept a back-channel logout token for sid {sid} within "
                                 f"{LOGOUT_WITHIN:.0f} s (no {line!r} in its log):\n{demo.logs()}")
        time.sleep(0.1)
    return time.monotonic() - start


def log_sizes(demo) -> dict[str, int]:
    return {key: len(site.full_log()) for key, site in demo.sites.items()}


# -- 1. RP-initiated logout on subsite 2 ends subsite 1's session through the back channel ---------


def test_sign_out_on_one_subsite_signs_out_of_the_other_through_the_back_channel(demo, chrome):
    from selenium.webdriver.common.by import By

    driver, one, two = chrome, demo.sites["sso1"], demo.sites["sso2"]
    sign_in_on_both(driver, demo)
    since = log_sizes(demo)

    # Only the back channel may sign subsite 1 out: set its session cookie aside while the hub's
    # page frames the front-channel logout (cookies are per host, not per port: one name per subsite).
    cookie_one = driver.get_cookie(f"subsite_{one.port}")
    assert cookie_one, f"no session cookie of {one.name}: {[c['name'] for c in driver.get_cookies()]}"
    driver.delete_cookie(cookie_one["name"])

    # Subsite 2 (signed in, on its home page): "退出 / Sign out".
    link = driver.find_element(By.CSS_SELECTOR, "a.button[href='/logout']")
    assert link.text == "退出 / Sign out", link.text
    link.click()
    notice = wait(driver, on_page(two.url + "/", "#signed-out"), f"{two.name} back home, signed out", demo)
    assert "Signed out" in notice.text, notice.text
    main = driver.find_element(By.TAG_NAME, "main").text
    assert "You are not signed in" in main and "Signed in as" not in main, main
    assert not driver.find_elements(By.CSS_SELECTOR, "#display-name")

    logged = events(driver)
    hops = documents(driver, logged)
    top = [h for h in hops if not where(h["url"]).endswith("/frontchannel-logout")]
    # Subsite 2's /logout -> the hub's end_session_endpoint (with the hint: no confirmation page,
    # its "signed out" page) -> back to subsite 2 with the state it sent.
    assert [where(h["url"]) for h in top] == [two.url + "/logout", demo.issuer + "/logout", two.url + "/"], \
        trail(hops)
    assert top[0]["status"] in (302, 303), trail(hops)
    end_session = parse_qs(urlsplit(top[1]["url"]).query)
    assert end_session.get("id_token_hint") and end_session.get("state"), top[1]["url"]
    assert end_session.get("client_id") == [two.client["client_id"]], top[1]["url"]
    assert end_session.get("post_logout_redirect_uri") == [two.url + "/"], top[1]["url"]
    assert top[1]["status"] == 200 and top[1]["rendered"], trail(hops)  # the page with the iframes
    assert parse_qs(urlsplit(top[2]["url"]).query).get("state") == end_session["state"], trail(hops)

    # The hub's page framed both subsites' front-channel logout, with the session's sid.
    fc_one, fc_two = front_channel_hops(hops, one), front_channel_hops(hops, two)
    assert len(fc_one) == 1 and len(fc_two) == 1, trail(hops)
    sid = check_front_channel_url(fc_two[0], demo)
    check_front_channel_url(fc_one[0], demo, sid)

    # Subsite 1, its cookie back: signed out by the back channel (reload until it says so). The
    # page that first says so tells why: the hub ended the session ("已退出 / Signed out").
    driver.add_cookie({k: v for k, v in cookie_one.items()
                       if k in ("name", "value", "path", "domain", "secure", "httpOnly", "expiry", "sameSite")})
    took = reload_until_signed_out(driver, one, demo, timeout=LOGOUT_WITHIN)
    assert driver.find_elements(By.CSS_SELECTOR, "#signed-out"), \
        f"{one.name} is signed out but does not say the hub ended its session:\n{driver.page_source[:1500]}"
    wait_for_back_channel(one, sid, demo, since["sso1"])
    wait_for_back_channel(two, sid, demo, since["sso2"])
    print(f"subsite 1 signed out {took:.2f} s after subsite 2 came back signed out")

    # The hub's session is gone too: signing in on subsite 1 shows the login page again.
    click_sign_in(driver, one)
    wait(driver, on_page(demo.issuer + "/login", "form input[name='password']"),
         "the hub's login page (the hub session should be gone)", demo)


# -- 2. "Sign out everywhere" on the hub's sessions page ------------------------------------------


def test_sign_out_everywhere_from_the_hub_sessions_page(demo, chrome):
    from selenium.webdriver.common.by import By

    driver, one, two = chrome, demo.sites["sso1"], demo.sites["sso2"]
    sign_in_on_both(driver, demo)
    since = log_sizes(demo)

    driver.get(demo.issuer + "/account/sessions")
    everywhere = wait(driver, on_page(demo.issuer + "/account/sessions", "button[name='sid'][value='all']"),
                      "the hub's sessions page", demo)
    assert everywhere.text == "全部退出", everywhere.text  # the hub speaks Chinese unless asked otherwise
    main = driver.find_element(By.TAG_NAME, "main")
    assert demo.user["name"] in main.text, main.text
    rows = [r for r in main.find_elements(By.CSS_SELECTOR, "tr") if "（本机）" in r.text]
    assert len(rows) == 1, f"not one row for this device's session:\n{main.text}"
    cells = rows[0].find_elements(By.TAG_NAME, "td")
    sites = cells[4].text
    assert one.name in sites and two.name in sites, f"this session's sites are {sites!r}:\n{main.text}"
    assert demo.sites["consent"].name not in sites, sites
    sid = rows[0].find_element(By.CSS_SELECTOR, "button[name='sid']").get_attribute("value")
    assert sid and sid != "all", sid

    everywhere.click()
    heading = wait(driver, on_page(demo.issuer + "/account/sessions/end", "main h1"),
                   "the hub's signed-out page", demo)
    assert heading.text == "您已退出登录", heading.text  # "You are signed out"
    hops = documents(driver)
    for site in (one, two):
        framed = front_channel_hops(hops, site)
        assert len(framed) == 1, f"{site.name}: front-channel logout framed {len(framed)} times:\n  " + trail(hops)
        check_front_channel_url(framed[0], demo, sid)

    for site in (one, two):
        reload_until_signed_out(driver, site, demo, timeout=LOGOUT_WITHIN)
    for site in (one, two):
        wait_for_back_channel(site, sid, demo, since[site.key])

    # The hub's own session ended with the others: its sessions page wants the password again.
    driver.get(demo.issuer + "/account/sessions")
    wait(driver, on_page(demo.issuer + "/login", "form input[name='password']"),
         "the hub's login page (the hub session should be gone)", demo)


# -- 3. what a failing browser test leaves behind --------------------------------------------------


def test_failure_artifacts_go_to_browser_artifacts(chrome, tmp_path, monkeypatch):
    """``save_artifacts`` (called by the report hook of conftest.py when a browser test fails) writes a
    real PNG screenshot, the page source and the logs into ``$BROWSER_ARTIFACTS`` (made on demand)."""
    from tests.browser.conftest import artifacts_dir, save_artifacts

    folder = tmp_path / "made" / "on-demand"
    monkeypatch.setenv("BROWSER_ARTIFACTS", str(folder))
    assert artifacts_dir() == folder.resolve() and folder.is_dir()
    chrome.get("data:text/html;charset=utf-8,<title>t</title><h1 id=marker>截图 / screenshot</h1>")
    lines = save_artifacts(chrome, "tests/browser/x.py::test_y[a/b]@group", logs="the demo's logs")
    saved = dict(line.split(": ", 1) for line in lines)
    assert set(saved) == {"url", "screenshot", "page source", "hub and subsite logs"}, lines
    png, html, log = (Path(saved[k]) for k in ("screenshot", "page source", "hub and subsite logs"))
    assert {png.parent, html.parent, log.parent} == {folder.resolve()}, lines
    assert png.name.startswith("tests_browser_x.py_test_y_a_b_group-") and png.suffix == ".png", png.name
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000, png
    assert 'id="marker"' in html.read_text(encoding="utf-8") and "截图" in html.read_text(encoding="utf-8")
    assert log.read_text(encoding="utf-8") == "the demo's logs"
