"""Departments and officials (staff memberships of citizens' accounts), and the ``official`` claim."""
from __future__ import annotations

import pytest

from idp.accounts import officials
from idp.db import transaction
from idp.errors import Conflict, DomainError, NotFound
from tests.accounts.support import audit_actions, citizen


@pytest.fixture
def depts(app):
    return (officials.create_department(code="SCJGJ", name="本溪市市场监督管理局"),
            officials.create_department(code="RSJ", name="本溪市人力资源和社会保障局"))


def test_department_codes_are_unique_and_checked(depts):
    with pytest.raises(Conflict, match="SCJGJ"):
        officials.create_department(code="SCJGJ", name="重复")
    with pytest.raises(DomainError, match="department code"):
        officials.create_department(code="a b", name="x")
    with pytest.raises(DomainError, match="name"):
        officials.create_department(code="OK", name="")
    assert [d.code for d in officials.list_departments()] == ["RSJ", "SCJGJ"]
    assert audit_actions().count("department.created") == 2


def test_official_claim_lists_active_memberships(depts):
    p = citizen("wang", name="王科长")
    assert officials.official_claim(p) == []
    officials.add_official(username="wang", department="SCJGJ", role="approver")
    officials.add_official(username="wang", department="RSJ")
    assert officials.official_claim(p) == [
        {"department": "RSJ", "department_name": "本溪市人力资源和社会保障局", "role": "staff"},
        {"department": "SCJGJ", "department_name": "本溪市市场监督管理局", "role": "approver"},
    ]
    officials.remove_official(username="wang", department="RSJ")
    assert [o["department"] for o in officials.official_claim(p)] == ["SCJGJ"]
    with transaction():
        depts[0].status = "closed"
    assert officials.official_claim(p) == []  # a closed department's staff are no longer its officials
    assert {"official.added", "official.removed"} <= set(audit_actions())


def test_membership_rules(depts):
    citizen("wang")
    officials.add_official(username="wang", department="SCJGJ")
    with pytest.raises(Conflict, match="already an official"):
        officials.add_official(username="wang", department="SCJGJ")
    with pytest.raises(NotFound, match="no department"):
        officials.add_official(username="wang", department="NOPE")
    with pytest.raises(NotFound, match="no active account"):
        officials.add_official(username="nobody", department="SCJGJ")
    with pytest.raises(DomainError, match="role"):
        officials.add_official(username="wang", department="RSJ", role="not a role!")
    officials.remove_official(username="wang", department="SCJGJ")
    with pytest.raises(NotFound, match="not an official"):
        officials.remove_official(username="wang", department="SCJGJ")
    officials.add_official(username="wang", department="SCJGJ", role="head")  # rejoining reuses the row
    assert [(o.role, p.username, d.code) for o, p, d in officials.list_officials()] == [("head", "wang", "SCJGJ")]
