"""Fixtures for the browser tests: the demo as real processes, and a headless Chromium.

``demo`` (module scope): ``idp init`` + ``idp serve`` on a free port of 127.0.0.1 (SQLite and keys
in a temp dir, ``IDP_ISSUER=http://127.0.0.1:PORT``), the demo citizen of ``clients.demo``, and
three subsites (``python -m clients.subsite``), each on its own free port with its own client:
``sso1`` and ``sso2`` registered ``--first-party`` (the demo's two departments), ``consent`` not.

``chrome`` (function scope): a fresh headless Chromium (empty profile) through /usr/bin/chromedriver,
with the performance (DevTools network events) and browser (console) logs enabled.

Every subsite is registered with its logout endpoints: ``--post-logout-redirect-uri`` (its home
page), ``--backchannel-logout-uri`` (``/backchannel-logout``) and ``--frontchannel-logout-uri``
(``/frontchannel-logout``); the ports are chosen before registering.

When a test that uses ``chrome`` fails (its call raises), ``pytest_runtest_makereport`` saves a
screenshot, the page source and the demo's logs into ``tests/browser/artifacts/`` (or
``$BROWSER_ARTIFACTS``) while the browser is still open, and adds a "browser artifacts" section
with their paths to the failure report. The folder's own ``.gitignore`` keeps them out of git.

Under ``--dist loadgroup`` every test here goes to one worker (``xdist_group("browser-chromium")``;
``pytest_collection_modifyitems`` below makes that work again on pytest >= 9.2), so one Chromium
runs at a time and each module starts one demo.

Without Chromium or its driver the tests are skipped; under ``CI=true`` they fail instead.
"""
from __future__ import annotations

import os
import re
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
                "--post-logout-redirect-uri", f"{self.url}/",
                "--backchannel-logout-uri", f"{self.url}/backchannel-logout",
                "--frontchannel-logout-uri", f"{self.url}/frontchannel-logout"]
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

    def full_log(self) -> str:
        """Everything the subsite process wrote so far (``log()`` is only its tail)."""
        try:
            return self.log_path.read_text(errors="replace") if self.log_path else ""
        except OSError:
            return ""

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

    def full_logs(self) -> str:
        """Everything the hub and the subsites logged so far (``logs()`` keeps only their tails)."""
        try:
            hub = self.hub.log_path.read_text(errors="replace")
        except OSError:
            hub = "(no log)"
        parts = [f"--- hub log ({self.hub.log_path}) ---\n{hub}"]
        parts += [f"--- subsite {s.key} log ({s.log_path}) ---\n{s.full_log()}" for s in self.sites.values()]
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


BROWSER_DIR = Path(__file__).resolve().parent
ARTIFACTS_DIR = BROWSER_DIR / "artifacts"


def artifacts_dir() -> Path:
    """Where failure artifacts go: ``$BROWSER_ARTIFACTS`` if set, else tests/browser/artifacts (made on demand)."""
    folder = Path(os.environ.get("BROWSER_ARTIFACTS") or ARTIFACTS_DIR).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_artifacts(driver, name: str, logs: str | None = None, folder: Path | None = None) -> list[str]:
    """Screenshot (``.png``), page source (``.html``) and, if given, ``logs`` (``.log``) of ``driver``
    under ``folder`` (``artifacts_dir()``), named after ``name`` and the time; returns one line
    per file ("screenshot: PATH", ...), or what went wrong saving it."""
    folder = folder or artifacts_dir()
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")[:150] or "test"
    stem = f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    lines = []
    try:
        lines.append(f"url: {driver.current_url}")
    except Exception as exc:  # the browser may be gone: save what can be saved
        lines.append(f"url: unknown ({type(exc).__name__}: {exc})")
    png, html = folder / f"{stem}.png", folder / f"{stem}.html"
    try:
        if not driver.get_screenshot_as_file(str(png)):
            raise RuntimeError("chromedriver returned no screenshot")
        lines.append(f"screenshot: {png}")
    except Exception as exc:
        lines.append(f"screenshot: not saved ({type(exc).__name__}: {exc})")
    try:
        html.write_text(driver.page_source, encoding="utf-8")
        lines.append(f"page source: {html}")
    except Exception as exc:
        lines.append(f"page source: not saved ({type(exc).__name__}: {exc})")
    if logs is not None:
        log = folder / f"{stem}.log"
        log.write_text(logs, encoding="utf-8")
        lines.append(f"hub and subsite logs: {log}")
    return lines


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item (``item.rep_setup``, ``rep_call``, ``rep_teardown``) and,
    when the test body of a browser test failed, save its artifacts now (the browser is still open:
    fixtures are torn down after this report) and name them in the report."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    driver = getattr(item, "funcargs", {}).get("chrome")
    if report.when == "call" and report.failed and driver is not None:
        demo = item.funcargs.get("demo")
        try:
            lines = save_artifacts(driver, item.nodeid, logs=demo.full_logs() if demo is not None else None)
        except Exception as exc:  # never hide the test's own failure behind ours
            lines = [f"artifacts not saved: {type(exc).__name__}: {exc}"]
        report.sections.append(("browser artifacts", "\n".join(lines)))
    return report


# -- the browser ---------------------------------------------------------------------------------


@pytest.fixture
def chrome(chromium_paths, tmp_path, monkeypatch):
    """A fresh headless Chromium: its own profile, nothing fetched from the network by Selenium.

    A failed test's screenshot is taken by ``pytest_runtest_makereport`` above, before this quits."""
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
