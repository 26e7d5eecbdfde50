"""A real, throwaway PostgreSQL server for the test suite.

Usage::

    with PostgresServer() as pg:            # initdb + start (about 1-2 s)
        url = pg.create_database("t_users")  # postgresql+psycopg://...
        ...
        pg.stop(); pg.start()                # or pg.restart(): data survives
    # leaving the block stops the server and deletes its directory

The server

* lives in a fresh temporary directory (data dir, unix socket dir, log,
  password file), removed again by :meth:`PostgresServer.close`;
* listens on 127.0.0.1 only, on a free random port that is kept across
  restarts (so URLs handed out stay valid);
* uses password (scram-sha-256) authentication for a superuser ``idp``
  with a generated password;
* runs with fsync/synchronous_commit/full_page_writes off (tests only!);
* when we are root, runs as a dedicated unprivileged OS user
  (``idp-pgtest``, created with ``useradd --system`` when missing), because
  PostgreSQL refuses to run as root.

No server outlives the test process: ``close()`` runs from ``__exit__``,
from an ``atexit`` hook and from a ``weakref.finalize`` finalizer; and a
small watchdog process (its own session, so a process-group kill doesn't
take it along) stops the server and deletes the directory as soon as the
owning process is gone, even after SIGKILL.  Servers abandoned in some
other way are reaped by :func:`reap_stale_servers` (run at every start).

Environment variables:

``IDP_PG_BINDIR``      directory with initdb/pg_ctl/postgres (overrides the search)
``IDP_PGTEST_OS_USER`` OS user to run PostgreSQL as when we are root
                       (default ``idp-pgtest``)
``IDP_PGTEST_TMPDIR``  where to create the temporary directories
                       (default: the system temp dir, /tmp when that is not
                       reachable by the OS user)
``CI``                 ``true``: :func:`require_postgres` fails instead of skipping
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from typing import Optional
from urllib.parse import quote

DEFAULT_OS_USER = "idp-pgtest"
DEFAULT_DB_USER = "idp"
DEFAULT_DB_NAME = "idp"
DIR_PREFIX = "idp-pgtest-"
OWNER_FILE = "owner.pid"
DEBIAN_PACKAGE = "postgresql"

_REQUIRED_BINARIES = ("initdb", "pg_ctl", "postgres")
_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class PostgresError(RuntimeError):
    """Starting, stopping or talking to the test server failed."""


# --------------------------------------------------------------------------
# finding the binaries / availability rule
# --------------------------------------------------------------------------

def _is_bindir(path: Optional[str]) -> bool:
    return bool(path) and all(
        os.access(os.path.join(path, b), os.X_OK) for b in _REQUIRED_BINARIES
    )


def _version_key(path: str):
    name = os.path.basename(os.path.dirname(path.rstrip("/")))
    return tuple(int(p) if p.isdigit() else 0 for p in re.split(r"[.\-]", name))


def find_bindir() -> Optional[str]:
    """Directory holding initdb/pg_ctl/postgres, or None if not installed.

    Order: ``$IDP_PG_BINDIR``; ``pg_config --bindir``; the highest
    ``/usr/lib/postgresql/*/bin``; the directory of ``initdb`` on PATH.
    """
    env = os.environ.get("IDP_PG_BINDIR")
    if env:
        return env if _is_bindir(env) else None
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10
            )
            cand = out.stdout.strip()
            if out.returncode == 0 and _is_bindir(cand):
                return cand
        except (OSError, subprocess.SubprocessError):
            pass
    cands = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    for cand in cands:
        if _is_bindir(cand):
            return cand
    initdb = shutil.which("initdb")
    if initdb:
        cand = os.path.dirname(os.path.realpath(initdb))
        if _is_bindir(cand):
            return cand
        cand = os.path.dirname(initdb)
        if _is_bindir(cand):
            return cand
    return None


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def require_postgres() -> str:
    """Return the PostgreSQL bin directory, or skip / fail the current test.

    Not installed: under ``CI=true`` the test fails (CI must have every
    service), elsewhere it is skipped with a hint at the Debian package.
    """
    import pytest

    bindir = find_bindir()
    if bindir:
        return bindir
    msg = (
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found "
        "(looked at $IDP_PG_BINDIR, pg_config --bindir, /usr/lib/postgresql/*/bin, PATH); "
        f"install the Debian package '{DEBIAN_PACKAGE}' (apt-get install {DEBIAN_PACKAGE})"
    )
    if in_ci():
        pytest.fail(msg + " -- required under CI=true", pytrace=False)
    pytest.skip(msg)
    raise AssertionError("unreachable")  # pragma: no cover


# --------------------------------------------------------------------------
# OS user handling (PostgreSQL refuses to run as root)
# --------------------------------------------------------------------------

def _is_root() -> bool:
    return os.geteuid() == 0


def ensure_os_user(name: Optional[str] = None) -> pwd.struct_passwd:
    """Return (creating it if needed) the unprivileged user to run PG as."""
    name = name or os.environ.get("IDP_PGTEST_OS_USER") or DEFAULT_OS_USER
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    nologin = next(
        (p for p in ("/usr/sbin/nologin", "/sbin/nologin", "/bin/false") if os.path.exists(p)),
        "/bin/false",
    )
    err = ""
    try:
        res = subprocess.run(
            [useradd, "--system", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", nologin, "--user-group", name],
            capture_output=True, text=True, timeout=30,
        )
        err = res.stderr.strip()
    except OSError as exc:
        err = str(exc)
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    # Fall back to an existing unprivileged account.
    for fallback in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(fallback)
        except KeyError:
            continue
    raise PostgresError(f"cannot create OS user {name!r} for PostgreSQL: {err}")


def _world_traversable(path: str) -> bool:
    path = os.path.realpath(path)
    while True:
        try:
            if not os.stat(path).st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
        parent = os.path.dirname(path)
        if parent == path:
            return True
        path = parent


def _base_tmpdir(as_other_user: bool) -> str:
    base = os.environ.get("IDP_PGTEST_TMPDIR") or tempfile.gettempdir()
    if as_other_user and not _world_traversable(base):
        base = "/tmp"
    return base


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------

def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is not alive for our purposes
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _postmaster_pid(datadir: str) -> Optional[int]:
    try:
        with open(os.path.join(datadir, "postmaster.pid")) as f:
            return int(f.readline().strip())
    except (OSError, ValueError):
        return None


def _quote_ident(name: str) -> str:
    if not _IDENT_RE.match(name):
        raise ValueError(f"invalid database name {name!r} (use [A-Za-z_][A-Za-z0-9_]*)")
    return '"' + name + '"'


# The watchdog: started in its own session; blocks reading a pipe whose only
# write end is held by the owning process.  EOF means the owner is gone (or
# called close(), which removes the directory first); then stop whatever is
# still running in the directory and remove it.
_WATCHDOG_CODE = r"""
import os, shutil, signal, subprocess, sys, time
fd, pg_ctl, datadir, topdir, uid, gid = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
while True:
    try:
        if not os.read(fd, 4096):
            break
    except InterruptedError:
        continue
    except OSError:
        break
if os.path.isdir(topdir):
    kw = {}
    if os.geteuid() == 0 and uid != 0:
        kw = dict(user=uid, group=gid, extra_groups=[])
    if os.path.exists(os.path.join(datadir, "postmaster.pid")):
        try:
            subprocess.run([pg_ctl, "stop", "-D", datadir, "-m", "immediate", "-w", "-t", "20"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=topdir,
                           timeout=30, **kw)
        except Exception:
            pass
        try:
            pid = int(open(os.path.join(datadir, "postmaster.pid")).readline())
            os.kill(pid, signal.SIGKILL)
        except Exception:
            pass
    shutil.rmtree(topdir, ignore_errors=True)
"""


_live_servers: "weakref.WeakSet[PostgresServer]" = weakref.WeakSet()


def _close_all_at_exit() -> None:
    for srv in list(_live_servers):
        try:
            srv.close()
        except Exception:
            pass


atexit.register(_close_all_at_exit)


def _cleanup(state: dict) -> None:
    """Stop the server and delete its directory; safe to call repeatedly.

    Works on a plain dict so it can serve as a weakref finalizer.
    """
    with state["lock"]:
        topdir = state.get("topdir")
        if topdir and os.path.isdir(topdir):
            datadir = state["datadir"]
            if os.path.exists(os.path.join(datadir, "postmaster.pid")):
                for mode in ("fast", "immediate"):
                    try:
                        subprocess.run(
                            [state["pg_ctl"], "stop", "-D", datadir, "-m", mode, "-w", "-t", "30"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            timeout=40, cwd="/", **state["run_kw"],
                        )
                    except Exception:
                        pass
                    pid = _postmaster_pid(datadir)
                    if pid is None or not _pid_alive(pid):
                        break
                else:
                    pid = _postmaster_pid(datadir)
                    if pid:
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except OSError:
                            pass
            shutil.rmtree(topdir, ignore_errors=True)
        state["topdir"] = None
        wfd = state.pop("watchdog_fd", None)
        if wfd is not None:
            try:
                os.close(wfd)  # releases the watchdog, which finds nothing to do
            except OSError:
                pass
        proc = state.pop("watchdog", None)
        if proc is not None:
            try:
                proc.wait(timeout=10)
            except Exception:
                pass


def reap_stale_servers(base: Optional[str] = None) -> int:
    """Stop and delete test servers whose owning process has died.

    Returns the number of directories removed.  Only directories created by
    this module (prefix + owner file) are touched.
    """
    bases = {base} if base else {_base_tmpdir(False), "/tmp"}
    count = 0
    for b in bases:
        for topdir in glob.glob(os.path.join(b, DIR_PREFIX + "*")):
            try:
                with open(os.path.join(topdir, OWNER_FILE)) as f:
                    owner = int(f.read().strip())
            except (OSError, ValueError):
                continue
            if _pid_alive(owner):
                continue
            datadir = os.path.join(topdir, "data")
            pid = _postmaster_pid(datadir)
            if pid and _pid_alive(pid):
                try:
                    os.kill(pid, signal.SIGQUIT)  # immediate shutdown
                    for _ in range(100):
                        if not _pid_alive(pid):
                            break
                        time.sleep(0.05)
                    else:
                        os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            shutil.rmtree(topdir, ignore_errors=True)
            count += 1
    return count


# --------------------------------------------------------------------------
# the server
# --------------------------------------------------------------------------

class PostgresServer:
    """A throwaway PostgreSQL cluster; see the module docstring."""

    def __init__(
        self,
        *,
        bindir: Optional[str] = None,
        user: str = DEFAULT_DB_USER,
        password: Optional[str] = None,
        dbname: str = DEFAULT_DB_NAME,
        os_user: Optional[str] = None,
        port: Optional[int] = None,
        settings: Optional[dict] = None,
        start_timeout: int = 30,
    ) -> None:
        self.bindir = bindir or find_bindir()
        if not self.bindir:
            raise PostgresError(
                f"PostgreSQL binaries not found; install the Debian package '{DEBIAN_PACKAGE}'"
            )
        _quote_ident(user)
        _quote_ident(dbname)
        self.user = user
        self.password = password or secrets.token_hex(16)
        self.dbname = dbname
        self.host = "127.0.0.1"
        self.port: Optional[int] = port
        self.start_timeout = start_timeout
        self.settings = {
            "max_connections": 200,
            "shared_buffers": "64MB",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_wal_size": "1GB",
            "checkpoint_timeout": "30min",
            "log_min_messages": "warning",
            "log_line_prefix": "'%m [%p] %u@%d '",
        }
        if settings:
            self.settings.update(settings)

        self._as_other = _is_root()
        if self._as_other:
            pw = ensure_os_user(os_user)
            self.os_user, self._uid, self._gid = pw.pw_name, pw.pw_uid, pw.pw_gid
        else:
            self.os_user = pwd.getpwuid(os.geteuid()).pw_name
            self._uid, self._gid = os.geteuid(), os.getegid()

        self.topdir: Optional[str] = None
        self.datadir: Optional[str] = None
        self.socket_dir: Optional[str] = None
        self.logfile: Optional[str] = None
        self._state = {"lock": threading.RLock(), "topdir": None, "datadir": None,
                       "pg_ctl": self._bin("pg_ctl"), "run_kw": self._run_kw()}
        self._finalizer = weakref.finalize(self, _cleanup, self._state)
        self._initialized = False
        self._db_created = False

    # -- context manager ---------------------------------------------------

    def __enter__(self) -> "PostgresServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<PostgresServer {self.host}:{self.port} dir={self.topdir} running={self.is_running()}>"

    # -- URLs --------------------------------------------------------------

    def url_for(self, dbname: str) -> str:
        """SQLAlchemy URL (psycopg 3 driver) for database ``dbname``."""
        return (
            f"postgresql+psycopg://{quote(self.user, safe='')}:{quote(self.password, safe='')}"
            f"@{self.host}:{self.port}/{quote(dbname, safe='')}"
        )

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the default database (``idp``)."""
        return self.url_for(self.dbname)

    def dsn(self, dbname: Optional[str] = None) -> str:
        """libpq conninfo string, for ``psycopg.connect(dsn)``."""
        return (
            f"host={self.host} port={self.port} user={self.user} "
            f"password={self.password} dbname={dbname or self.dbname} connect_timeout=5"
        )

    # -- process helpers ---------------------------------------------------

    def _bin(self, name: str) -> str:
        return os.path.join(self.bindir, name)

    def _run_kw(self) -> dict:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LC_ALL": "C",
            "LANG": "C",
            "TZ": "UTC",
        }
        kw = {"env": env}
        if self._as_other:
            kw.update(user=self._uid, group=self._gid, extra_groups=[])
        return kw

    def _run(self, args, *, timeout: float = 60, check: bool = True):
        kw = self._run_kw()
        kw["env"]["HOME"] = self.topdir or "/tmp"
        res = subprocess.run(
            args, capture_output=True, text=True, timeout=timeout,
            cwd=self.topdir or "/", **kw,
        )
        if check and res.returncode != 0:
            raise PostgresError(
                f"{' '.join(map(str, args))} exited {res.returncode}:\n{res.stdout}\n{res.stderr}"
                + self._log_tail()
            )
        return res

    def _log_tail(self, n: int = 30) -> str:
        if not self.logfile:
            return ""
        try:
            with open(self.logfile, errors="replace") as f:
                lines = f.readlines()[-n:]
        except OSError:
            return ""
        return "\n--- server log (tail) ---\n" + "".join(lines)

    def _chown(self, path: str) -> None:
        if self._as_other:
            os.chown(path, self._uid, self._gid)

    # -- lifecycle ---------------------------------------------------------

    def _init(self) -> None:
        reap_stale_servers()
        topdir = tempfile.mkdtemp(prefix=DIR_PREFIX, dir=_base_tmpdir(self._as_other))
        os.chmod(topdir, 0o700)
        self.topdir = topdir
        self.datadir = os.path.join(topdir, "data")
        self.socket_dir = os.path.join(topdir, "sock")
        self.logfile = os.path.join(topdir, "postgres.log")
        with self._state["lock"]:
            self._state["topdir"] = topdir
            self._state["datadir"] = self.datadir
        with open(os.path.join(topdir, OWNER_FILE), "w") as f:
            f.write(str(os.getpid()))
        os.mkdir(self.socket_dir, 0o700)
        pwfile = os.path.join(topdir, "pwfile")
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.password + "\n")
        open(self.logfile, "a").close()
        for p in (topdir, self.socket_dir, pwfile, self.logfile):
            self._chown(p)
        self._start_watchdog()

        self._run([
            self._bin("initdb"), "-D", self.datadir, "-U", self.user,
            f"--pwfile={pwfile}", "-A", "scram-sha-256", "-E", "UTF8",
            "--locale=C", "--no-sync", "--no-instructions",
        ], timeout=120)
        os.unlink(pwfile)

        conf = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.socket_dir}'",
            "password_encryption": "'scram-sha-256'",
            **{k: v for k, v in self.settings.items()},
        }
        with open(os.path.join(self.datadir, "postgresql.auto.conf"), "a") as f:
            f.write("\n# idp test server\n")
            for k, v in conf.items():
                f.write(f"{k} = {v}\n")
        self._initialized = True

    def _start_watchdog(self) -> None:
        rfd, wfd = os.pipe()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", _WATCHDOG_CODE, str(rfd), self._bin("pg_ctl"),
                 self.datadir, self.topdir, str(self._uid), str(self._gid)],
                pass_fds=(rfd,), start_new_session=True,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                cwd="/",
            )
        finally:
            os.close(rfd)
        with self._state["lock"]:
            self._state["watchdog_fd"] = wfd
            self._state["watchdog"] = proc

    def start(self) -> "PostgresServer":
        """Create the cluster (first call) and start the server; idempotent."""
        _live_servers.add(self)
        if not self._initialized:
            self._init()
        if self.is_running():
            return self
        fixed_port = self.port is not None
        last_err: Optional[Exception] = None
        for _attempt in range(1 if fixed_port else 5):
            if self.port is None:
                self.port = free_port(self.host)
            res = self._run([
                self._bin("pg_ctl"), "start", "-D", self.datadir, "-l", self.logfile,
                "-w", "-t", str(self.start_timeout), "-o", f"-p {self.port}",
            ], timeout=self.start_timeout + 15, check=False)
            if res.returncode == 0:
                self._wait_accepting()
                if not self._db_created:
                    if self.dbname != "postgres" and not self.execute(
                        f"select 1 from pg_database where datname = '{self.dbname}'", "postgres"
                    ):
                        self.create_database(self.dbname)
                    self._db_created = True
                return self
            last_err = PostgresError(
                f"pg_ctl start exited {res.returncode}:\n{res.stdout}\n{res.stderr}" + self._log_tail()
            )
            if fixed_port or "could not bind" not in self._log_tail(10):
                break
            self.port = None  # port got taken in between: try another
        raise last_err  # type: ignore[misc]

    def _wait_accepting(self, timeout: float = 30) -> None:
        import gc
        import warnings

        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            error = None
            try:
                with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
                    conn.execute("select 1")
                return
            except psycopg.OperationalError as exc:
                error = str(exc)
            # A refused connect leaves a half-made connection object behind; collect it now (outside
            # the except block, which keeps it alive) so its ResourceWarning does not surface later
            # inside an unrelated test.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResourceWarning)
                gc.collect()
            if time.monotonic() > deadline:
                raise PostgresError(f"server does not accept connections: {error}" + self._log_tail())
            time.sleep(0.05)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server, keeping its data (``start()`` brings it back).

        ``mode``: ``fast`` (disconnect clients, clean shutdown), ``smart``
        (wait for clients) or ``immediate`` (like a crash; recovery on start).
        """
        if not self._initialized or not self.is_running():
            return
        self._run([self._bin("pg_ctl"), "stop", "-D", self.datadir, "-m", mode, "-w", "-t", "60"],
                  timeout=75)

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def close(self) -> None:
        """Stop the server and delete its directory.  Idempotent."""
        _cleanup(self._state)
        _live_servers.discard(self)
        self._initialized = False
        self._db_created = False
        self.topdir = self.datadir = self.socket_dir = self.logfile = None

    cleanup = close

    @property
    def pid(self) -> Optional[int]:
        """PID of the postmaster, or None when it is not running."""
        if not self.datadir:
            return None
        pid = _postmaster_pid(self.datadir)
        return pid if pid and _pid_alive(pid) else None

    def is_running(self) -> bool:
        return self.pid is not None

    # -- databases -----------------------------------------------------------

    def _admin(self):
        import psycopg

        return psycopg.connect(self.dsn("postgres"), autocommit=True)

    def create_database(self, name: Optional[str] = None) -> str:
        """Create an empty database (random name if none given); return its URL."""
        name = name or "test_" + secrets.token_hex(6)
        with self._admin() as conn:
            conn.execute(f"CREATE DATABASE {_quote_ident(name)} TEMPLATE template0 ENCODING 'UTF8'")
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting its clients; no error if absent."""
        with self._admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")

    def execute(self, sql: str, dbname: Optional[str] = None) -> list:
        """Run one statement as superuser (autocommit); return rows, if any."""
        import psycopg

        with psycopg.connect(self.dsn(dbname), autocommit=True) as conn:
            cur = conn.execute(sql)
            return cur.fetchall() if cur.description else []


def ensure_running(server: PostgresServer) -> PostgresServer:
    """Start ``server`` again if a (fault) test left it stopped."""
    if not server.is_running():
        server.start()
    return server
