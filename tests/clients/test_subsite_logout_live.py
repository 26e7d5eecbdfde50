"""Logout through the real hub and real subsite processes (``python -m clients.subsite``), the way
``clients/demo.py`` registers them: RP-Initiated Logout from one subsite ends the hub session, the
hub's back-channel logout token ends the citizen's session on the other subsites, and the
front-channel iframe URL ends it on a subsite registered for front-channel logout only.

A ``requests.Session`` is the browser (it does not run iframes: the test fetches their URLs with the
browser's cookies, as the hidden iframe would; ``tests/browser`` covers real browsers).
"""
from __future__ import annotations

import re
import secrets
import time
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.clients.test_subsite import Subsite, sign_in
from tests.e2e.browser import HubBrowser
from tests.e2e.hub import free_port, shared_hub

pytestmark = [pytest.mark.live, pytest.mark.xdist_group("live-sqlite")]

SIGNED_IN = "已登录 / Signed in as"
SIGNED_OUT = "已退出 / Signed out"


@pytest.fixture(scope="module")
def hub(request):
    return shared_hub(request, "sqlite")


def registration(name: str, port: int, *, backchannel: bool, frontchannel: bool) -> list[str]:
    base = f"http://127.0.0.1:{port}"
    args = ["clients", "create", "--name", name, "--first-party", "--redirect-uri", f"{base}/callback",
            "--post-logout-redirect-uri", f"{base}/"]
    if backchannel:
        args += ["--backchannel-logout-uri", f"{base}/backchannel-logout"]
    if frontchannel:
        args += ["--frontchannel-logout-uri", f"{base}/frontchannel-logout"]
    return args


@pytest.fixture(scope="module")
def sites(hub, tmp_path_factory):
    """A and B registered like the demo (both channels); C with front-channel logout only."""
    tmp = tmp_path_factory.mktemp("logout-subsites")
    specs = [("子站A-" + secrets.token_hex(2), free_port(), True, True),
             ("子站B-" + secrets.token_hex(2), free_port(), True, True),
             ("子站C-" + secrets.token_hex(2), free_port(), False, True)]
    clients = hub.cli_many([registration(n, p, backchannel=b, frontchannel=f) for n, p, b, f in specs])
    started = [Subsite(n, p, c, tmp / f"subsite-{p}.log") for (n, p, _, _), c in zip(specs, clients)]
    try:
        for site in started:
            site.start(hub.issuer)
        for site in started:
            site.wait_ready()
        yield started
    finally:
        for site in started:
            site.stop()


def home(browser: HubBrowser, site: Subsite) -> str:
    page = browser.http.get(site.base + "/", timeout=10)
    assert page.status_code == 200
    return page.text


def test_logout_from_one_subsite_signs_out_everywhere(hub, sites):
    """RP-Initiated Logout 1.0 §2-§3 (subsite A → hub → back to A with its state), Back-Channel
    Logout 1.0 §2.5-§2.7 (B's session ends without the browser going there) and Front-Channel
    Logout 1.0 §2 (C, told only through the iframe, ends its session)."""
    a, b, c = sites
    with HubBrowser(hub.user["username"], hub.user["password"]) as browser:
        for site in sites:
            assert SIGNED_IN in sign_in(browser, hub, site).text

        start = browser.http.get(a.base + "/logout", allow_redirects=False, timeout=10)
        assert start.status_code == 302
        location = start.headers["Location"]
        assert location.startswith(hub.issuer + "/logout?"), location
        params = parse_qs(urlsplit(location).query)
        assert params["client_id"] == [a.client["client_id"]]
        assert params["post_logout_redirect_uri"] == [a.base + "/"]
        assert params["id_token_hint"] and params["state"]

        # The hint names this session (sid): the hub logs out without asking, then shows its page
        # with the front-channel iframes and a link back to A.
        page = browser.http.get(location, allow_redirects=False, timeout=10)
        assert page.status_code == 200, page.text[:1000]
        frames = [unescape(u) for u in re.findall(r'<iframe src="([^"]+)"', page.text)]
        assert {urlsplit(u).netloc for u in frames} == {urlsplit(s.base).netloc for s in sites}, frames
        back = unescape(re.search(r'<a href="([^"]+)">继续', page.text).group(1))
        assert back.startswith(a.base + "/?state="), back

        for url in frames:  # what the hidden iframes do
            framed = browser.http.get(url, timeout=10)
            assert framed.status_code == 200 and "no-store" in framed.headers["Cache-Control"]

        returned = browser.http.get(back, timeout=10)
        assert SIGNED_OUT in returned.text and SIGNED_IN not in returned.text

        # C had only the iframe, which ended its session.
        assert SIGNED_IN not in home(browser, c)

        # B was told twice (back-channel token and iframe); either way its session is over.
        assert SIGNED_IN not in home(browser, b)


def test_backchannel_logout_ends_a_session_the_browser_never_revisits(hub, sites):
    """Back-Channel Logout 1.0 §2.7: the hub's logout token reaches B's ``/backchannel-logout``
    server-to-server; B's next page for that browser shows "signed out" (the session cookie alone
    cannot be reached, so B refuses it on sight)."""
    a, b, _ = sites
    with HubBrowser(hub.user["username"], hub.user["password"]) as browser:
        sign_in(browser, hub, a)
        sign_in(browser, hub, b)
        b_cookie = {k: v for k, v in browser.http.cookies.items() if k == f"subsite_{b.port}"}
        assert b_cookie

        location = browser.http.get(a.base + "/logout", allow_redirects=False, timeout=10).headers["Location"]
        hint = parse_qs(urlsplit(location).query)["id_token_hint"][0]
        keys = KeySet.import_key_set(requests.get(hub.url("/jwks.json"), timeout=5).json())
        sid = jwt.decode(hint, keys).claims["sid"]
        assert browser.http.get(location, timeout=10).status_code == 200  # the hub ends its session

    # Another browser with only B's old cookie: no iframe ever ran in it.
    with HubBrowser(hub.user["username"], hub.user["password"]) as other:
        other.http.cookies.update(b_cookie)
        deadline = time.monotonic() + 20
        while True:
            text = home(other, b)
            if SIGNED_IN not in text:
                break
            assert time.monotonic() < deadline, f"B never heard of the logout:\n{b.log()}"
            time.sleep(0.2)
        assert SIGNED_OUT in text
        assert SIGNED_IN not in home(other, b)  # and it stays signed out

    # §2.8: both subsites answered the hub's POST with 200, at the first attempt.
    mine = {a.client["client_id"], b.client["client_id"]}
    deadline = time.monotonic() + 20
    while True:
        rows = [d for d in hub.cli("logout", "deliveries") if d["client_id"] in mine and d["sid"] == sid]
        if len(rows) == 2 and all(d["status"] == "delivered" for d in rows):
            break
        assert time.monotonic() < deadline, rows
        time.sleep(0.3)
    assert all(d["attempts"] == 1 and not d["last_error"] for d in rows), rows
