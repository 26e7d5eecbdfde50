"""Fixtures for end-to-end tests against a live hub (``idp serve`` as a real process).

``live_hub`` is parametrized over the database backends (ids ``sqlite`` and ``postgresql``) and
shared by every test of the session on that backend (see ``tests.e2e.hub.shared_hub``): starting
one costs ``idp init``, a few CLI calls and a gunicorn boot. Tests share it safely because each
uses its own browser (cookie jar) and its own tokens.

Under pytest-xdist (``--dist loadgroup``) all tests on one backend go to one worker
(``xdist_group``), so each backend's hub starts once per run.
"""
from __future__ import annotations

from pathlib import Path

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


_GROUPED_DIRS = ("e2e", "clients")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Make ``--dist loadgroup`` group the live tests again on pytest >= 9.2.

    pytest 9.2 keeps node ids in ``item._id`` (a ``NodeId``), while pytest-xdist <= 3.8 still
    appends its ``@group`` suffix to ``item._nodeid``, so grouping silently stops and every worker
    starts its own hubs (pytest-dev/pytest-xdist#1386, fix proposed in #1388). This applies the
    suffix the new way, only to tests under tests/e2e and tests/clients, and does nothing when xdist
    already did it or the internals differ. Remove once xdist is fixed.
    """
    if not getattr(config.option, "loadgroup", False):
        return
    try:
        from _pytest.nodeid import coerce_node_id
    except ImportError:
        return
    tests_dir = Path(__file__).resolve().parent.parent
    for item in items:
        try:
            rel = Path(item.path).resolve().relative_to(tests_dir)
        except ValueError:
            continue
        if rel.parts[0] not in _GROUPED_DIRS or not hasattr(item, "_id"):
            continue
        names = {str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                 for m in item.iter_markers("xdist_group")}
        if names and "@" not in item.nodeid.rpartition("]")[2]:
            item._id = coerce_node_id(f"{item.nodeid}@{'_'.join(sorted(names))}")
