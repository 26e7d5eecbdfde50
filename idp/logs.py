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

With ``IDP_LOG_FORMAT=json`` every line (the hub's loggers, gunicorn's error and access logs) is one
JSON object: ``time``, ``level``, ``logger``, ``message``, ``request_id`` and only the extras named
in ``SAFE_EXTRAS``; the rules above hold unchanged.
"""
from __future__ import annotations

import json
import logging
import re
import sys
from datetime import datetime, timezone

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


# Attributes a record may carry (``extra=``) into a JSON line; anything else stays out.
SAFE_EXTRAS = ("method", "path", "status", "bytes", "duration_ms", "remote_addr", "user_agent", "referrer",
               "endpoint", "client_id", "grant_type", "pid")


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or "-",
        }
        for key in SAFE_EXTRAS:
            value = record.__dict__.get(key)
            if value is not None:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class _Stderr(logging.StreamHandler):
    """The current ``sys.stderr`` at each write (like logging's last-resort handler)."""

    def __init__(self):
        super().__init__()

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


class JsonGunicornLogger(GunicornLogger):
    """``GunicornLogger`` writing JSON lines; access lines carry the request id (``idp serve``)."""

    def setup(self, cfg):
        from .ops.requestid import RequestIdFilter

        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(JsonFormatter())
                if not any(isinstance(f, RequestIdFilter) for f in handler.filters):
                    handler.addFilter(RequestIdFilter())

    def access(self, resp, req, environ, request_time):
        if not self.access_log_enabled:
            return
        a = self.atoms(resp, req, environ, request_time)
        extra = {"request_id": environ.get("idp.request_id") or "-", "method": a["m"],
                 "path": redact(environ.get("RAW_URI") or environ.get("PATH_INFO") or ""),
                 "status": int(a["s"]) if str(a["s"]).isdigit() else a["s"], "bytes": a["B"],
                 "duration_ms": round(request_time.total_seconds() * 1000, 3), "remote_addr": a["h"],
                 "user_agent": a["a"], "referrer": a["f"]}
        try:
            self.access_log.info(a["r"], extra=extra)
        except Exception:
            self.exception("access log")


def install(log_format: str = "text") -> None:
    """Filters on the process's loggers, and in JSON mode a JSON handler on the root (idempotent)."""
    if log_format == "json":
        root = logging.getLogger()
        if not any(getattr(h, "_idp_json", False) for h in root.handlers):
            from .ops.requestid import RequestIdFilter

            handler = _Stderr()
            handler.setFormatter(JsonFormatter())
            handler.addFilter(RequestIdFilter())
            handler._idp_json = True
            root.addHandler(handler)
    werkzeug = logging.getLogger("werkzeug")
    if not any(isinstance(f, RedactQueryStrings) for f in werkzeug.filters):
        werkzeug.addFilter(RedactQueryStrings())
    engine = logging.getLogger("sqlalchemy.engine.Engine")
    if not any(isinstance(f, DropResultRows) for f in engine.filters):
        engine.addFilter(DropResultRows())
    authlib = logging.getLogger("authlib")
    if authlib.level < logging.INFO:  # unset or DEBUG: DEBUG lines carry whole token responses
        authlib.setLevel(logging.WARNING)
