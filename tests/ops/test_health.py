"""GET /healthz and GET /readyz: uncached, unauthenticated, and /readyz really checks the database
(bounded in time), the signing keys and the data key (503 with the failed check named)."""
from __future__ import annotations

import time

from idp import create_app
from tests.conftest import _config
from tests.e2e.hub import free_port


def test_healthz_answers_uncached(client):
    resp = client.get("/healthz")
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "ok"}
    assert resp.headers["Cache-Control"] == "no-store"


def test_readyz_ready_lists_each_check(client):
    resp = client.get("/readyz")
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json() == {"status": "ready",
                               "checks": {"database": "ok", "signing_keys": "ok", "data_key": "ok"}}
    assert resp.headers["Cache-Control"] == "no-store"


def test_readyz_503_fast_when_the_database_is_unreachable(instance):
    """A PostgreSQL URL on a closed port: 503 within the connect timeout, not a hang or a 500."""
    url = f"postgresql+psycopg://idp:secret-password@127.0.0.1:{free_port()}/idp"
    app = create_app(_config(instance, db_url=url))
    started = time.monotonic()
    resp = app.test_client().get("/readyz")
    assert time.monotonic() - started < 5
    assert resp.status_code == 503
    body = resp.get_json()
    assert body["status"] == "not ready"
    assert body["checks"]["database"].startswith("error: ")
    assert body["checks"]["signing_keys"] == "ok" and body["checks"]["data_key"] == "ok"
    assert "secret-password" not in resp.get_data(as_text=True)  # no driver message, no URL
    assert resp.headers["Cache-Control"] == "no-store"


def test_readyz_503_when_the_signing_keys_are_gone(app, client, instance):
    (instance / "keys" / "signing" / "keys.json").unlink()
    resp = client.get("/readyz")
    assert resp.status_code == 503
    assert resp.get_json()["checks"]["signing_keys"] == "error: KeyStoreError"


def test_readyz_503_before_the_keys_are_loaded(instance):
    app = create_app(_config(instance), load_keys=False)
    resp = app.test_client().get("/readyz")
    assert resp.status_code == 503
    assert resp.get_json()["checks"] == {"database": "ok", "signing_keys": "not loaded", "data_key": "not loaded"}
