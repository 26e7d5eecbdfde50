"""The audit log is hash-chained: ``idp audit verify`` recomputes every link and names the first
event that was altered, removed or inserted behind the hub's back (a direct database edit)."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from idp.audit.service import GENESIS, record, verify_chain
from idp.db import db, transaction


def _events(n: int = 5) -> list[int]:
    ids = []
    for i in range(n):
        with transaction():
            ids.append(record("test.event", actor="cli", target=f"thing:{i}", detail={"n": i}).id)
    return ids


def _verify(runner):
    result = runner.invoke(args=["audit", "verify"])
    return result.exit_code, json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


def test_intact_chain_verifies_and_links_each_event_to_the_previous(app, runner):
    ids = _events()
    code, report, _ = _verify(runner)
    assert code == 0 and report["intact"] is True and report["first_broken_id"] is None
    assert report["events"] >= len(ids)
    rows = db.session.execute(text("SELECT id, prev_hash, hash FROM audit_event ORDER BY id")).all()
    assert rows[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in zip(rows, rows[1:]))


@pytest.mark.parametrize("edit", [
    "UPDATE audit_event SET outcome = 'failure' WHERE id = :id",
    "UPDATE audit_event SET actor = 'someone-else' WHERE id = :id",
    "UPDATE audit_event SET detail = '{\"n\": 99}' WHERE id = :id",
    "UPDATE audit_event SET at = '2020-01-01 00:00:00' WHERE id = :id",
])
def test_an_edited_row_is_caught_at_that_row(app, runner, edit):
    ids = _events()
    db.session.execute(text(edit), {"id": ids[2]})
    db.session.commit()
    code, report, err = _verify(runner)
    assert code == 1 and report["intact"] is False
    assert report["first_broken_id"] == ids[2]
    assert f"broken at event {ids[2]}" in err


def test_an_edit_that_also_recomputes_its_own_hash_breaks_the_next_link(app, runner):
    """Rewriting one event and its hash consistently still breaks the following event's prev_hash."""
    ids = _events()
    db.session.execute(text("UPDATE audit_event SET outcome = 'failure' WHERE id = :id"), {"id": ids[2]})
    db.session.commit()
    from idp.audit.models import AuditEvent
    from idp.audit.service import _digest
    ev = db.session.get(AuditEvent, ids[2])
    db.session.execute(text("UPDATE audit_event SET hash = :h WHERE id = :id"),
                       {"h": _digest(ev.prev_hash, ev), "id": ids[2]})
    db.session.commit()
    assert verify_chain()[1] == ids[3]


def test_a_removed_row_is_caught_at_the_next_one(app, runner):
    ids = _events()
    db.session.execute(text("DELETE FROM audit_event WHERE id = :id"), {"id": ids[1]})
    db.session.commit()
    code, report, _ = _verify(runner)
    assert code == 1 and report["first_broken_id"] == ids[2]


def test_an_inserted_row_is_caught(app, runner):
    ids = _events()
    last = db.session.execute(text("SELECT hash FROM audit_event ORDER BY id DESC LIMIT 1")).scalar()
    db.session.execute(text(
        "INSERT INTO audit_event (at, action, actor, target, outcome, ip, detail, prev_hash, hash) "
        "VALUES ('2026-01-01 00:00:00', 'seal.applied', 'person:x', 'seal:1', 'success', NULL, '{}', :prev, :h)"),
        {"prev": last, "h": "f" * 64})
    db.session.commit()
    code, report, _ = _verify(runner)
    assert code == 1 and report["first_broken_id"] > ids[-1]
