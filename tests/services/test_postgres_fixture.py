"""Tests for the throwaway PostgreSQL server used by the test suite."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest
import sqlalchemy as sa

from . import postgres as pgmod
# Also imported by tests/conftest.py?  Harmless: both resolve to the one
# shared server (see fixtures._registry).
from .fixtures import postgres_database, postgres_server, postgres_url  # noqa: F401,F811
from .postgres import PostgresServer, reap_stale_servers, require_postgres

pytestmark = pytest.mark.postgres

HERE = os.path.dirname(os.path.abspath(__file__))


def _proc_uid(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    raise AssertionError("no Uid line")


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(entry))
    return out


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a LISTEN TCP socket on ``port`` (from /proc/net)."""
    found = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    local, _remote, state = line.split()[1:4]
                    addr, hexport = local.split(":")
                    if state == "0A" and int(hexport, 16) == port:
                        found.add(addr)
        except OSError:
            continue
    return found


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait_for(pred, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


# --------------------------------------------------------------------------
# the shared server (one for the module / session)
# --------------------------------------------------------------------------

def test_url_works_with_sqlalchemy_and_psycopg(postgres_url):
    assert postgres_url.startswith("postgresql+psycopg://idp:")
    assert "@127.0.0.1:" in postgres_url
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("select 1")).scalar() == 1
            assert conn.execute(sa.text("show server_encoding")).scalar() == "UTF8"
            assert conn.execute(sa.text("select current_user")).scalar() == "idp"
    finally:
        engine.dispose()


def test_default_database_url(postgres_server):
    engine = sa.create_engine(postgres_server.url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("select current_database()")).scalar() == "idp"
    finally:
        engine.dispose()


def test_each_use_gets_a_fresh_empty_database(postgres_database):
    server, name, url = postgres_database
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            assert conn.execute(sa.text("select current_database()")).scalar() == name
            n = conn.execute(sa.text(
                "select count(*) from information_schema.tables where table_schema = 'public'"
            )).scalar()
            assert n == 0
            conn.execute(sa.text("create table t (x int)"))
    finally:
        engine.dispose()
    # create_database/drop_database round trip
    other = server.create_database("fixture_selftest_db")
    assert other.endswith("/fixture_selftest_db") and other != url
    assert server.execute("select 1 from pg_database where datname = 'fixture_selftest_db'", "postgres")
    server.drop_database("fixture_selftest_db")
    assert not server.execute("select 1 from pg_database where datname = 'fixture_selftest_db'", "postgres")


def test_listens_on_loopback_only(postgres_server):
    assert postgres_server.execute("show listen_addresses") == [("127.0.0.1",)]
    # 0100007F is 127.0.0.1 in /proc/net/tcp's little-endian hex
    assert _listening_addresses(postgres_server.port) == {"0100007F"}
    sock_dir = postgres_server.execute("show unix_socket_directories")[0][0]
    assert sock_dir == postgres_server.socket_dir
    assert sock_dir.startswith(postgres_server.topdir)


def test_password_is_required(postgres_server):
    import psycopg

    bad = postgres_server.dsn("postgres").replace(postgres_server.password, "wrong")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(bad)


def test_speed_settings(postgres_server):
    for name in ("fsync", "synchronous_commit", "full_page_writes"):
        assert postgres_server.execute(f"show {name}") == [("off",)]


def test_server_process_is_not_root(postgres_server):
    pid = postgres_server.pid
    assert pid
    uids = {_proc_uid(pid)} | {_proc_uid(c) for c in _children(pid)}
    if os.geteuid() == 0:
        assert 0 not in uids
        assert postgres_server.os_user != "root"
    else:
        assert uids == {os.geteuid()}


def test_stop_start_keeps_data_and_port(postgres_url, postgres_server):
    engine = sa.create_engine(postgres_url, pool_pre_ping=True)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("create table kept (v text)"))
            conn.execute(sa.text("insert into kept values ('survives')"))
        port, url = postgres_server.port, postgres_server.url

        held = engine.connect()  # an open connection while we stop ("fast" kicks it)
        postgres_server.stop()
        assert not postgres_server.is_running()
        assert not _port_open(port)
        with pytest.raises(sa.exc.OperationalError):
            held.execute(sa.text("select 1"))
        held.close()

        postgres_server.start()
        assert postgres_server.is_running()
        assert (postgres_server.port, postgres_server.url) == (port, url)
        with engine.connect() as conn:  # pool_pre_ping replaces the dead connection
            assert conn.execute(sa.text("select v from kept")).scalar() == "survives"

        postgres_server.restart()
        with engine.connect() as conn:
            assert conn.execute(sa.text("select v from kept")).scalar() == "survives"
    finally:
        engine.dispose()


# --------------------------------------------------------------------------
# private servers: lifecycle and cleanup
# --------------------------------------------------------------------------

def test_context_manager_cleans_up():
    bindir = require_postgres()
    with PostgresServer(bindir=bindir) as server:
        topdir, pid, port = server.topdir, server.pid, server.port
        assert os.path.isdir(topdir) and pid and _port_open(port)
        server.stop(mode="immediate")  # crash-like stop; recovery on start
        server.start()
        pid = server.pid
    assert not os.path.exists(topdir)
    assert _wait_for(lambda: not pgmod._pid_alive(pid), 5)
    assert not _port_open(port)
    assert server.topdir is None and not server.is_running()
    server.close()  # idempotent


_ORPHAN_SCRIPT = textwrap.dedent(
    """
    import importlib.util, sys, time
    spec = importlib.util.spec_from_file_location("pgtest_orphan", sys.argv[1])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    server = mod.PostgresServer(bindir=sys.argv[2]).start()
    print(server.pid, server.topdir, server.port, flush=True)
    time.sleep(300)
    """
)


def test_no_server_left_behind_when_test_process_is_killed():
    """SIGKILL skips atexit/finalizers: the watchdog must clean up."""
    bindir = require_postgres()
    proc = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN_SCRIPT, os.path.join(HERE, "postgres.py"), bindir],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        pid_s, topdir, port_s = line.split()
        pid, port = int(pid_s), int(port_s)
        assert pgmod._pid_alive(pid) and os.path.isdir(topdir)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert _wait_for(lambda: not pgmod._pid_alive(pid) and not os.path.exists(topdir), 20), (
        f"server {pid} / {topdir} survived its owner"
    )
    assert not _port_open(port)


def test_reap_stale_servers(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / (pgmod.DIR_PREFIX + "stale")
    (stale / "data").mkdir(parents=True)
    (stale / pgmod.OWNER_FILE).write_text(str(dead.pid))
    alive = tmp_path / (pgmod.DIR_PREFIX + "alive")
    alive.mkdir()
    (alive / pgmod.OWNER_FILE).write_text(str(os.getpid()))
    unrelated = tmp_path / (pgmod.DIR_PREFIX + "no-owner-file")
    unrelated.mkdir()
    assert reap_stale_servers(str(tmp_path)) == 1
    assert not stale.exists() and alive.exists() and unrelated.exists()


# --------------------------------------------------------------------------
# availability rule
# --------------------------------------------------------------------------

def test_require_postgres_skips_outside_ci(monkeypatch):
    monkeypatch.setattr(pgmod, "find_bindir", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install postgresql"):
        require_postgres()


def test_require_postgres_fails_under_ci(monkeypatch):
    monkeypatch.setattr(pgmod, "find_bindir", lambda: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="postgresql"):
        require_postgres()


def test_require_postgres_returns_bindir():
    bindir = require_postgres()
    for name in ("initdb", "pg_ctl", "postgres"):
        assert os.access(os.path.join(bindir, name), os.X_OK)


def test_find_bindir_env_override(monkeypatch, tmp_path):
    real = require_postgres()
    monkeypatch.setenv("IDP_PG_BINDIR", real)
    assert pgmod.find_bindir() == real
    monkeypatch.setenv("IDP_PG_BINDIR", str(tmp_path))
    assert pgmod.find_bindir() is None
