"""One id per request, in every log line about it and in the response's ``X-Request-Id`` header.

A load balancer's id (nginx ``$request_id``) is kept only when the TCP peer is one of
IDP_TRUSTED_PROXIES and the value looks like an id; anyone else's is replaced by a fresh one, so a
client cannot forge or inject text into the logs.
"""
from __future__ import annotations

import itertools
import logging
import os
import re

from flask import has_request_context, request

from ..proxy import in_networks

ENVIRON_KEY = "idp.request_id"
HEADER = "X-Request-Id"
_ACCEPTABLE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def _seed() -> None:
    global _prefix, _counter
    _prefix, _counter = os.urandom(10).hex(), itertools.count(1)


_seed()
os.register_at_fork(after_in_child=_seed)  # each worker process its own prefix


def new_id() -> str:
    """Unique, not secret: a random per-process prefix and a counter (no system call per request)."""
    return f"{_prefix}{next(_counter):012x}"


class RequestId:
    """WSGI middleware (inside ``TrustedProxies``, which records the TCP peer)."""

    def __init__(self, wsgi_app, trusted_networks):
        self.wsgi_app = wsgi_app
        self.networks = list(trusted_networks)

    def __call__(self, environ, start_response):
        given = environ.get("HTTP_X_REQUEST_ID")
        if (given is None or not self.networks or not _ACCEPTABLE.fullmatch(given)
                or not in_networks(environ.get("idp.peer_addr", ""), self.networks)):
            given = new_id()
        environ[ENVIRON_KEY] = environ["HTTP_X_REQUEST_ID"] = given

        def start(status, headers, exc_info=None):
            headers.append((HEADER, given))
            return start_response(status, headers, exc_info)

        return self.wsgi_app(environ, start)


def current() -> str | None:
    """The id of the request being handled in this thread, if any."""
    if has_request_context():
        return request.environ.get(ENVIRON_KEY)
    return None


class RequestIdFilter(logging.Filter):
    """Puts ``request_id`` on every record (``-`` outside a request: start-up, background workers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current() or "-"
        return True
