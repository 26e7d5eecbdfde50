"""Forwarded client addresses are believed only from IDP_TRUSTED_PROXIES."""
import pytest


@pytest.fixture
def app_config():
    return {"TRUSTED_PROXIES": "10.0.0.0/8"}


def _ip_seen(client, remote, xff):
    from flask import request

    app = client.application
    seen = {}

    @app.get("/_ip")
    def _ip():  # a tiny probe route, registered for this test only
        seen["ip"] = request.remote_addr
        return "ok"

    client.get("/_ip", headers={"X-Forwarded-For": xff}, environ_base={"REMOTE_ADDR": remote})
    return seen["ip"]


def test_forwarded_for_from_trusted_proxy_is_used(instance, app_config):
    from idp import create_app
    from tests.conftest import _config

    app = create_app(_config(instance, **app_config))
    assert _ip_seen(app.test_client(), "10.1.2.3", "198.51.100.7, 10.9.9.9") == "198.51.100.7"


def test_forwarded_for_from_anyone_else_is_ignored(instance, app_config):
    from idp import create_app
    from tests.conftest import _config

    app = create_app(_config(instance, **app_config))
    assert _ip_seen(app.test_client(), "203.0.113.5", "198.51.100.7") == "203.0.113.5"
