"""Fixtures for the browser tests: the demo as real processes, and a headless Chromium.

``demo`` (module scope): ``idp init`` + ``idp serve`` on a free port of 127.0.0.1 (SQLite and keys
in a temp dir, ``IDP_ISSUER=http://127.0.0.1:PORT``), the demo citizen of ``clients.demo``, and
three subsites (``python -m clients.subsite``), each on its own free port with its own client:
``sso1`` and ``sso2`` registered ``--first-party`` (the demo's two departments), ``consent`` not.

``chrome`` (function scope): a fresh headless Chromium (empty profile) through /usr/bin/chromedriver,
with the performance (DevTools network events) and browser (console) logs enabled.

Without Chromium or its driver the tests are skipped; under ``CI=true`` they fail instead.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from clients.demo import DEMO_USER, SUBSITES
from tests.e2e.hub import ROOT, LiveHub, clean_env, free_port, start_hub, stop_process

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMEDRIVER_NAMES = ("chromedriver",)
SUBSITE_READY_TIMEOUT = 20.0


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _find(names) -> str | None:
    for name in names:
        found = shutil.which(name) or (f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None)
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def chromium_paths() -> tuple[str, str]:
    """(browser, driver) executables; skip without them, fail under CI=true."""
    browser, driver = _find(CHROMIUM_NAMES), _find(CHROMEDRIVER_NAMES)
    if browser and driver:
        return browser, driver
    missing = " and ".join(n for n, p in (("chromium", browser), ("chromedriver", driver)) if not p)
    msg = (f"{missing} not found (looked on PATH and in /usr/bin): install the Debian packages "
           f"`chromium chromium-driver` (apt-get install chromium chromium-driver)")
    if in_ci():
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


# -- the demo: hub + subsites ---------------------------------------------------------------------


@dataclass
class Subsite:
    key: str
    name: str
    first_party: bool
    port: int = 0
    client: dict = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    _log: object = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def register_args(self) -> list[str]:
        args = ["clients", "create", "--name", self.name, "--redirect-uri", f"{self.url}/callback",
                "--post-logout-redirect-uri", f"{self.url}/"]
        return args + (["--first-party"] if self.first_party else [])

    def spawn(self, issuer: str, workdir: Path) -> None:
        self.log_path = workdir / f"subsite-{self.key}-{self.port}.log"
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            # "--opt=value": the hub's client ids and secrets come from secrets.token_urlsafe and start
            # with "-" about 1 time in 64 each; argparse takes "--client-secret -xyz" for a missing value.
            [sys.executable, "-m", "clients.subsite", "--name", self.name, "--port", str(self.port),
             "--issuer", issuer, f"--client-id={self.client['client_id']}",
             f"--client-secret={self.client['client_secret']}"],
            cwd=ROOT, env=clean_env({"PYTHONUNBUFFERED": "1"}), stdin=subprocess.DEVNULL,
            stdout=self._log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        if self._log is not None:
            self._log.flush()
        try:
            return self.log_path.read_text(errors="replace")[-4000:] if self.log_path else "(no log)"
        except OSError:
            return "(no log)"

    def wait_ready(self, http: requests.Session) -> bool:
        """True once GET / answers 200; False if the port was taken; raises on anything else."""
        deadline = time.monotonic() + SUBSITE_READY_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                if "Address already in use" in self.log():
                    return False
                raise RuntimeError(f"subsite {self.name} exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if http.get(self.url + "/", timeout=2).status_code == 200:
                    return True
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"subsite {self.name} not ready within {SUBSITE_READY_TIMEOUT:.0f} s:\n{self.log()}")
            time.sleep(0.1)

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


@dataclass
class Demo:
    hub: LiveHub
    user: dict
    sites: dict[str, Subsite]

    @property
    def issuer(self) -> str:
        return self.hub.issuer

    def logs(self) -> str:
        parts = [f"--- hub log ---\n{self.hub.server_log()}"]
        parts += [f"--- subsite {s.key} log ---\n{s.log()}" for s in self.sites.values()]
        return "\n".join(parts)


@pytest.fixture(scope="module")
def demo(tmp_path_factory, chromium_paths) -> Demo:
    workdir = tmp_path_factory.mktemp("browser-demo")
    sites = {
        "sso1": Subsite("sso1", SUBSITES[0][1], first_party=True),
        "sso2": Subsite("sso2", SUBSITES[1][1], first_party=True),
        "consent": Subsite("consent", "第三方便民服务 (third party)", first_party=False),
    }
    for site in sites.values():
        site.port = free_port()
    u = DEMO_USER
    user_cmd, user = LiveHub.user_args(username=u["username"], password=u["password"], name=u["name"],
                                       id_number=u["id_number"], phone=u["phone"], email=u["email"])
    hub = None
    try:
        hub, results = start_hub(workdir, provision=[user_cmd, *(s.register_args() for s in sites.values())])
        user = {**user, **results[0]}
        for site, client in zip(sites.values(), results[1:]):
            site.client = client
            site.spawn(hub.issuer, workdir)
        with requests.Session() as http:
            for site in sites.values():
                for _attempt in range(3):
                    if site.wait_ready(http):
                        break
                    # The port was taken between free_port() and the bind: new port, new client.
                    site.stop()
                    site.port = free_port()
                    site.client = hub.cli(*site.register_args())
                    site.spawn(hub.issuer, workdir)
                else:
                    raise RuntimeError(f"subsite {site.name} could not bind a port after 3 attempts")
        yield Demo(hub, user, sites)
    finally:
        for site in sites.values():
            site.stop()
        if hub is not None:
            hub.stop()
        shutil.rmtree(workdir, ignore_errors=True)


# -- the browser ---------------------------------------------------------------------------------


@pytest.fixture
def chrome(chromium_paths, tmp_path, monkeypatch):
    """A fresh headless Chromium: its own profile, nothing fetched from the network by Selenium."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_AVOID_STATS", "true")
    monkeypatch.setenv("SE_OFFLINE", "true")
    browser, driver_path = chromium_paths
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-extensions",
                "--disable-features=Translate,OptimizationHints,MediaRouter,PasswordLeakDetection",
                "--password-store=basic", "--window-size=1200,900", f"--user-data-dir={profile}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    service = Service(driver_path, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.set_page_load_timeout(20)
        yield driver
    finally:
        driver.quit()
