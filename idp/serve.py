"""``idp serve``: gunicorn with the application factory, bound to the given address."""
from __future__ import annotations

from gunicorn.app.base import BaseApplication


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


def run(host: str, port: int, workers: int, threads: int, worker_connections: int = 1000,
        access_log: bool = False) -> None:
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
        "logger_class": "idp.logs.GunicornLogger",
        "errorlog": "-",
        "loglevel": "warning",
        "proc_name": "idp",
    }).run()
