"""Logging without personal data or secrets.

The hub's URLs carry both in their query strings — ``login_hint`` may be a phone or ID number, and
``code``, ``state``, ``id_token_hint`` are credentials — and so do ``Referer`` headers, cookies and
the ``Authorization`` header. So every access log the hub can write omits query strings:

- the access log (only with ``IDP_ACCESS_LOG=1``) is written by the app itself, ``AccessLog`` (a WSGI
  middleware, so under ``idp serve`` or any other WSGI server alike; the server's own access log
  stays off): the request line and referrer without their query, no header but the User-Agent;
- the Werkzeug development server's request lines go through ``RedactQueryStrings``;
- SQL statements are logged, if ever, without their parameters (``hide_parameters`` on the engine)
  and without the rows they return;
- Authlib logs issued tokens at DEBUG, so its logger is held at WARNING unless set to INFO or above.

With ``IDP_LOG_FORMAT=json`` every line (the hub's loggers, the access log, Granian's own lines
under ``idp serve``) is one
JSON object: ``time``, ``level``, ``logger``, ``message``, ``request_id`` and only the extras named
in ``SAFE_EXTRAS``; the rules above hold unchanged.
"""
from __future__ import annotations

import json
import logging
import re
import sys
from datetime import datetime, timezone
from time import perf_counter

REDACTED = "?[query omitted]"
_QUERY = re.compile(r"\?[^\s\"'\x1b]*")


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


class StderrHandler(logging.StreamHandler):
    """The current ``sys.stderr`` at each write (like logging's last-resort handler)."""

    _stream_name = "stderr"

    def __init__(self):
        super().__init__()

    @property
    def stream(self):
        return getattr(sys, self._stream_name)

    @stream.setter
    def stream(self, _value):
        pass


class StdoutHandler(StderrHandler):
    """The current ``sys.stdout`` at each write (the access log's stream)."""

    _stream_name = "stdout"


ACCESS_LOGGER = "idp.access"
access_log = logging.getLogger(ACCESS_LOGGER)


class AccessLog:
    """WSGI middleware writing one access line per request to the ``idp.access`` logger (any WSGI server).

    Outside ``RequestId`` (the id is in the environ once the app has run) and inside
    ``TrustedProxies`` (``REMOTE_ADDR`` is already the client's address behind a trusted proxy). The
    line has the method, the path without its query, the protocol, status, body bytes, duration,
    client address, User-Agent and the Referer without its query: no cookie, no ``Authorization``,
    no other header, no user name. Logged once the response body is closed (so bytes and duration are
    whole); a request whose app raised is logged with status 500.
    """

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        started = perf_counter()
        state = {"status": "500"}

        def start(status, headers, exc_info=None):
            state["status"] = status
            return start_response(status, headers, exc_info)

        try:
            body = self.wsgi_app(environ, start)
        except BaseException:
            _access_line(environ, "500", 0, started)
            raise
        return _LoggedBody(body, environ, state, started)


class _LoggedBody:
    """Logs when the last chunk has been handed to the server (a server stopping right after the
    response may never get to ``close``), or at ``close`` if the body was not read to its end."""

    __slots__ = ("body", "environ", "state", "started", "sent", "logged")

    def __init__(self, body, environ, state, started):
        self.body, self.environ, self.state, self.started, self.sent = body, environ, state, started, 0
        self.logged = False

    def __iter__(self):
        for chunk in self.body:
            self.sent += len(chunk)
            yield chunk
        self._log()

    def _log(self):
        if not self.logged:
            self.logged = True
            _access_line(self.environ, self.state["status"], self.sent, self.started)

    def close(self):
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self._log()


def _access_line(environ, status: str, sent: int, started: float) -> None:
    try:
        code = int(str(status).split(" ", 1)[0])
    except ValueError:
        code = 0
    method = environ.get("REQUEST_METHOD") or "-"
    path = redact(environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO") or "")
    if environ.get("QUERY_STRING") and "?" not in path:
        path += REDACTED
    referrer = redact(environ.get("HTTP_REFERER") or "-")
    agent = environ.get("HTTP_USER_AGENT") or "-"
    remote = environ.get("REMOTE_ADDR") or "-"
    ms = round((perf_counter() - started) * 1000, 3)
    protocol = environ.get("SERVER_PROTOCOL") or "-"
    try:
        access_log.info('%s "%s %s %s" %s %s %.1fms "%s" "%s"', remote, method, path, protocol, code, sent, ms,
                        referrer, agent, extra={
                            "request_id": environ.get("idp.request_id") or "-", "method": method, "path": path,
                            "status": code, "bytes": sent, "duration_ms": ms, "remote_addr": remote,
                            "user_agent": agent, "referrer": referrer})
    except Exception:  # a log line never breaks a response
        logging.getLogger(__name__).exception("access log")


def install(log_format: str = "text", access: bool = False) -> None:
    """Filters on the process's loggers, and in JSON mode a JSON handler on the root (idempotent).

    ``access``: the ``idp.access`` logger writes its lines (``AccessLog``) to stdout, JSON or text.
    """
    if access and not access_log.handlers:
        handler = StdoutHandler()
        handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(
            "[%(asctime)s] [%(process)d] %(message)s", "%Y-%m-%d %H:%M:%S %z"))
        access_log.addHandler(handler)
        access_log.setLevel(logging.INFO)
        access_log.propagate = False
    if log_format == "json":
        root = logging.getLogger()
        if not any(getattr(h, "_idp_json", False) for h in root.handlers):
            from .ops.requestid import RequestIdFilter

            handler = StderrHandler()
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
