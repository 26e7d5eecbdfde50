"""GET /metrics: Prometheus text exposition (parsed with prometheus_client's own parser), counters
that move with logins, failed logins and tokens, and no answer but 404 outside IDP_METRICS_ALLOWED."""
from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from idp.ops.metrics import record_seal_application
from tests.conftest import PASSWORD, exchange


def scrape(client) -> dict:
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.content_type.startswith("text/plain; version=0.0.4")
    assert resp.headers["Cache-Control"] == "no-store"
    samples = {}
    for family in text_string_to_metric_families(resp.get_data(as_text=True)):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_logins_tokens_and_requests_are_counted(client, browser, rp, user):
    before = scrape(client)
    assert browser.login("alice", "wrong password").status_code == 200  # the form again, with an error
    code, verifier, _ = browser.code(rp)
    assert exchange(client, rp, code, verifier).status_code == 200
    after = scrape(client)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("idp_logins_total", method="password", outcome="failure") == 1
    assert delta("idp_logins_total", method="password", outcome="success") == 1
    assert delta("idp_tokens_issued_total", grant_type="authorization_code") == 1
    token = dict(endpoint="oauth.token", method="POST", status="2xx")
    assert delta("idp_http_request_duration_seconds_count", **token) == 1
    assert delta("idp_http_request_duration_seconds_bucket", le="+Inf", **token) == 1
    assert delta("idp_http_request_duration_seconds_sum", **token) > 0
    # Labels carry endpoint names, never a path with identifiers in it.
    assert not any("/" in v for _, labels in after for k, v in labels if k == "endpoint")


def test_unknown_paths_share_one_label(client):
    client.get("/no/such/page/13800138000")
    samples = scrape(client)
    assert value(samples, "idp_http_request_duration_seconds_count", endpoint="unmatched", method="GET",
                 status="4xx") >= 1
    assert not any("13800138000" in str(key) for key in samples)


def test_locked_logins_are_counted(client, browser, user, app):
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        browser.login("alice", "wrong password")
    before = value(scrape(client), "idp_logins_total", method="password", outcome="locked")
    assert browser.login("alice", PASSWORD).status_code == 429
    assert value(scrape(client), "idp_logins_total", method="password", outcome="locked") == before + 1


def test_seal_applications_and_logout_queue(client, app):
    from idp.db import transaction
    from idp.sessions.models import LogoutDelivery

    before = scrape(client)
    record_seal_application("pdf", "success")
    with transaction():
        for n, status in enumerate(("pending", "pending", "failed", "delivered")):
            app.extensions["sqlalchemy"].session.add(LogoutDelivery(
                client_id="c", uri="https://rp.example.cn/bcl", sid="s", sub="x", jti=f"j{n}", status=status))
    after = scrape(client)
    assert (value(after, "idp_seal_applications_total", kind="pdf", outcome="success")
            - value(before, "idp_seal_applications_total", kind="pdf", outcome="success")) == 1
    assert value(after, "idp_logout_deliveries_queued", status="pending") == 2
    assert value(after, "idp_logout_deliveries_queued", status="failed") == 1


@pytest.mark.parametrize("environ", [
    {"REMOTE_ADDR": "203.0.113.9"},
    {"REMOTE_ADDR": "10.1.2.3"},
    # Loopback, but through a proxy (not a trusted one: it may be the public nginx): refused.
    {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "203.0.113.9"},
    {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_REAL_IP": "203.0.113.9"},
])
def test_metrics_404_outside_the_allowed_networks(client, environ):
    resp = client.get("/metrics", environ_base=environ)
    assert resp.status_code == 404
    assert b"idp_" not in resp.data


@pytest.mark.parametrize("app_config", [{"METRICS_ALLOWED": "10.0.0.0/8"}])
def test_metrics_allowed_networks_are_configurable(client):
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 200
    assert client.get("/metrics").status_code == 404  # loopback is no longer listed
