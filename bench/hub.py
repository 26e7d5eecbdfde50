"""A throwaway hub for the benchmark: temp dir, environment, ``idp init``, a user, three clients,
and ``idp serve`` (Granian) on a free loopback port. Everything goes through the ``idp`` CLI,
as an operator would do it."""
from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import string
import tempfile
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def free_port(lo: int | None = None, hi: int | None = None) -> int:
    """A free TCP port on 127.0.0.1 (any, or the first free one in [lo, hi])."""
    candidates = range(lo, hi + 1) if lo is not None else [0]
    for port in candidates:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError(f"no free port in {lo}-{hi}")


def idp_command() -> list[str]:
    exe = Path(sys.executable).with_name("idp")
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-c", "import sys; from idp.cli import main; sys.exit(main())"]


def cli_default_threads() -> int:
    """The ``idp serve --threads`` default, read from the CLI itself."""
    try:
        from idp.cli import serve_command

        return next(p.default for p in serve_command.params if p.name == "threads")
    except Exception:  # idp not importable from this interpreter: the documented default
        return 2


def load_postgres_module():
    """tests/services/postgres.py, imported by path (tests/ is not a package we install)."""
    path = REPO / "tests" / "services" / "postgres.py"
    spec = importlib.util.spec_from_file_location("idp_bench_pgserver", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses/weakref helpers look the module up by name
    spec.loader.exec_module(mod)
    return mod


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise RuntimeError(f"server exited with {proc.returncode} before it was ready:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError) as e:
            last = e
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout:g} s ({last})")


class Hub:
    def __init__(self, *, database_url: str | None, workers: int, threads: int, keep: bool = False, log=print,
                 id_token_alg: str = "RS256"):
        self.tmp = Path(tempfile.mkdtemp(prefix="idp-bench-"))
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.workers, self.threads, self.keep, self.log = workers, threads, keep, log
        self.id_token_alg = id_token_alg  # the code-flow clients' registered ID token algorithm
        self.database_url = database_url or f"sqlite:///{self.tmp / 'idp.sqlite3'}"
        alphabet = string.ascii_letters + string.digits
        self.env = {
            **os.environ,
            "IDP_DATABASE_URL": self.database_url,
            "IDP_KEYS_DIR": str(self.tmp / "keys"),
            "IDP_SECRET_KEY": "".join(secrets.choice(alphabet) for _ in range(40)),
            "IDP_KEYS_PASSPHRASE": secrets.token_urlsafe(24),
            "IDP_ISSUER": self.issuer,
        }
        self.env.pop("IDP_ENV", None)
        self.username = "bench"
        self.password = "Load-" + secrets.token_urlsafe(12) + "-9x"  # must not contain the username
        self.proc: subprocess.Popen | None = None
        self.server_log = self.tmp / "serve.log"
        self.timings: dict[str, float] = {}
        # filled by setup()
        self.code_client: dict = {}
        self.sso_client: dict = {}
        self.cc_client: dict = {}
        self.code_redirect = "http://127.0.0.1:1/cb"
        self.sso_redirect = "http://127.0.0.1:2/cb"

    @property
    def backend(self) -> str:
        return self.database_url.split(":", 1)[0].split("+", 1)[0]

    def cli(self, *argv: str, timeout: float = 120) -> dict | list:
        t0 = time.perf_counter()
        p = subprocess.run(idp_command() + list(argv), env=self.env, cwd=str(REPO), capture_output=True, text=True,
                           timeout=timeout)
        self.timings[f"idp {' '.join(argv[:2])}"] = round(time.perf_counter() - t0, 2)
        if p.returncode != 0:
            raise RuntimeError(f"idp {' '.join(argv)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
        lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
        return json.loads(lines[-1])

    def setup(self) -> None:
        self.cli("init")
        self.cli("users", "create", "--username", self.username, "--password", self.password,
                 "--name", "Bench User", "--email", "bench@example.test")
        alg = ("--id-token-alg", self.id_token_alg)
        self.code_client = self.cli("clients", "create", "--name", "bench", "--redirect-uri", self.code_redirect,
                                    "--first-party", *alg)
        self.sso_client = self.cli("clients", "create", "--name", "bench-sso", "--redirect-uri", self.sso_redirect,
                                   "--first-party", *alg)
        self.cc_client = self.cli("clients", "create", "--name", "bench-service", "--grant-type", "client_credentials")

    def start(self) -> None:
        cmd = idp_command() + ["serve", "--port", str(self.port), "--workers", str(self.workers),
                               "--threads", str(self.threads)]
        t0 = time.perf_counter()
        with open(self.server_log, "ab") as log:
            self.proc = subprocess.Popen(cmd, env=self.env, cwd=str(REPO), stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_http(self.issuer + "/readyz", 60, self.proc, self.server_log)
        self.timings["serve ready"] = round(time.perf_counter() - t0, 2)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)  # our own session: Granian main + its workers
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)

    def server_log_tail(self, n: int = 4000) -> str:
        try:
            return self.server_log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def cleanup(self) -> None:
        self.stop()
        if not self.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
