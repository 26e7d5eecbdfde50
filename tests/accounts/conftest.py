"""Fixtures for businesses and officials: a verified legal representative, an agent, a business."""
from __future__ import annotations

import pytest

from tests.accounts.support import TENCENT, citizen


@pytest.fixture
def boss(app):
    return citizen("boss", verified=True, name="马化腾")


@pytest.fixture
def clerk(app):
    return citizen("clerk", name="李经办")


@pytest.fixture
def business(boss):
    from idp.accounts.businesses import register_business

    return register_business(representative=boss, uscc=TENCENT, name="腾讯科技（深圳）有限公司")
