"""One base class for domain errors and one place that renders every error: a page or JSON.

Never a stack trace: unexpected exceptions are logged with a reference and answered with a
generic page (500) or, for database outages, 503.

Messages are written in English and marked for translation: ``DomainError(_l("..."))`` (lazy, so
the text is chosen when it is shown). A page shows it in the person's language; JSON for protocol
clients carries the English text as ``error_description`` (RFC 6749 §5.2: for developers, ASCII).
"""
from __future__ import annotations

import logging
import secrets

from flask import Flask, jsonify, render_template, request
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import OperationalError, InterfaceError
from werkzeug.exceptions import HTTPException

from .i18n import in_english

log = logging.getLogger(__name__)


class DomainError(Exception):
    """A refusal we expect: ``code`` for machines, ``message`` safe to show, ``detail`` private."""

    code = "invalid_request"
    status = 400

    def __init__(self, message, *, code: str | None = None, status: int | None = None, detail: str = ""):
        super().__init__(message)
        self.text = message  # as given: a lazy _l("...") or a plain string
        self.code = code or self.code
        self.status = status or self.status
        self.detail = detail

    @property
    def message(self) -> str:
        """The message in the current language, as a plain (not yet HTML-escaped) string."""
        return str(self.text)

    @message.setter
    def message(self, value) -> None:
        self.text = value


def require_csrf_token(value: str | None, message) -> None:
    """Forms checked by hand (views that also accept cross-site protocol POSTs) use this one rule."""
    from flask_wtf.csrf import validate_csrf
    from wtforms.validators import ValidationError

    try:
        validate_csrf(value)
    except ValidationError as exc:
        raise DomainError(message, code="invalid_request", detail=str(exc)) from None


class NotFound(DomainError):
    code = "not_found"
    status = 404


class Conflict(DomainError):
    code = "conflict"
    status = 409


def wants_json() -> bool:
    if request.path.startswith(("/token", "/par", "/revoke", "/introspect", "/userinfo", "/jwks", "/.well-known/",
                                "/healthz", "/readyz")):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


# What a person is told for the HTTP errors Werkzeug raises (its own descriptions are English and
# technical; protocol clients still get them in JSON).
PAGE_MESSAGES = {
    400: _l("The request was not valid. Go back and try again."),
    404: _l("There is no page at this address. Check the address, or start again from the home page."),
    405: _l("This page cannot be opened this way. Go back and try again."),
    413: _l("The request is too large."),
    414: _l("The address is too long."),
    429: _l("Too many requests. Wait a few minutes and try again."),
}
GENERIC = _l("We could not complete this request. Go back and try again.")
UNAVAILABLE = _l("The service is temporarily unavailable. Please try again in a few minutes.")
EXPIRED_FORM = _l("The page has expired. Go back, reload the page and try again.")


def render_error(status: int, code: str, message):
    """``message`` is a lazy ``_l("...")`` or a plain string: the page shows it in the person's
    language, JSON in English."""
    if wants_json():
        resp = jsonify({"error": code, "error_description": in_english(message)})
    else:
        # str(): a lazy string would reach Jinja as markup (unescaped); a plain string is escaped.
        resp = render_template("error.html", status=status, code=code, message=str(message))
    return resp, status


def unexpected_failure():
    """Log the exception being handled under a new reference; the message that quotes it."""
    ref = secrets.token_hex(6)
    log.exception("unexpected error ref=%s", ref)
    return _l("Something went wrong on our side. If it happens again, quote reference %(ref)s.", ref=ref)


def init_app(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def _domain(err: DomainError):
        if err.detail:
            log.info("refused %s: %s", err.code, err.detail)
        return render_error(err.status, err.code, err.text)

    @app.errorhandler(HTTPException)
    def _http(err: HTTPException):
        code = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed",
                413: "request_too_large", 414: "uri_too_long"}.get(err.code or 500, "error")
        if wants_json():
            message = err.description or err.name
        elif isinstance(err, CSRFError):
            message = EXPIRED_FORM
        else:
            message = PAGE_MESSAGES.get(err.code or 500, GENERIC)
        resp, status = render_error(err.code or 500, code, message)
        if err.code == 405 and hasattr(err, "valid_methods") and err.valid_methods:
            resp = app.make_response((resp, status))
            resp.headers["Allow"] = ", ".join(err.valid_methods)
        return resp, status

    @app.errorhandler(Exception)
    def _unexpected(err: Exception):
        from .db import db

        db.session.rollback()
        if isinstance(err, (OperationalError, InterfaceError)):
            log.error("database unavailable: %s", type(err).__name__)
            return render_error(503, "temporarily_unavailable", UNAVAILABLE)
        return render_error(500, "server_error", unexpected_failure())
