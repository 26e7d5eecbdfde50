"""``idp serve``: gunicorn with the application factory, bound to the given address.

The workers count metrics into one fresh ``PROMETHEUS_MULTIPROC_DIR`` per server start (removed
when the server stops), so ``GET /metrics`` on any worker adds up all of them; a worker that exits
is marked dead there (its counters stay in the sums). Logs are JSON lines when ``IDP_LOG_FORMAT``
is ``json``, or ``auto`` with ``IDP_ENV=production``.
"""
from __future__ import annotations

import os
import shutil
import tempfile

from gunicorn.app.base import BaseApplication

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class _Server(BaseApplication):
    def __init__(self, options: dict):
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from . import create_app, start_logout_worker

        app = create_app()
        start_logout_worker(app)
        return app


def _child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def run(host: str, port: int, workers: int, threads: int, worker_connections: int = 1000,
        access_log: bool = False, log_format: str = "text") -> None:
    # Before any worker imports prometheus_client (it picks its storage on import).
    metrics_dir = tempfile.mkdtemp(prefix="idp-metrics-")
    os.environ[MULTIPROC_ENV] = metrics_dir
    os.environ["IDP_LOG_FORMAT"] = log_format  # "auto" resolved here, for the workers' create_app
    try:
        _Server({
            "bind": f"{host}:{port}",
            "workers": workers,
            "threads": threads,
            "worker_class": "gthread" if threads > 1 else "sync",
            "keepalive": 5,
            # Per-worker cap on open connections: a low cap spreads keep-alive connections over the
            # workers (gthread lets the first worker to wake take a whole burst), at the price of
            # queueing connections beyond workers x cap.
            "worker_connections": worker_connections,
            "timeout": 30,
            "graceful_timeout": 10,
            # Access lines without query strings, cookies or credentials (idp.logs).
            "accesslog": "-" if access_log else None,
            "logger_class": "idp.logs.JsonGunicornLogger" if log_format == "json" else "idp.logs.GunicornLogger",
            "errorlog": "-",
            "loglevel": "warning",
            "proc_name": "idp",
            "child_exit": _child_exit,
        }).run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
