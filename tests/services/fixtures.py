"""pytest fixtures for a real PostgreSQL server.

Import them into a conftest.py to make them available::

    from tests.services.fixtures import postgres_server, postgres_url  # noqa: F401

(or ``from services.fixtures import ...``, depending on the package layout;
importing it under both names is harmless: the shared server is kept in one
per-process registry).

``postgres_server``  session scope: one :class:`PostgresServer` for the whole
                     run (started on first use, stopped and deleted at the
                     end).  Tests may stop/restart it; ``postgres_url``
                     starts it again if a test left it stopped.
``postgres_url``     function scope: SQLAlchemy URL of a fresh, empty
                     database on that server, dropped after the test.
``postgres_database`` function scope: ``(server, dbname, url)`` for tests
                     that need the name too.
``private_postgres_server`` function scope: a server of its own (about 1.5 s
                     to start), for fault tests that would otherwise
                     disturb the shared one.

Without PostgreSQL installed these fixtures skip the test, or fail it under
``CI=true`` (see :func:`require_postgres`).
"""

from __future__ import annotations

import secrets
import sys
import types
from typing import Iterator, Tuple

import pytest

from .postgres import PostgresServer, ensure_running, require_postgres

# Kept in sys.modules rather than in a module global, so that even if this
# module gets imported under two names (tests.services.fixtures from a
# conftest, services.fixtures by pytest's rootdir-relative import of the
# test modules) there is still only one shared server per process.
_registry = sys.modules.setdefault("_idp_pgtest_registry", types.ModuleType("_idp_pgtest_registry"))
if not hasattr(_registry, "shared"):
    _registry.shared = None


def shared_server() -> PostgresServer:
    """The process-wide server behind ``postgres_server`` (started lazily)."""
    bindir = require_postgres()
    if _registry.shared is None:
        _registry.shared = PostgresServer(bindir=bindir)
    return ensure_running(_registry.shared)


def close_shared_server() -> None:
    server, _registry.shared = _registry.shared, None
    if server is not None:
        server.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    yield shared_server()
    close_shared_server()


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> Iterator[Tuple[PostgresServer, str, str]]:
    ensure_running(postgres_server)
    name = "test_" + secrets.token_hex(6)
    url = postgres_server.create_database(name)
    yield postgres_server, name, url
    # The test may have stopped the server (fault tests): bring it back so
    # the following tests find it, then drop the database.
    ensure_running(postgres_server)
    postgres_server.drop_database(name)


@pytest.fixture
def postgres_url(postgres_database: Tuple[PostgresServer, str, str]) -> str:
    return postgres_database[2]


@pytest.fixture
def private_postgres_server() -> Iterator[PostgresServer]:
    bindir = require_postgres()
    with PostgresServer(bindir=bindir) as server:
        yield server
