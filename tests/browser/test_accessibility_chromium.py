"""Headless Chromium checks the hub's pages for elderly citizens (WCAG 2.2), on a live ``idp serve``.

1. Keyboard (2.1.1, 2.4.1, 2.4.7): Tab reaches the skip link, then the language switch, each with a
   visible focus ring; Enter on the switch changes the page's language and ``<html lang>`` (3.1.1);
   the sign-out confirmation is completed with the keyboard alone.
2. Reflow and text size (1.4.10, 1.4.4): at 320 CSS px (a 1280 px window at 400 % zoom), and at
   640 px with the browser's text size doubled, no page scrolls sideways, and text follows the
   browser's text size (rem units).
3. Contrast (1.4.6, enhanced: 7:1) of every visible text against the background it is drawn on,
   and every visible form control has a label (1.3.1, 3.3.2).
"""
from __future__ import annotations

import secrets
import shutil

import pytest

from tests.browser.helpers import on_page, wait
from tests.e2e.hub import LiveHub, start_hub

pytestmark = [pytest.mark.live, pytest.mark.xdist_group("browser-chromium")]

MIN_CONTRAST = 7.0

# Every visible text node's element: its colour against the first opaque background behind it.
CONTRAST_JS = r"""
function rgba(s) { const m = s.match(/rgba?\(([^)]+)\)/); if (!m) return null;
  const p = m[1].split(',').map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; }
function lum(c) { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]); }
function background(el) { for (let e = el; e; e = e.parentElement) {
  const c = rgba(getComputedStyle(e).backgroundColor); if (c && c[3] >= 1) return c; } return [255, 255, 255, 1]; }
const out = [];
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
for (let n = walker.nextNode(); n; n = walker.nextNode()) {
  const el = n.parentElement, text = n.textContent.trim();
  if (!text || !el || ['SCRIPT', 'STYLE', 'OPTION'].includes(el.tagName)) continue;
  const r = el.getBoundingClientRect();
  if (r.width <= 1 || r.height <= 1 || r.right < 0 || r.bottom < 0) continue;  // hidden or off-screen
  const s = getComputedStyle(el);
  if (s.visibility === 'hidden' || s.display === 'none' || s.opacity === '0') continue;
  const fg = rgba(s.color), bg = background(el);
  const a = lum(fg), b = lum(bg), ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  out.push({text: text.slice(0, 40), tag: el.tagName, ratio: Math.round(ratio * 100) / 100,
            color: s.color, background: 'rgb(' + bg.slice(0, 3).join(', ') + ')'});
}
return out;
"""

UNLABELLED_JS = r"""
return [...document.querySelectorAll('input, select, textarea, button')].filter(e => {
  // not rendered (type=hidden, the hidden attribute: a password manager's username hint): not in the
  // accessibility tree, so nobody perceives it and it needs no label
  if (e.type === 'hidden' || e.getClientRects().length === 0) return false;
  const named = (e.labels && e.labels.length) || e.getAttribute('aria-label') || e.getAttribute('aria-labelledby')
             || (e.tagName === 'BUTTON' && e.textContent.trim());
  return !named;
}).map(e => e.outerHTML.slice(0, 120));
"""

OVERFLOW_JS = "return document.documentElement.scrollWidth - document.documentElement.clientWidth;"


@pytest.fixture(scope="module")
def hub(tmp_path_factory, chromium_paths):
    workdir = tmp_path_factory.mktemp("a11y-hub")
    user_cmd, user = LiveHub.user_args(username="wang-" + secrets.token_hex(3), name="王秀英")
    live = None
    try:
        live, (created,) = start_hub(workdir, provision=[user_cmd])
        live.user = {**user, **created}
        yield live
    finally:
        if live is not None:
            live.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def sign_in(driver, hub) -> None:
    from selenium.webdriver.common.by import By

    driver.get(hub.issuer + "/login")
    username = wait(driver, on_page(hub.issuer + "/login", "input[name='username']"), "the login page")
    username.send_keys(hub.user["username"])
    driver.find_element(By.CSS_SELECTOR, "input[name='password']").send_keys(hub.user["password"])
    driver.find_element(By.CSS_SELECTOR, "form button[type='submit']").click()
    wait(driver, on_page(hub.issuer + "/", "a[href='/account/sessions']"), "the home page, signed in")


# The citizen's pages at their fixed URLs (those not built yet show the 404 page, which is checked too).
CITIZEN_PAGES = ["/register", "/reset", "/account", "/account/security", "/account/businesses",
                 "/account/consents", "/account/sessions", "/account/password", "/account/data", "/account/close",
                 "/account/activity"]


def pages(hub) -> list[str]:
    """The hub's pages a citizen sees, in both languages (English runs longer), signed in."""
    paths = ["/", *CITIZEN_PAGES, "/logout", "/no-such-page", "/authorize?client_id=nope", "/login"]
    return [hub.issuer + p + ("&" if "?" in p else "?") + f"lang={lang}" for lang in ("zh", "en") for p in paths]


def tab_to(driver, css: str, limit: int = 15):
    """Press Tab until the focused element matches ``css``; returns it (fails after ``limit`` presses)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    for _ in range(limit):
        ActionChains(driver).send_keys(Keys.TAB).perform()
        active = driver.switch_to.active_element
        if driver.execute_script("return arguments[0].matches(arguments[1])", active, css):
            return active
    raise AssertionError(f"{limit} presses of Tab never reached {css} on {driver.current_url}")


def focus_ring(driver) -> tuple[str, float]:
    style, width = driver.execute_script(
        "const s = getComputedStyle(document.activeElement); return [s.outlineStyle, parseFloat(s.outlineWidth)];")
    return style, width


def test_keyboard_reaches_the_language_switch_and_completes_sign_out(hub, chrome):
    from selenium.webdriver.common.keys import Keys

    driver = chrome
    sign_in(driver, hub)
    driver.get(hub.issuer + "/?lang=zh")
    skip = tab_to(driver, "a.skip", limit=1)
    assert skip.text == "跳到正文" and skip.is_displayed()
    english = tab_to(driver, "nav.lang a", limit=1)  # the switch comes right after the skip link
    assert english.text == "English" and english.get_attribute("hreflang") == "en"
    style, width = focus_ring(driver)
    assert style != "none" and width >= 2, (style, width)
    english.send_keys(Keys.ENTER)
    wait(driver, lambda d: d.find_element("css selector", "html").get_attribute("lang") == "en", "the English page")
    assert "Signed in as 王秀英." in driver.find_element("css selector", "main").text

    # Sign out with the keyboard: the confirmation's button, then Enter.
    driver.get(hub.issuer + "/logout")
    button = tab_to(driver, "button[name='decision'][value='logout']")
    assert button.text == "Sign out"  # the language chosen above is remembered (cookie)
    style, width = focus_ring(driver)
    assert style != "none" and width >= 2, (style, width)
    button.send_keys(Keys.ENTER)
    heading = wait(driver, on_page(hub.issuer + "/logout", "main h1"), "the signed-out page")
    assert heading.text == "You are signed out"

    # Back to Chinese from the switch, by keyboard too.
    driver.get(hub.issuer + "/")
    tab_to(driver, "nav.lang a", limit=2).send_keys(Keys.ENTER)
    wait(driver, lambda d: d.find_element("css selector", "html").get_attribute("lang") == "zh-CN", "the Chinese page")
    assert "您尚未登录。" in driver.find_element("css selector", "main").text


def test_pages_reflow_and_follow_the_text_size(hub, chrome):
    driver = chrome
    sign_in(driver, hub)
    driver.get(hub.issuer + "/")
    base = driver.execute_script("return parseFloat(getComputedStyle(document.body).fontSize);")
    driver.execute_script("document.documentElement.style.fontSize = '200%';")  # the browser's text size, doubled
    assert driver.execute_script("return parseFloat(getComputedStyle(document.body).fontSize);") == 2 * base

    problems = []
    for width, text_size in ((320, None), (640, "200%")):
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": False})
        for url in pages(hub):
            driver.get(url)
            if text_size:
                driver.execute_script(f"document.documentElement.style.fontSize = '{text_size}';")
            overflow = driver.execute_script(OVERFLOW_JS)
            if overflow > 0:
                problems.append(f"{url} at {width} px, text {text_size or '100%'}: {overflow} px sideways")
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    assert not problems, "pages scroll sideways:\n  " + "\n  ".join(problems)


def test_text_contrast_and_labelled_controls(hub, chrome):
    driver = chrome
    sign_in(driver, hub)
    low, unlabelled = [], []
    for url in pages(hub):
        driver.get(url)
        texts = driver.execute_script(CONTRAST_JS)
        assert texts, f"no text measured on {url}"
        low += [f"{url}: {t['tag']} {t['text']!r} {t['color']} on {t['background']} = {t['ratio']}:1"
                for t in texts if t["ratio"] < MIN_CONTRAST]
        unlabelled += [f"{url}: {html}" for html in driver.execute_script(UNLABELLED_JS)]
    assert not low, f"text below {MIN_CONTRAST}:1:\n  " + "\n  ".join(low)
    assert not unlabelled, "controls without a label:\n  " + "\n  ".join(unlabelled)
