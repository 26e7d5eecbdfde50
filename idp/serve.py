"""``idp serve``: Granian (WSGI) with the application factory, bound to the given address.

Granian's main process starts ``workers`` processes; each builds its own app (``create_app()``, its
own database pool) and starts its own logout delivery worker, and answers on up to ``threads``
Python threads. A worker that dies (even SIGKILLed) is replaced at once; SIGTERM or SIGINT to the
main process stops the workers gracefully (in-flight requests finish; at most
``WORKERS_KILL_TIMEOUT`` seconds, then they are killed).

On Linux every Granian worker listens on its own ``SO_REUSEPORT`` socket and the kernel spreads
new connections over them. Such a socket would share the port with any other ``SO_REUSEPORT``
server of the same user, so ``run`` first checks that nobody holds the port (``PortInUse``).

The workers count metrics into one fresh ``PROMETHEUS_MULTIPROC_DIR`` per server start (removed
when the server stops), so ``GET /metrics`` on any worker adds up all of them, dead workers
included. Granian has no hook for a worker's exit, and none is needed: the hub's metrics are
counters and histograms (kept after a worker dies, by design) and gauges read from the database
at scrape time; ``prometheus_client``'s ``mark_process_dead`` only removes live-gauge files, of
which there are none. A live multiprocess gauge must not be added without such a hook.

Logs: Granian's own lines (start, workers spawned, respawned, stopped) go through the hub's
formatter (JSON lines when ``IDP_LOG_FORMAT`` is ``json``, or ``auto`` with ``IDP_ENV=production``);
Granian's access log stays off: with ``IDP_ACCESS_LOG=1`` the app writes it (``idp.logs.AccessLog``).
"""
from __future__ import annotations

import errno
import os
import shutil
import signal
import socket
import tempfile
import threading
import time

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Seconds a stopping worker may take to finish its requests before it is killed.
WORKERS_KILL_TIMEOUT = 10


class PortInUse(OSError):
    pass


def _load_app(_target: str):
    """Runs in each worker process, after the fork: nothing of the app exists in the main process."""
    # Until Granian installs the worker's own handlers (after this returns), the worker has the main
    # process's, which only set a flag in the main's (copied) state: a SIGTERM during start-up would be
    # lost and the stop would wait for WORKERS_KILL_TIMEOUT. A worker that is still starting has
    # nothing to finish: let the signal end it.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    from . import create_app, start_logout_worker

    from .dbread import hold_when_serving

    app = create_app()
    hold_when_serving(app)
    start_logout_worker(app)
    _exit_with_parent(os.getppid())
    inherited = {k: v for k, v in os.environ.items() if k.startswith("HTTP_") or k in _BODY_KEYS}
    return _WithoutServerHeaders(app, inherited) if inherited else app


_BODY_KEYS = ("CONTENT_TYPE", "CONTENT_LENGTH")


def _exit_with_parent(parent: int, interval: float = 1.0) -> None:
    """A Granian worker outlives a SIGKILLed main process and keeps serving on its own socket (and a
    restarted ``idp serve`` would find the port taken): stop gracefully once the parent is gone."""
    def watch():
        while os.getppid() == parent:
            time.sleep(interval)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="idp-parent-watch", daemon=True).start()


class _WithoutServerHeaders:
    """Granian starts every WSGI environ from a copy of the server's ``os.environ``, so a variable such
    as ``HTTP_PROXY`` or ``HTTP_X_FORWARDED_FOR`` in the server's environment would look like a request
    header the client never sent ("httpoxy"). Drops those the request did not override."""

    def __init__(self, wsgi_app, inherited: dict[str, str]):
        self.wsgi_app, self.inherited = wsgi_app, inherited

    def __call__(self, environ, start_response):
        for key, value in self.inherited.items():
            if environ.get(key) == value:
                del environ[key]
        return self.wsgi_app(environ, start_response)


def _log_config(log_format: str) -> dict:
    """Granian's ``log_dictconfig``: its loggers through the hub's formatter, on stderr."""
    if log_format == "json":
        formatter = {"()": "idp.logs.JsonFormatter"}
    else:
        formatter = {"format": "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s",
                     "datefmt": "%Y-%m-%d %H:%M:%S %z"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"idp": formatter},
        "handlers": {"stderr": {"class": "idp.logs.StderrHandler", "formatter": "idp"}},
        "loggers": {
            "_granian": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
            # Off (log_access=False); named so that nothing of Granian's default config remains.
            "granian.access": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
        },
    }


def ensure_port_free(host: str, port: int) -> None:
    """Raise ``PortInUse`` if any socket holds ``host:port`` (a plain bind, without ``SO_REUSEPORT``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT leftovers are no obstacle
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(exc.errno, f"{host}:{port}: Address already in use") from exc
            raise


def run(host: str, port: int, workers: int, threads: int, worker_connections: int = 1000,
        log_format: str = "text") -> None:
    from granian import Granian
    from granian.constants import Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels

    ensure_port_free(host, port)
    # Before any worker imports prometheus_client (it picks its storage on import).
    metrics_dir = tempfile.mkdtemp(prefix="idp-metrics-")
    os.environ[MULTIPROC_ENV] = metrics_dir
    os.environ["IDP_LOG_FORMAT"] = log_format  # "auto" resolved here, for the workers' create_app
    try:
        server = Granian(
            "idp.serve:app",  # a label only: _load_app builds the app
            address=host,
            port=port,
            interface=Interfaces.WSGI,
            websockets=False,
            workers=workers,
            blocking_threads=threads,
            # Connections a worker accepts at once (Granian counts connections, not requests: a
            # keep-alive connection holds its place while idle). Beyond it they wait in the kernel's
            # backlog. The DB pool and ``threads`` bound the work, so the default stays generous.
            backpressure=worker_connections,
            # Headers must arrive within 30 s; idle keep-alive connections are closed by the client
            # or proxy. The request body is not capped here (IDP_MAX_CONTENT_LENGTH caps it in the app).
            http1_settings=HTTP1Settings(header_read_timeout=30_000, keep_alive=True),
            log_level=LogLevels.info,
            log_dictconfig=_log_config(log_format),
            log_access=False,
            respawn_failed_workers=True,
            respawn_interval=1.0,
            workers_kill_timeout=WORKERS_KILL_TIMEOUT,
            process_name="idp",
        )
        server.serve(target_loader=_load_app)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
