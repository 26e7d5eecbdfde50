"""Operations: health and readiness probes, Prometheus metrics, request ids for the logs."""
from __future__ import annotations

from flask import Flask

from ..config import trusted_proxy_networks


def init_app(app: Flask) -> None:
    from . import health, metrics

    metrics.init_app(app)  # first: its timer starts before any other before_request hook
    app.register_blueprint(health.bp)


def wrap_wsgi(app: Flask) -> None:
    """The request-id middleware, and around it the access log (``IDP_ACCESS_LOG``), both inside
    ``TrustedProxies`` (which records the TCP peer and the client's address)."""
    from .requestid import RequestId

    app.wsgi_app = RequestId(app.wsgi_app, trusted_proxy_networks(app.config))
    if app.config.get("ACCESS_LOG"):
        from ..logs import AccessLog

        app.wsgi_app = AccessLog(app.wsgi_app)
