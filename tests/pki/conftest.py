"""Fixtures for the officials' CA: the CA itself (EC keys: fast), officials, openssl as the judge."""
from __future__ import annotations

import subprocess

import pytest

from tests.conftest import PASSWORD


def make_official(username="wangwu", name="王五", department=("scjgj", "本溪市市场监督管理局"), password=PASSWORD):
    """A person with an active staff membership, created directly (the officials CLI is elsewhere)."""
    from idp.accounts.models import Department, Official
    from idp.accounts.service import create_citizen
    from idp.db import db
    from sqlalchemy import select

    person = create_citizen(username=username, password=password, name=name)
    code, dept_name = department
    dept = db.session.execute(select(Department).where(Department.code == code)).scalar_one_or_none()
    if dept is None:
        dept = Department(code=code, name=dept_name)
        db.session.add(dept)
        db.session.flush()
    official = Official(person_id=person.id, department_id=dept.id, role="staff")
    db.session.add(official)
    db.session.commit()
    return official


@pytest.fixture
def ca(app):
    from idp.pki.service import authorities, ensure_ca

    ensure_ca()
    return authorities()


@pytest.fixture
def official(ca):
    return make_official()


def openssl(*args, input=None) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], input=input, capture_output=True, timeout=30)


@pytest.fixture
def chain_file(ca, runner, tmp_path):
    """`idp pki ca-cert` output: the issuing CA and the root, PEM."""
    r = runner.invoke(args=["pki", "ca-cert"])
    assert r.exit_code == 0, r.output
    path = tmp_path / "chain.pem"
    path.write_text(r.stdout)
    return path
