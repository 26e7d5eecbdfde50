"""Every seal application is a row and an audit event on the hash chain (issue 6, "Record"):
``idp audit verify`` catches a direct database edit of either."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select, text

from idp.db import db
from idp.seals.models import SealApplication
from tests.pki.conftest import P12_PASSWORD, quick_pkcs12  # noqa: F401
from tests.seals.registry_support import authorized_seal, ca, official, seal  # noqa: F401


@pytest.fixture
def applied(app, authorized_seal):
    """Two detached signatures applied by zhangsan through the service (the API's path)."""
    from idp.accounts.models import Person
    from idp.pki.models import Certificate
    from idp.pki.service import issue_pkcs12
    from idp.seals import apply as applying

    issue_pkcs12("zhangsan", P12_PASSWORD)
    person = db.session.execute(select(Person).where(Person.username == "zhangsan")).scalar_one()
    cert = db.session.execute(select(Certificate).where(Certificate.person_id == person.id)).scalar_one()
    proof = applying.Proof(applying.API, cert)
    return [applying.sign_file(person, authorized_seal.id, f"decision {i}".encode(), proof=proof).application.id
            for i in range(2)]


def verify(runner):
    r = runner.invoke(args=["audit", "verify"])
    return r.exit_code, json.loads(r.stdout.strip().splitlines()[-1])


def test_applications_match_their_events(app, runner, applied):
    code, report = verify(runner)
    assert code == 0, report
    assert report["seal_applications"] == {"checked": 2, "intact": True, "mismatched": [],
                                           "without_event": [], "without_row": []}
    rows = db.session.execute(select(SealApplication)).scalars().all()
    assert all(r.tsa_serial for r in rows)


@pytest.mark.parametrize("column,value", [
    ("document_sha256", "0" * 64),          # claim another document was sealed
    ("result_sha256", "f" * 64),
    ("tsa_serial", "abc"),
])
def test_an_edited_application_row_is_caught(app, runner, applied, column, value):
    db.session.execute(text(f"UPDATE seal_application SET {column} = :v WHERE id = :id"), {"v": value, "id": applied[0]})
    db.session.commit()
    code, report = verify(runner)
    assert code == 1 and report["intact"] is False
    assert report["first_broken_id"] is None  # the chain itself is intact: the row no longer matches it
    assert report["seal_applications"]["mismatched"] == [applied[0]]


def test_a_deleted_application_row_is_caught(app, runner, applied):
    db.session.execute(text("DELETE FROM seal_application WHERE id = :id"), {"id": applied[1]})
    db.session.commit()
    code, report = verify(runner)
    assert code == 1 and report["seal_applications"]["without_row"] == [applied[1]]


def test_an_application_row_inserted_behind_the_hubs_back_is_caught(app, runner, applied):
    db.session.execute(text(
        "INSERT INTO seal_application (seal_id, person_id, official_id, kind, channel, document_sha256, "
        "result_sha256, signature, tsa_serial, at) SELECT seal_id, person_id, official_id, kind, channel, "
        ":d, result_sha256, signature, tsa_serial, at FROM seal_application WHERE id = :id"),
        {"d": "1" * 64, "id": applied[0]})
    db.session.commit()
    code, report = verify(runner)
    assert code == 1 and len(report["seal_applications"]["without_event"]) == 1


def test_an_edited_event_breaks_the_chain(app, runner, applied):
    from idp.audit.models import AuditEvent
    ev = db.session.execute(select(AuditEvent).where(AuditEvent.action == "seal.applied")).scalars().first()
    db.session.execute(text("UPDATE audit_event SET target = 'seal:999' WHERE id = :id"), {"id": ev.id})
    db.session.commit()
    code, report = verify(runner)
    assert code == 1 and report["first_broken_id"] == ev.id
