"""One address guessing many login names is locked too (a per-address limit)."""
from __future__ import annotations

import pytest

from tests.conftest import PASSWORD


@pytest.fixture
def app_config():
    return {"LOGIN_IP_MAX_FAILURES": 3}


def test_one_address_guessing_many_names_is_locked(app, browser, user):
    for name in ("a1", "a2", "a3"):
        browser.login(username=name, password="wrong password!")
    assert browser.login(username="alice", password=PASSWORD).status_code == 429
