"""Prometheus metrics (``prometheus_client``), served at ``GET /metrics`` to ``IDP_METRICS_ALLOWED``.

Each event is counted at the one place it happens (``record_*`` below, called by the login
services, token issuance, logout delivery and the seal services). Under ``idp serve`` the workers
share one ``PROMETHEUS_MULTIPROC_DIR`` (set up by ``idp.serve``), so any worker's answer adds up
every worker's counts, dead workers included. Gauges of queued work are read from the database
at scrape time, so they are the same whichever node answers. Labels never carry a raw path,
an identifier or anything a client chose freely.
"""
from __future__ import annotations

import logging
import os
from time import perf_counter

from flask import Blueprint, Flask, Response, abort, current_app, request
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from ..config import networks
from ..db import db
from ..proxy import in_networks

log = logging.getLogger(__name__)
bp = Blueprint("metrics", __name__)

# Its _count series is the request count: one histogram costs one update per request less than a
# histogram and a counter (a few microseconds in multiprocess mode, where every update is a file write).
REQUESTS = Histogram("idp_http_request_duration_seconds",
                     "Time to answer an HTTP request, by endpoint (Flask endpoint name, 'unmatched' for "
                     "unknown paths), method and status class; _count is the number of requests.",
                     ["endpoint", "method", "status"],
                     buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
LOGINS = Counter("idp_logins", "Login attempts by method (password, otp, certificate, jwt-bearer, registration) "
                 "and outcome (success, failure, locked, second_factor_required).", ["method", "outcome"])
TOKENS = Counter("idp_tokens_issued", "Token responses issued, by grant type.", ["grant_type"])
LOGOUT_DELIVERIES = Counter("idp_logout_deliveries", "Back-channel logout delivery attempts by outcome "
                            "(delivered, retry, failed: gave up after the last attempt).", ["outcome"])
SEAL_APPLICATIONS = Counter("idp_seal_applications", "Seal applications by kind (pdf, cms) and outcome.",
                            ["kind", "outcome"])

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_STATUS_CLASSES = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}
_GRANT_URN = "urn:ietf:params:oauth:grant-type:"
# The labelled children of the request histogram, looked up without prometheus_client's lock.
_request_children: dict[tuple, Histogram] = {}


def record_login(method: str, outcome: str) -> None:
    LOGINS.labels(method, outcome).inc()


def record_token(grant_type: str) -> None:
    if grant_type.startswith(_GRANT_URN):
        grant_type = grant_type[len(_GRANT_URN):]
    TOKENS.labels(grant_type).inc()


def record_logout_delivery(outcome: str) -> None:
    LOGOUT_DELIVERIES.labels(outcome).inc()


def record_seal_application(kind: str, outcome: str) -> None:
    """One seal application (``kind`` pdf|cms) and its outcome (e.g. success, refused, failed)."""
    SEAL_APPLICATIONS.labels(kind, outcome).inc()


def _start_timer() -> None:
    request.environ["idp.started"] = perf_counter()


def _count_request(response):
    started = request.environ.get("idp.started")
    if started is None:  # not through before_request (our timer is the first hook): nothing to time
        return response
    rule = request.url_rule
    method = request.method
    observe_request(rule.endpoint if rule is not None else "unmatched", method if method in _METHODS else "other",
                    _STATUS_CLASSES.get(response.status_code // 100, "other"), perf_counter() - started)
    return response


def observe_request(endpoint: str, method: str, status_class: str, seconds: float) -> None:
    """One answered request (also for those answered before Flask, ``idp.oauth.documents``)."""
    key = (endpoint, method, status_class)
    child = _request_children.get(key)
    if child is None:
        child = _request_children[key] = REQUESTS.labels(*key)
    child.observe(seconds)


def _process_registry():
    """Every worker's metrics (multiprocess mode) or this process's."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


class _QueueCollector:
    """Logout deliveries waiting or given up on, counted in the database (one indexed query)."""

    def collect(self):
        from ..sessions.models import LogoutDelivery

        try:
            rows = dict(db.session.execute(
                select(LogoutDelivery.status, func.count()).where(LogoutDelivery.status.in_(("pending", "failed")))
                .group_by(LogoutDelivery.status)).all())
        except SQLAlchemyError as exc:
            db.session.rollback()
            log.warning("metrics: cannot count logout deliveries (%s)", type(exc).__name__)
            return
        gauge = GaugeMetricFamily("idp_logout_deliveries_queued",
                                  "Back-channel logout deliveries by status: pending (to be tried) or failed "
                                  "(given up; 'idp logout retry' queues them again).", labels=["status"])
        for status in ("pending", "failed"):
            gauge.add_metric([status], rows.get(status, 0))
        yield gauge


@bp.get("/metrics")
def metrics():
    """Prometheus text exposition format 0.0.4 (every Prometheus reads it; our names need nothing newer);
    404 unless asked directly (not through a proxy) from IDP_METRICS_ALLOWED."""
    allowed = current_app.extensions["idp.metrics_allowed"]
    if request.environ.get("idp.forwarded") or not in_networks(request.remote_addr or "", allowed):
        abort(404)
    queue = CollectorRegistry(auto_describe=False)
    queue.register(_QueueCollector())
    body = generate_latest(_process_registry()) + generate_latest(queue)
    return Response(body, content_type=CONTENT_TYPE_PLAIN_0_0_4, headers={"Cache-Control": "no-store"})


def init_app(app: Flask) -> None:
    app.extensions["idp.metrics_allowed"] = networks(app.config, "METRICS_ALLOWED")
    app.before_request(_start_timer)
    app.after_request(_count_request)
    app.register_blueprint(bp)
