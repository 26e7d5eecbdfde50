"""What the benchmarks of the hub's own commands share (``bench/prune.py``, ``bench/audit_verify.py``):
a hub set up but not serving, on SQLite or a throwaway PostgreSQL, and one ``idp`` command run as its
own process and measured (wall time, CPU time, peak RSS through ``os.wait4``)."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import run as R
from hub import Hub


@contextmanager
def set_up_hub(postgres: bool, log):
    """Yields ``(app, env, hub)``: the hub's database and keys made, this process's environment set to
    them (``env``, for the commands), and an app to seed the database with; all removed afterwards."""
    pg = None
    if postgres:
        pg = R.load_postgres_module().PostgresServer()
        pg.start()
    hub = Hub(database_url=pg.url if pg else None, workers=1, threads=1, keep=False, log=log)
    try:
        hub.setup()
        env = {**os.environ, **{k: v for k, v in hub.env.items() if k.startswith("IDP_")}}
        os.environ.update(env)
        from idp import create_app

        yield create_app(), env, hub
    finally:
        hub.cleanup()
        if pg:
            pg.close()


@dataclass
class Measured:
    exit_code: int
    stdout: str
    stderr: str
    wall: float  # seconds
    cpu: float  # seconds, user + system
    peak_rss_mib: float


def run_idp(args: list[str], env: dict) -> Measured:
    """``idp ARGS`` as its own process; its output goes through files, so a long one cannot block it."""
    idp = str(Path(sys.executable).with_name("idp"))
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([idp, *args], env=env, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        return Measured(os.waitstatus_to_exitcode(status), out.read(), err.read(), wall,
                        usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)
