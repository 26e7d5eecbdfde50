"""Logging without personal data or secrets.

The hub's URLs carry both in their query strings — ``login_hint`` may be a phone or ID number, and
``code``, ``state``, ``id_token_hint`` are credentials — and so do ``Referer`` headers, cookies and
the ``Authorization`` header. So every access log the hub can write omits query strings:

- ``idp serve`` (gunicorn) writes an access log only with ``IDP_ACCESS_LOG=1``, through
  ``GunicornLogger`` (also usable as ``gunicorn --logger-class idp.logs.GunicornLogger``): the
  request line and referrer without their query, no header but a few harmless ones;
- the Werkzeug development server's request lines go through ``RedactQueryStrings``;
- SQL statements are logged, if ever, without their parameters (``hide_parameters`` on the engine)
  and without the rows they return;
- Authlib logs issued tokens at DEBUG, so its logger is held at WARNING unless set to INFO or above.
"""
from __future__ import annotations

import logging
import re

from gunicorn.glogging import Logger

REDACTED = "?[query omitted]"
_QUERY = re.compile(r"\?[^\s\"'\x1b]*")
# Request and response headers an access log format may name; every other one is blanked.
_SAFE_HEADERS = {"user-agent", "content-type", "content-length", "accept-language", "x-request-id"}


def redact(text: str) -> str:
    """``GET /authorize?login_hint=13800138000 HTTP/1.1`` → ``GET /authorize?[query omitted] HTTP/1.1``."""
    return _QUERY.sub(REDACTED, text)


class RedactQueryStrings(logging.Filter):
    """Removes query strings from every message of a logger (the Werkzeug server's request log)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


class DropResultRows(logging.Filter):
    """SQLAlchemy logs every fetched row at DEBUG (names, ciphertexts): never let one through."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith("Row "))


class GunicornLogger(Logger):
    """Gunicorn's logger with access-log atoms that carry no query string, credential or cookie."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for key in list(atoms):
            if key.startswith("{") and (key.endswith("}e") or key[1:-2] not in _SAFE_HEADERS):
                atoms[key] = "-"
        atoms["r"] = "%s %s %s" % (environ.get("REQUEST_METHOD"), redact(environ.get("RAW_URI") or ""),
                                   environ.get("SERVER_PROTOCOL"))
        atoms["q"] = "-"
        atoms["f"] = redact(environ.get("HTTP_REFERER") or "-")
        atoms["u"] = "-"  # the Basic user name is a client_id at most, but never trust a header here
        return atoms


def install() -> None:
    """Filters on the process's loggers (idempotent)."""
    werkzeug = logging.getLogger("werkzeug")
    if not any(isinstance(f, RedactQueryStrings) for f in werkzeug.filters):
        werkzeug.addFilter(RedactQueryStrings())
    engine = logging.getLogger("sqlalchemy.engine.Engine")
    if not any(isinstance(f, DropResultRows) for f in engine.filters):
        engine.addFilter(DropResultRows())
    authlib = logging.getLogger("authlib")
    if authlib.level < logging.INFO:  # unset or DEBUG: DEBUG lines carry whole token responses
        authlib.setLevel(logging.WARNING)
