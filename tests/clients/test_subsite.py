"""The demo department subsite (``python -m clients.subsite``, Authlib's Flask client) against a live
hub: sign-in through the hub, then single sign-on into a second subsite.

Everything is a real process on 127.0.0.1: ``idp serve`` (SQLite, shared with tests/e2e) and two
subsites on free ports; a ``requests.Session`` is the browser.
"""
from __future__ import annotations

import secrets
import subprocess
import sys
import time
from urllib.parse import urlsplit

import pytest
import requests

from tests.e2e.browser import HubBrowser, query, same_endpoint
from tests.e2e.hub import ROOT, clean_env, free_port, shared_hub, stop_process

pytestmark = [pytest.mark.live, pytest.mark.xdist_group("live-sqlite")]

READY_TIMEOUT = 30.0


class Subsite:
    def __init__(self, name: str, port: int, client: dict, log_path, *, separate_args: bool = False):
        self.name, self.port, self.client = name, port, client
        self.separate_args = separate_args
        self.base = f"http://127.0.0.1:{port}"
        self.redirect_uri = f"{self.base}/callback"
        self.log_path = log_path
        self.proc = None
        self._log = None

    def start(self, issuer: str) -> None:
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "clients.subsite", "--name", self.name, "--port", str(self.port),
             "--issuer", issuer, *self.credential_args()],
            cwd=ROOT, env=clean_env({"PYTHONUNBUFFERED": "1"}), stdin=subprocess.DEVNULL,
            stdout=self._log, stderr=subprocess.STDOUT)

    def credential_args(self) -> list[str]:
        if self.separate_args:
            return ["--client-id", self.client["client_id"], "--client-secret", self.client["client_secret"]]
        # Generated ids and secrets may begin with "-": "--opt=value" keeps argparse from taking
        # them for options (the separate-argument form is tested on its own below).
        return [f"--client-id={self.client['client_id']}", f"--client-secret={self.client['client_secret']}"]

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        with requests.Session() as http:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"subsite {self.name} exited {self.proc.returncode}:\n{self.log()}")
                try:
                    if http.get(self.base + "/", timeout=2).status_code == 200:
                        return
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"subsite {self.name} not up within {READY_TIMEOUT:.0f} s:\n{self.log()}")
                time.sleep(0.1)

    def stop(self) -> None:
        stop_process(self.proc)
        if self._log is not None:
            self._log.close()


@pytest.fixture(scope="module")
def hub(request):
    return shared_hub(request, "sqlite")


@pytest.fixture(scope="module")
def subsites(hub, tmp_path_factory):
    """Two subsites: 市场监督管理局 (consent page on first use) and 人社局 (``--first-party``)."""
    tmp = tmp_path_factory.mktemp("subsites")
    specs = [("市场监督管理局-" + secrets.token_hex(2), free_port(), False),
             ("人力资源和社会保障局-" + secrets.token_hex(2), free_port(), True)]
    commands = [hub.client_args(name=name, redirect_uris=[f"http://127.0.0.1:{port}/callback"],
                                first_party=first_party)[0] for name, port, first_party in specs]
    clients = hub.cli_many(commands)
    sites = [Subsite(name, port, client, tmp / f"subsite-{port}.log")
             for (name, port, _), client in zip(specs, clients)]
    try:
        for site in sites:
            site.start(hub.issuer)
        for site in sites:
            site.wait_ready()
        yield sites
    finally:
        for site in sites:
            site.stop()


def sign_in(browser: HubBrowser, hub, site: Subsite) -> requests.Response:
    """Click "sign in" on the subsite, do the hub's part, let the subsite finish its callback."""
    start = browser.http.get(site.base + "/login", allow_redirects=False, timeout=15)
    assert start.status_code == 302, start.text[:500]
    assert start.headers["Location"].startswith(hub.issuer + "/authorize?"), start.headers["Location"]
    callback = browser.authorize(start.headers["Location"], site.redirect_uri)
    assert same_endpoint(callback, site.redirect_uri) and "code" in query(callback), callback
    page = browser.http.get(callback, timeout=15)  # the subsite exchanges the code, then redirects to /
    assert page.status_code == 200, f"{page.status_code}\n{page.text[:1500]}\n--- subsite log ---\n{site.log()}"
    assert urlsplit(page.url).netloc == urlsplit(site.base).netloc and urlsplit(page.url).path == "/"
    return page


def test_sign_in_then_single_sign_on_into_a_second_subsite(hub, subsites):
    """OIDC Core 1.0 §3.1 through a real relying party (code + PKCE + nonce, ID token checked
    against the JWKS, userinfo), then SSO (§3.1.2.3; first-party: consent by other means, §3.1.2.4):
    the second subsite's sign-in passes the hub with no page and ends signed in as the same person."""
    first, second = subsites
    with HubBrowser(hub.user["username"], hub.user["password"]) as browser:
        page = sign_in(browser, hub, first)
        assert browser.pages == ["login", "consent"], browser.trail
        assert "Signed in as" in page.text and "张三" in page.text, page.text[:2000]
        assert hub.user["sub"] in page.text

        page = sign_in(browser, hub, second)
        assert browser.pages == [] and browser.requests == 1, browser.trail
        assert "Signed in as" in page.text and "张三" in page.text, page.text[:2000]
        assert hub.user["sub"] in page.text


def test_second_subsite_without_hub_session_shows_the_login_page(hub, subsites):
    """Control for the SSO test: without the hub's session cookie the same first-party subsite
    does get the login page (OIDC Core 1.0 §3.1.2.3), and no consent page (§3.1.2.4)."""
    with HubBrowser(hub.user["username"], hub.user["password"]) as browser:
        page = sign_in(browser, hub, subsites[1])
        assert browser.pages == ["login"], browser.trail
        assert "Signed in as" in page.text and "张三" in page.text


def test_subsite_accepts_credentials_that_begin_with_a_dash(tmp_path):
    """The documented command line (``--client-id ID --client-secret SECRET``, as clients/demo.py
    runs it) must work for every generated credential; ``secrets.token_urlsafe`` values begin
    with "-" one time in 64, so the subsite must not read such a value as an option."""
    client = {"client_id": "-" + secrets.token_urlsafe(17), "client_secret": "-" + secrets.token_urlsafe(31)}
    site = Subsite("部门子站", free_port(), client, tmp_path / "subsite.log", separate_args=True)
    site.start("http://127.0.0.1:9")  # the home page does not contact the hub
    try:
        site.wait_ready()
    finally:
        site.stop()
