"""One base class for domain errors and one place that renders every error: a page or JSON.

Never a stack trace: unexpected exceptions are logged with a reference and answered with a
generic page (500) or, for database outages, 503.
"""
from __future__ import annotations

import logging
import secrets

from flask import Flask, jsonify, render_template, request
from sqlalchemy.exc import OperationalError, InterfaceError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class DomainError(Exception):
    """A refusal we expect: ``code`` for machines, ``message`` safe to show, ``detail`` private."""

    code = "invalid_request"
    status = 400

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None, detail: str = ""):
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.status = status or self.status
        self.detail = detail


def require_csrf_token(value: str | None, message: str) -> None:
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
    if request.path.startswith(("/token", "/revoke", "/introspect", "/userinfo", "/jwks", "/.well-known/",
                                "/healthz", "/readyz")):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def render_error(status: int, code: str, message: str):
    if wants_json():
        resp = jsonify({"error": code, "error_description": message})
    else:
        resp = render_template("error.html", status=status, code=code, message=message)
    return resp, status


def init_app(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def _domain(err: DomainError):
        if err.detail:
            log.info("refused %s: %s", err.code, err.detail)
        return render_error(err.status, err.code, err.message)

    @app.errorhandler(HTTPException)
    def _http(err: HTTPException):
        code = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed",
                413: "request_too_large", 414: "uri_too_long"}.get(err.code or 500, "error")
        resp, status = render_error(err.code or 500, code, err.description or err.name)
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
            return render_error(503, "temporarily_unavailable", "The service is temporarily unavailable; try again shortly.")
        ref = secrets.token_hex(6)
        log.exception("unexpected error ref=%s", ref)
        return render_error(500, "server_error", f"Something went wrong on our side (reference {ref}).")
