"""Fixtures for end-to-end tests against a live hub (``idp serve`` as a real process).

``live_hub`` is parametrized over the database backends (ids ``sqlite`` and ``postgresql``) and
shared by every test of the session on that backend (see ``tests.e2e.hub.shared_hub``): starting
one costs ``idp init``, a few CLI calls and a Granian boot. Tests share it safely because each
uses its own browser (cookie jar) and its own tokens.

Under pytest-xdist (``--dist loadgroup``) all tests on one backend go to one worker
(``xdist_group``), so each backend's hub starts once per run.
"""
from __future__ import annotations


import pytest
import requests

from tests.e2e.browser import HubBrowser
from tests.e2e.hub import shared_hub

BACKENDS = [
    pytest.param("sqlite", id="sqlite", marks=[pytest.mark.live, pytest.mark.xdist_group("live-sqlite")]),
    pytest.param("postgresql", id="postgresql",
                 marks=[pytest.mark.live, pytest.mark.postgres, pytest.mark.xdist_group("live-postgresql")]),
]


@pytest.fixture(scope="session", params=BACKENDS)
def live_hub(request):
    """A running, provisioned hub on the parametrized backend (a ``tests.e2e.hub.LiveHub``).

    The PostgreSQL variant gets its own database on the session's ``postgres_server`` (the
    per-test ``postgres_url`` cannot outlive a test): skipped without PostgreSQL, failed under CI=true.
    """
    return shared_hub(request, request.param)


@pytest.fixture(scope="session")
def discovery(live_hub) -> dict:
    """The hub's provider metadata, fetched once per hub."""
    with requests.Session() as http:
        resp = http.get(live_hub.url("/.well-known/openid-configuration"), timeout=10)
    resp.raise_for_status()
    return resp.json()


@pytest.fixture
def browser(live_hub):
    """A fresh browser (empty cookie jar) for the hub's test citizen."""
    with HubBrowser(live_hub.user["username"], live_hub.user["password"]) as b:
        yield b
