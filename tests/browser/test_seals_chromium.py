"""The officials' sealing page and the public verification page in a real Chromium, behind the shipped
nginx configuration (``deploy/nginx/idp.conf``), with the official's certificate presented by Chromium
itself in the TLS handshake (RFC 8446 §4.3.2 CertificateRequest → client Certificate).

How Chromium gets the certificate without a person clicking: the PKCS#12 file is imported with
``pk12util`` (libnss3-tools) into the NSS database Chromium reads on Linux (``$HOME/.pki/nssdb``, a
temporary HOME), and the profile's content setting ``auto_select_certificate`` (what the enterprise
policy AutoSelectCertificateForUrls sets) names nginx's origin, so Chromium picks it instead of
showing its certificate chooser (which a headless browser cannot answer). The command-line switches
for this do not exist in this Chromium, and ``--policy`` is ignored by release builds.

Then: /login/certificate?next=/seals/apply (a fresh level-3 sign-in), the seal picked, the PDF given
to the file input, a click on the page outline that fills x and y, submit, the download checked with
``idp seals verify`` (``verify_pdf``) and rendered by poppler's ``pdftoppm``, red where the click
was; the public /seals/verify page judging the downloaded file; the form used by keyboard only.
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import time

import pytest
from PIL import Image
from pyhanko.pdf_utils.reader import PdfFileReader
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.actions.action_builder import ActionBuilder
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from tests.browser.helpers import events, wait
from tests.e2e.hub import IDP, free_port
from tests.seals.live_support import (DEPARTMENT, OFFICIAL, P12_PASSWORD, SEAL_NAME, idp_at_once, ok_json,
                                      start_sealing_hub)
from tests.seals.pdfs import make_mixed_pdf, make_pdf
from tests.seals.tools import tool
from tests.services.nginx import require_nginx, start_nginx

pytestmark = [pytest.mark.live, pytest.mark.xdist_group("browser-chromium")]

PROXY_ADDR = "127.0.0.2"
A4 = (595, 842)
STAMP = 119  # SEAL_STAMP_SIZE_PT's default


@pytest.fixture(scope="module")
def site(tmp_path_factory, chromium_paths):
    """A sealing hub behind nginx (which asks for client certificates and forwards them)."""
    require_nginx()
    work = tmp_path_factory.mktemp("seals-chromium")
    public = free_port()  # nginx's: the hub's issuer is the address people use (its forms check Origin)
    sealing = start_sealing_hub(work, env={"IDP_TRUSTED_PROXIES": PROXY_ADDR,
                                           "IDP_ISSUER": f"https://127.0.0.1:{public}"})
    proxy = None
    try:
        proxy = start_nginx(work / "nginx", sealing.hub.port, sealing.chain, proxy_bind=PROXY_ADDR, port=public)
        yield sealing, proxy
    finally:
        if proxy is not None:
            proxy.stop()
        sealing.hub.stop()


def nss_home(home, p12, tls_ca) -> None:
    """``$HOME/.pki/nssdb`` with the official's key and certificate and nginx's test CA trusted for TLS."""
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True)
    for argv in ([tool("certutil"), "-N", "-d", f"sql:{db}", "--empty-password"],
                 [tool("pk12util"), "-i", str(p12), "-d", f"sql:{db}", "-W", P12_PASSWORD, "-K", ""],
                 [tool("certutil"), "-A", "-d", f"sql:{db}", "-n", "nginx-test-ca", "-t", "C,,", "-i", str(tls_ca)]):
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (argv, r.stdout, r.stderr)


@pytest.fixture
def chrome(site, chromium_paths, tmp_path, monkeypatch):
    """Headless Chromium presenting the official's certificate to nginx's origin, downloads to a folder.
    Named like conftest's ``chrome`` (which it replaces here) so a failure saves its screenshot and page."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    sealing, proxy = site
    monkeypatch.setenv("SE_AVOID_STATS", "true")
    monkeypatch.setenv("SE_OFFLINE", "true")
    home, downloads, profile = tmp_path / "home", tmp_path / "downloads", tmp_path / "profile"
    downloads.mkdir()
    nss_home(home, sealing.p12, proxy.tls_ca)
    (profile / "Default").mkdir(parents=True)
    prefs = {"download": {"default_directory": str(downloads), "prompt_for_download": False},
             "profile": {"content_settings": {"exceptions": {"auto_select_certificate": {
                 f"{proxy.base},*": {"setting": {"filters": [{}]}}}}}}}
    (profile / "Default" / "Preferences").write_text(json.dumps(prefs))
    browser, driver_path = chromium_paths
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})  # DevTools network events (helpers.events)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-extensions", "--lang=zh-CN",
                "--password-store=basic", "--window-size=1200,1000", f"--user-data-dir={profile}"):
        options.add_argument(arg)
    env = {**os.environ, "HOME": str(home)}
    service = Service(driver_path, log_output=str(tmp_path / "chromedriver.log"), env=env)
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.set_page_load_timeout(30)
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
        driver.downloads = downloads
        driver.base = proxy.base
        yield driver
    finally:
        driver.quit()


def sign_in_with_the_certificate(driver) -> None:
    """/login/certificate through nginx (the certificate in the handshake), then the sealing page."""
    driver.get(driver.base + "/login/certificate?next=/seals/apply")
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "form select#seal"),
         "the sealing form after the certificate sign-in")


def downloaded(driver, timeout: float = 60) -> bytes:
    """The one file Chromium saved into its download folder."""
    folder = driver.downloads
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [p for p in folder.iterdir() if p.suffix == ".pdf"]
        if done and not any(p.name.endswith(".crdownload") for p in folder.iterdir()):
            return done[0].read_bytes()
        time.sleep(0.2)
    raise AssertionError(f"no download in {folder}: {[p.name for p in folder.iterdir()]}; the browser is at "
                         f"{driver.current_url}:\n{driver.find_element(By.TAG_NAME, 'body').text[:1500]}")


def idp_verify(sealing, path) -> dict:
    """``idp seals verify`` (``verification.verify`` → ``verify_pdf``) in the hub's environment."""
    r = subprocess.run([str(IDP), "seals", "verify", str(path)], env=sealing.hub.env,
                       cwd=sealing.hub.workdir, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, (r.stdout, r.stderr)
    return json.loads(r.stdout)


def red_pixels(img: Image.Image, box) -> int:
    x0, y0, x1, y1 = (max(0, int(v)) for v in box)
    return sum(1 for x in range(x0, min(x1, img.width)) for y in range(y0, min(y1, img.height))
               if (lambda p: p[0] > 180 and p[1] < 80 and p[2] < 80)(img.getpixel((x, y))))


def test_an_official_seals_a_pdf_in_chromium_and_the_public_page_verifies_it(site, chrome, tmp_path):
    sealing, _ = site
    driver = chrome
    sign_in_with_the_certificate(driver)

    Select(driver.find_element(By.ID, "seal")).select_by_value(str(sealing.seal))
    doc = tmp_path / "审批表.pdf"
    doc.write_bytes(make_pdf(pages=1))
    driver.find_element(By.ID, "document").send_keys(str(doc))

    # A click on the page outline (297 × 421 CSS px for an A4 page) fills x and y: the stamp's
    # lower-left corner in points, centred on the click.
    placer = driver.find_element(By.ID, "placer")
    assert placer.is_displayed()
    click = (100, 120)  # CSS px from the outline's top-left corner
    # Wholly in view first: WebDriver aims element-relative moves at the visible part's centre.
    rect = driver.execute_script("arguments[0].scrollIntoView({block: 'center'});"
                                 "const r = arguments[0].getBoundingClientRect(); return [r.left, r.top];", placer)
    actions = ActionBuilder(driver)
    actions.pointer_action.move_to_location(round(rect[0] + click[0]), round(rect[1] + click[1])).click()
    actions.perform()
    k = placer.get_property("clientWidth") / A4[0]
    expect_x = click[0] / k - STAMP / 2
    expect_y = A4[1] - click[1] / k - STAMP / 2
    x = float(driver.find_element(By.ID, "x").get_property("value"))
    y = float(driver.find_element(By.ID, "y").get_property("value"))
    assert abs(x - expect_x) <= 3 and abs(y - expect_y) <= 3, (x, y, expect_x, expect_y)
    assert driver.find_element(By.ID, "placer-stamp").is_displayed()

    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    sealed = downloaded(driver)
    path = tmp_path / "sealed.pdf"
    path.write_bytes(sealed)

    report = idp_verify(sealing, path)  # verify_pdf, through the operators' command
    assert report["verdict"] == "valid", report
    [sig] = report["signatures"]
    assert sig["official"] == OFFICIAL[1] and sig["seal"]["name"] == SEAL_NAME and sig["signing_time"], sig

    # poppler renders the page at 72 dpi (1 px = 1 pt, y downwards): the stamp is where the click was.
    subprocess.run([tool("pdftoppm"), "-f", "1", "-l", "1", "-r", "72", "-png", "-singlefile", str(path),
                    str(tmp_path / "page")], check=True, capture_output=True, timeout=60)
    img = Image.open(tmp_path / "page.png").convert("RGB")
    top = A4[1] - y - STAMP
    inside = red_pixels(img, (x, top, x + STAMP, top + STAMP))
    assert inside > 500, inside
    assert red_pixels(img, (0, 0, A4[0], A4[1])) - inside < 50  # nowhere else

    # The public verification page, no sign-in needed: a fresh page, the downloaded file, the verdict.
    driver.delete_all_cookies()
    driver.get(driver.base + "/seals/verify")
    driver.find_element(By.ID, "document").send_keys(str(path))
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    verdict = wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "h2#verdict"), "the verdict")[0]
    assert verdict.get_attribute("data-verdict") == "valid", driver.page_source[:2000]
    assert "印章有效" in verdict.text, verdict.text  # the browser asks for zh-CN: the Chinese page
    page = driver.find_element(By.TAG_NAME, "main").text
    assert OFFICIAL[1] in page and SEAL_NAME in page, page


def click_placer(driver, click) -> tuple[float, float, float]:
    """Click the outline at ``click`` (CSS px from its top-left); (x, y) typed by the script, and the
    outline's CSS px per point."""
    placer = driver.find_element(By.ID, "placer")
    rect = driver.execute_script("arguments[0].scrollIntoView({block: 'center'});"
                                 "const r = arguments[0].getBoundingClientRect(); return [r.left, r.top];", placer)
    actions = ActionBuilder(driver)
    actions.pointer_action.move_to_location(round(rect[0] + click[0]), round(rect[1] + click[1])).click()
    actions.perform()
    x = float(driver.find_element(By.ID, "x").get_property("value"))
    y = float(driver.find_element(By.ID, "y").get_property("value"))
    return x, y, placer.get_property("clientWidth")


def measured(driver, width: int, height: int, rotate: int):
    """Wait until the outline has taken the chosen page's size and rotation from the hub."""
    want = (str(width), str(height), str(rotate))
    return wait(driver, lambda d: tuple(d.find_element(By.ID, "placer").get_attribute(f"data-{k}")
                                        for k in ("width", "height", "rotate")) == want or None,
                f"the outline measured as {want}")


def test_the_placer_takes_the_real_page_size_and_rotation(site, chrome, tmp_path):
    """Not only A4: an A3 landscape page (1191 × 842 pt) and a page shown turned (/Rotate 90, ISO 32000-1
    §7.7.3.3): the outline takes the chosen page's size and orientation (the hub reads them from the
    file), a click maps to that page's own coordinates, and the stamp is drawn where the click was on
    the page as a viewer shows it (poppler honours /Rotate)."""
    sealing, _ = site
    driver = chrome
    sign_in_with_the_certificate(driver)
    Select(driver.find_element(By.ID, "seal")).select_by_value(str(sealing.seal))

    a3 = tmp_path / "a3.pdf"
    a3.write_bytes(make_pdf(pages=1, media_box=(0, 0, 1191, 842)))
    driver.find_element(By.ID, "document").send_keys(str(a3))
    measured(driver, 1191, 842, 0)
    x, y, shown_width = click_placer(driver, (300, 100))
    k = shown_width / 1191  # landscape: the long side across
    assert abs(x - (300 / k - STAMP / 2)) <= 3 and abs(y - (842 - 100 / k - STAMP / 2)) <= 3, (x, y, k)
    assert x + STAMP > A4[0]  # a position an A4 outline could not give

    # Letter, stored portrait, shown landscape (turned 90° clockwise): page y runs left to right as shown,
    # page x top to bottom.
    turned = tmp_path / "turned.pdf"
    turned.write_bytes(make_pdf(pages=1, media_box=(0, 0, 612, 792), rotate=90))
    driver.find_element(By.ID, "document").send_keys(str(turned))
    measured(driver, 612, 792, 90)
    click = (250, 120)
    x, y, shown_width = click_placer(driver, click)
    k = shown_width / 792
    assert abs(x - (click[1] / k - STAMP / 2)) <= 3 and abs(y - (click[0] / k - STAMP / 2)) <= 3, (x, y, k)

    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    path = tmp_path / "turned-sealed.pdf"
    path.write_bytes(downloaded(driver))
    emb = PdfFileReader(io.BytesIO(path.read_bytes())).embedded_regular_signatures[0]
    rect = [float(v) for v in emb.sig_field["/Rect"]]
    assert rect[:2] == [x, y], rect  # the typed-position contract: page coordinates
    subprocess.run([tool("pdftoppm"), "-f", "1", "-l", "1", "-r", "72", "-png", "-singlefile", str(path),
                    str(tmp_path / "turned")], check=True, capture_output=True, timeout=60)
    img = Image.open(tmp_path / "turned.png").convert("RGB")
    assert img.size == (792, 612)  # as a viewer shows it
    cx, cy = click[0] / k, click[1] / k  # where the click was on the shown page, in points
    around = (cx - STAMP / 2, cy - STAMP / 2, cx + STAMP / 2, cy + STAMP / 2)
    inside = red_pixels(img, around)
    assert inside > 500, inside
    assert red_pixels(img, (0, 0, *img.size)) - inside < 50  # nowhere else


@pytest.fixture(scope="module")
def wide_seal(site, tmp_path_factory) -> int:
    """A second seal of the department, with an operator's own stamp image twice as wide as high
    (``idp seals create --image``), authorized for the official: its id."""
    sealing, _ = site
    png = tmp_path_factory.mktemp("wide-seal") / "wide.png"
    img = Image.new("RGBA", (400, 200), (0, 0, 0, 0))
    img.paste((215, 38, 30, 255), (10, 10, 390, 190))
    img.save(png, "PNG")
    [created] = idp_at_once(sealing.hub, ["seals", "create", "--department", DEPARTMENT[0],
                                          "--name", "本溪市市场监督管理局合同专用章", "--image", png])
    seal_id = ok_json(created)["id"]
    ok_json(idp_at_once(sealing.hub, ["seals", "authorize", "--seal", seal_id, "--username", OFFICIAL[0]])[0])
    return seal_id


def outline_box(driver) -> tuple[float, float, float, float]:
    """The stamp outline drawn on the page outline: (left, top, width, height) in CSS px from the page
    outline's inner top-left corner (inside its border, where the script's coordinates start)."""
    return tuple(driver.execute_script(
        "const el = document.getElementById('placer'), p = el.getBoundingClientRect(),"
        " m = document.getElementById('placer-stamp').getBoundingClientRect();"
        "return [m.left - p.left - el.clientLeft, m.top - p.top - el.clientTop, m.width, m.height];"))


def test_the_outline_of_a_wide_seal_on_a_turned_page_is_the_box_the_pdf_gets(site, chrome, wide_seal, tmp_path):
    """A seal image twice as wide as high on a page shown turned (/Rotate 270, ISO 32000-1 §7.7.3.3):
    the outline is the stamp upright as shown (wide), and after sealing the signature widget's /Rect
    (§12.5.2, read with pyHanko) is that very box in the page's own coordinates (there 59.5 × 119 pt)."""
    sealing, _ = site
    driver = chrome
    sign_in_with_the_certificate(driver)
    Select(driver.find_element(By.ID, "seal")).select_by_value(str(wide_seal))
    turned = tmp_path / "turned-270.pdf"
    turned.write_bytes(make_pdf(pages=1, media_box=(0, 0, 612, 792), rotate=270))
    driver.find_element(By.ID, "document").send_keys(str(turned))
    measured(driver, 612, 792, 270)
    placer = driver.find_element(By.ID, "placer")
    assert (placer.get_attribute("data-stamp-width"), placer.get_attribute("data-stamp-height")) == ("59.5", "119")
    x, y, shown_width = click_placer(driver, (200, 150))
    k = shown_width / 792  # CSS px per point; shown landscape
    left, top, width, height = outline_box(driver)
    assert abs(width / height - 2) < 0.05, (width, height)  # wide, as the image
    assert abs(width - STAMP * k) <= 1.5 and abs(height - STAMP / 2 * k) <= 1.5, (width, height, k)

    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    sealed = downloaded(driver)
    emb = PdfFileReader(io.BytesIO(sealed)).embedded_regular_signatures[0]
    x0, y0, x1, y1 = (float(v) for v in emb.sig_field["/Rect"])
    assert (x0, y0) == (x, y) and (x1 - x0, y1 - y0) == (59.5, STAMP), (x0, y0, x1, y1)
    # The /Rect as the page is shown (turned 270° clockwise: shown (H - y, W - x)), in CSS px: the outline.
    W, H = 612, 792
    shown = ((H - y1) * k, (W - x1) * k, (y1 - y0) * k, (x1 - x0) * k)
    assert all(abs(a - b) <= 1.5 for a, b in zip((left, top, width, height), shown)), ((left, top, width, height),
                                                                                         shown)
    path = tmp_path / "wide-sealed.pdf"
    path.write_bytes(sealed)
    assert idp_verify(sealing, path)["verdict"] == "valid"


def page_uploads(driver) -> int:
    """Requests to /seals/apply/page since the last call (the browser's DevTools network events)."""
    return sum(1 for m in events(driver) if m.get("method") == "Network.requestWillBeSent"
               and m["params"]["request"]["url"].endswith("/seals/apply/page"))


def test_switching_pages_in_the_placer_sends_the_file_once(site, chrome, tmp_path):
    """One upload answers for every page; changing the page number redraws the outline from it, and the
    browser sends no further request to /seals/apply/page."""
    sealing, _ = site
    driver = chrome
    sign_in_with_the_certificate(driver)
    Select(driver.find_element(By.ID, "seal")).select_by_value(str(sealing.seal))
    page_uploads(driver)  # drain what the sign-in logged
    doc = tmp_path / "mixed.pdf"
    doc.write_bytes(make_mixed_pdf([((0, 0, 595, 842), 0), ((0, 0, 1191, 842), 0), ((0, 0, 612, 792), 90)]))
    driver.find_element(By.ID, "document").send_keys(str(doc))
    measured(driver, 612, 792, 90)  # empty page number: the last page
    page_in = driver.find_element(By.ID, "page")
    for number, shape in (("1", (595, 842, 0)), ("2", (1191, 842, 0)), ("3", (612, 792, 90)), ("1", (595, 842, 0))):
        page_in.clear()
        page_in.send_keys(number, Keys.TAB)  # "change" fires when the field loses the focus
        measured(driver, *shape)
    time.sleep(0.5)  # a request the switch might have started would be logged by now
    assert page_uploads(driver) == 1


def test_the_sealing_form_works_by_keyboard(site, chrome, tmp_path):
    """Every control has a label and is reached with Tab in order; the mouse-only outline is skipped
    (aria-hidden, not focusable); typing x and y and pressing Enter seals (WCAG 2.1.1, 2.4.3, 1.3.1)."""
    sealing, _ = site
    driver = chrome
    sign_in_with_the_certificate(driver)
    form = driver.find_element(By.CSS_SELECTOR, "form[action='/seals/apply']")
    for control in ("seal", "document", "page", "x", "y"):
        labels = form.find_elements(By.CSS_SELECTOR, f"label[for='{control}']")
        assert labels and labels[0].text.strip(), control
    driver.execute_script("document.getElementById('seal').focus()")
    order = [driver.switch_to.active_element.get_attribute("id")]

    def press(*keys):  # to whatever has the focus, as a keyboard does (not element.send_keys)
        ActionChains(driver).send_keys(*keys).perform()

    for _ in range(5):
        press(Keys.TAB)
        active = driver.switch_to.active_element
        order.append(active.get_attribute("id") or active.tag_name)
    assert order == ["seal", "document", "page", "x", "y", "button"], order

    doc = tmp_path / "keyboard.pdf"
    doc.write_bytes(make_pdf(pages=2))
    driver.find_element(By.ID, "document").send_keys(str(doc))  # the file chooser is the OS's, not the page's
    driver.execute_script("document.getElementById('page').focus()")
    press("1", Keys.TAB, "40", Keys.TAB, "60", Keys.ENTER)
    sealed = downloaded(driver)
    (tmp_path / "kb-sealed.pdf").write_bytes(sealed)
    report = idp_verify(sealing, tmp_path / "kb-sealed.pdf")
    assert report["verdict"] == "valid", report
    # The typed position: the signature widget's /Rect (ISO 32000-1 §12.5.2) starts at x=40, y=60 pt.
    emb = PdfFileReader(io.BytesIO(sealed)).embedded_regular_signatures[0]
    rect = [float(v) for v in emb.sig_field["/Rect"]]
    assert rect[:2] == [40, 60] and round(rect[2] - rect[0]) == STAMP, rect


def test_nginx_lets_seal_sized_uploads_reach_the_hub(site):
    """The shipped nginx limits bodies to 2 MB in general; seal uploads (up to IDP_SEAL_MAX_FILE_BYTES)
    go through to the hub, which answers with its report or its own clear limit, never nginx's 413."""
    import requests

    sealing, proxy = site
    big = os.urandom(3 * 1024 * 1024)
    with requests.Session() as http:
        http.trust_env = False
        http.verify = str(proxy.tls_ca)
        r = http.post(proxy.base + "/api/seals/verify", files={"file": ("big.bin", big)}, timeout=60)
        assert r.headers.get("Content-Type", "").startswith("application/json"), (r.status_code, r.text[:300])
        assert r.json()["verdict"] == "invalid" and ".p7s" in r.json()["reasons"][0], r.text[:300]
        # elsewhere the general limit still holds
        r = http.post(proxy.base + "/login", data=big, timeout=60)
        assert r.status_code == 413 and "nginx" in r.text, r.status_code
