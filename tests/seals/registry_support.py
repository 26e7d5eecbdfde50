"""Helpers for seal tests: the hub's CA, a department with an official, a seal made by the registry."""
from __future__ import annotations

import pytest

from tests.pki.conftest import make_official  # noqa: F401 - re-exported for seal tests

DEPARTMENT = ("SCJGJ", "本溪市市场监督管理局")
SEAL_NAME = "本溪市市场监督管理局行政审批专用章"


@pytest.fixture
def ca(hub_ca):
    """Seal tests' CA comes with the hub's timestamp authority, as `idp init` makes them."""
    return hub_ca


@pytest.fixture
def official(ca):
    """zhangsan, an active official of SCJGJ."""
    return make_official(username="zhangsan", name="张三", department=DEPARTMENT)


@pytest.fixture
def seal(official):
    from idp.seals.service import create_seal

    return create_seal(DEPARTMENT[0], SEAL_NAME, actor="operator")


@pytest.fixture
def authorized_seal(seal):
    from idp.seals.service import authorize

    authorize(seal.id, "zhangsan", actor="operator")
    return seal
