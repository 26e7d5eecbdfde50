"""A live hub: ``idp init`` + ``idp serve`` as real processes on 127.0.0.1, provisioned with the CLI.

Used by the fixtures in ``tests/e2e/conftest.py`` and by ``tests/clients``. Nothing here imports
``idp``: the hub is only reached over HTTP and through its command line, like an operator would.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterable

import requests

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
IDP = BIN / "idp"
PASSWORD = "correct horse battery staple"
READY_TIMEOUT = 30.0
CLI_TIMEOUT = 120.0


def free_port() -> int:
    """A port that was free a moment ago (the kernel picks it; the small race is retried by callers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, limit: int = 6000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return text[-limit:] or "(empty)"


def clean_env(extra: dict) -> dict:
    """This process's environment without any IDP_* setting of the developer's, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IDP_", "SUBSITE_"))}
    env.update(extra)
    return env


class CliError(RuntimeError):
    pass


def stop_process(proc: subprocess.Popen | None, timeout: float = 10) -> None:
    """SIGTERM, wait, then SIGKILL; always reaps the process (no ResourceWarning)."""
    if proc is None:
        return
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


class LiveHub:
    """One ``idp serve`` process and the environment its CLI needs.

    ``issuer``   http://127.0.0.1:PORT
    ``env``      the environment the hub and its CLI run with (IDP_* set)
    ``cli(*args)`` runs ``idp ARGS`` with that environment; returns the parsed JSON line of stdout
    """

    def __init__(self, workdir: Path, database_url: str, backend: str):
        self.workdir = Path(workdir)
        self.backend = backend
        self.database_url = database_url
        self.keys_dir = self.workdir / "keys"
        self.keys_dir.mkdir(exist_ok=True)
        self.outbox_dir = self.workdir / "outbox"
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.env = clean_env({
            "IDP_ISSUER": self.issuer,
            "IDP_DATABASE_URL": database_url,
            "IDP_KEYS_DIR": str(self.keys_dir),
            "IDP_SECRET_KEY": secrets.token_urlsafe(30),  # 40 characters
            "IDP_KEYS_PASSPHRASE": secrets.token_urlsafe(24),  # an encrypted keystore, like production
            "IDP_OUTBOX_DIR": str(self.outbox_dir),  # codes "sent" by this hub (development outbox)
            "PYTHONUNBUFFERED": "1",
        })
        self.proc: subprocess.Popen | None = None
        self.log_path = self.workdir / "serve.log"
        self._log = None
        self._log_offset = 0

    def __repr__(self) -> str:
        return f"<LiveHub {self.backend} {self.issuer}>"

    # -- the command line ------------------------------------------------------

    def _argv(self, args: Iterable[str]) -> list[str]:
        if not IDP.exists():
            raise CliError(f"{IDP} not found: install the project into the venv (make install)")
        return [str(IDP), *map(str, args)]

    @staticmethod
    def _parse(argv, rc, out, err):
        if rc != 0:
            raise CliError(f"{' '.join(argv[1:])} exited {rc}:\n{err.strip()}")
        lines = [line for line in out.splitlines() if line.strip()]
        if not lines:
            raise CliError(f"{' '.join(argv[1:])} printed nothing on stdout; stderr:\n{err.strip()}")
        try:
            return json.loads(lines[-1])
        except ValueError as exc:
            raise CliError(f"{' '.join(argv[1:])}: stdout is not JSON: {lines[-1]!r}") from exc

    def cli(self, *args: str):
        """Run ``idp ARGS``; the JSON it printed, or CliError with its stderr on a non-zero exit."""
        argv = self._argv(args)
        res = subprocess.run(argv, env=self.env, cwd=self.workdir, capture_output=True, text=True,
                             timeout=CLI_TIMEOUT)
        return self._parse(argv, res.returncode, res.stdout, res.stderr)

    def cli_many(self, commands: list[list[str]]) -> list:
        """Several ``idp`` commands at once (each is a separate process; start-up dominates)."""
        procs = []
        try:
            for args in commands:
                argv = self._argv(args)
                procs.append((argv, subprocess.Popen(argv, env=self.env, cwd=self.workdir, text=True,
                                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)))
            results = []
            for argv, p in procs:
                out, err = p.communicate(timeout=CLI_TIMEOUT)
                results.append((argv, p.returncode, out, err))
        finally:
            for _, p in procs:
                if p.poll() is None:
                    p.kill()
                    p.communicate()
        return [self._parse(*r) for r in results]

    @staticmethod
    def user_args(username: str | None = None, password: str = PASSWORD, name: str | None = "张三",
                  **extra: str) -> tuple[list[str], dict]:
        username = username or "u" + secrets.token_hex(5)
        args = ["users", "create", "--username", username, "--password", password]
        if name:
            args += ["--name", name]
        for key, value in extra.items():
            args += ["--" + key.replace("_", "-"), value]
        return args, {"username": username, "password": password, "name": name}

    def create_user(self, username: str | None = None, password: str = PASSWORD, name: str | None = "张三",
                    **extra: str) -> dict:
        """A citizen account; returns {sub, username, password, name}."""
        args, info = self.user_args(username, password, name, **extra)
        return {**info, **self.cli(*args)}

    @staticmethod
    def client_args(name: str | None = None, redirect_uris: Iterable[str] | str | None = None,
                    first_party: bool = False, grant_types: Iterable[str] = (), scopes: Iterable[str] = (),
                    auth_method: str | None = None) -> tuple[list[str], dict]:
        if redirect_uris is None:
            # A loopback port nobody listens on: the browser helper stops before fetching it.
            redirect_uris = [f"http://127.0.0.1:{free_port()}/callback"]
        elif isinstance(redirect_uris, str):
            redirect_uris = [redirect_uris]
        redirect_uris = list(redirect_uris)
        args = ["clients", "create", "--name", name or "子站-" + secrets.token_hex(3)]
        for uri in redirect_uris:
            args += ["--redirect-uri", uri]
        for g in grant_types:
            args += ["--grant-type", g]
        for s in scopes:
            args += ["--scope", s]
        if auth_method:
            args += ["--auth-method", auth_method]
        if first_party:
            args.append("--first-party")
        return args, {"redirect_uri": redirect_uris[0] if redirect_uris else None, "redirect_uris": redirect_uris}

    def create_client(self, name: str | None = None, redirect_uris: Iterable[str] | str | None = None,
                      first_party: bool = False, grant_types: Iterable[str] = (), scopes: Iterable[str] = (),
                      auth_method: str | None = None) -> dict:
        """Register a relying party; returns {client_id, client_secret, redirect_uri, redirect_uris}."""
        args, info = self.client_args(name, redirect_uris, first_party, grant_types, scopes, auth_method)
        return {**info, **self.cli(*args)}

    # -- the server ------------------------------------------------------------

    def url(self, path: str) -> str:
        return self.issuer + path

    def server_log(self) -> str:
        if self._log is not None:
            self._log.flush()
        return _tail(self.log_path)

    def spawn(self, workers: int = 2) -> None:
        """Start ``idp serve`` (returns at once; see ``wait_ready``). Its output goes to ``serve.log``."""
        self._log = open(self.log_path, "ab")
        self._log_offset = self._log.tell()  # this attempt's output starts here
        self.proc = subprocess.Popen(
            self._argv(["serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(workers)]),
            env=self.env, cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)

    def start(self, workers: int = 2) -> None:
        """``idp serve`` on a free port; returns once GET /readyz answers 200 (or raises with its log)."""
        for _attempt in range(3):
            if self.proc is None:
                self.spawn(workers)
            try:
                self.wait_ready()
                return
            except _PortTaken:
                # Somebody took the port between free_port() and idp serve's bind: try another one.
                self.stop()
                self.port = free_port()
                self.issuer = f"http://127.0.0.1:{self.port}"
                self.env["IDP_ISSUER"] = self.issuer
            except BaseException:
                self.stop()
                raise
        raise RuntimeError(f"idp serve could not bind a port after 3 attempts:\n{self.server_log()}")

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        with requests.Session() as http:
            while True:
                log = self.server_log()
                mine = self.log_path.read_bytes()[self._log_offset:].decode(errors="replace")
                if "Connection in use" in mine or "Address already in use" in mine:
                    raise _PortTaken()  # whatever answers on the port now is not our hub
                if self.proc.poll() is not None:
                    raise RuntimeError(f"idp serve exited with {self.proc.returncode} before it was ready:\n{log}")
                try:
                    r = http.get(self.url("/readyz"), timeout=2)
                    if r.status_code == 200 and self._answers_with_our_keys(http):
                        return
                    last = f"HTTP {r.status_code}: {r.text[:300]}"
                except requests.RequestException as exc:
                    last = repr(exc)
                if time.monotonic() > deadline:
                    raise RuntimeError(f"idp serve not ready within {timeout:.0f} s ({last}); its log:\n"
                                       f"{self.server_log()}")
                time.sleep(0.1)

    def _answers_with_our_keys(self, http: requests.Session) -> bool:
        """Is it our server on the port? Its JWKS must list the keys ``idp init`` made in our keys dir."""
        ours = {p.stem for p in (self.keys_dir / "signing").glob("*.pem")}
        if not ours:  # keystore layout unknown: nothing to compare with
            return True
        published = {k.get("kid") for k in http.get(self.url("/jwks.json"), timeout=2).json().get("keys", [])}
        if not ours <= published:
            raise _PortTaken()
        return True

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


class _PortTaken(Exception):
    pass


def start_hub(workdir: Path, database_url: str | None = None, backend: str = "sqlite",
              provision: list[list[str]] | None = None, env: dict | None = None) -> tuple[LiveHub, list]:
    """``idp init``, then ``idp serve`` while the ``provision`` CLI commands run alongside.

    ``env`` adds settings (e.g. ``IDP_TRUSTED_PROXIES``) for the hub and its CLI.
    Returns the ready hub and the results of the provisioning commands. The caller stops it.
    """
    database_url = database_url or f"sqlite:///{Path(workdir) / 'idp.sqlite3'}"
    hub = LiveHub(workdir, database_url, backend)
    hub.env.update(env or {})
    init = hub.cli("init")
    assert init["database"] == "up to date", init
    assert len(init["keys_created"]) >= 1, init  # a fresh keystore: keys were made just now
    try:
        hub.spawn()
        # The CLI and the server start up in parallel; the CLI needs only the database and keys.
        results = hub.cli_many(provision) if provision else []
        hub.start()
    except BaseException:
        hub.stop()
        raise
    return hub, results


# -- one hub per backend per test process, shared by every fixture that asks for it ------------------

_hubs: dict[str, LiveHub] = {}
_failed: set[str] = set()


def _start_standard_hub(request, backend: str) -> LiveHub:
    """A hub with a citizen and three clients (see ``shared_hub``)."""
    workdir = request.getfixturevalue("tmp_path_factory").mktemp(f"hub-{backend}")
    database_url, cleanup = None, []
    if backend == "postgresql":
        from tests.services.postgres import ensure_running

        server = request.getfixturevalue("postgres_server")
        name = "e2e_" + secrets.token_hex(6)
        database_url = server.create_database(name)

        def drop():
            ensure_running(server)
            server.drop_database(name)

        cleanup.append(drop)
    elif backend != "sqlite":
        raise ValueError(backend)
    user_cmd, user = LiveHub.user_args(username="alice-" + secrets.token_hex(3), name="张三",
                                       email="alice@example.cn")
    commands, infos = [user_cmd], []
    for kw in ({"name": "市场监督管理局"},
               {"name": "人力资源和社会保障局", "first_party": True},
               {"name": "数据交换服务", "redirect_uris": [], "grant_types": ["client_credentials"]}):
        args, info = LiveHub.client_args(**kw)
        commands.append(args)
        infos.append(info)
    try:
        hub, results = start_hub(workdir, database_url, backend, provision=commands)
    except BaseException:
        for fn in cleanup:
            fn()
        raise
    hub.cleanup = cleanup
    hub.user = {**user, **results[0]}
    hub.rp, hub.rp_first_party, hub.service = ({**i, **r} for i, r in zip(infos, results[1:]))
    return hub


def shared_hub(request, backend: str) -> LiveHub:
    """The running hub for ``backend`` ("sqlite" or "postgresql") in this test process.

    Started on first use, stopped when the test session ends, so fixtures in different
    directories (tests/e2e, tests/clients) share it. Provisioned with the CLI while the server boots:

    ``hub.user``           a citizen (username, password, sub, name "张三", email)
    ``hub.rp``             a confidential client (client_secret_basic), not first-party: consent page
    ``hub.rp_first_party`` a second client registered with ``--first-party`` (no consent page)
    ``hub.service``        a client with only ``--grant-type client_credentials``
    """
    if backend == "postgresql":
        request.getfixturevalue("postgres_server")  # set up first, so torn down after the hub
    if backend in _failed:
        raise RuntimeError(f"the {backend} hub failed to start for an earlier test (see its error)")
    if backend not in _hubs:
        try:
            hub = _start_standard_hub(request, backend)
        except Exception:
            _failed.add(backend)  # don't pay for (and wait on) the same failure in every test
            raise

        def stop():
            _hubs.pop(backend, None)
            try:
                hub.stop()
            finally:
                for fn in hub.cleanup:
                    fn()

        # Finalizers of the session node run last-in first-out at the end of the session:
        # this one before postgres_server's (set up earlier), after every test.
        request.session.addfinalizer(stop)
        _hubs[backend] = hub
    return _hubs[backend]
