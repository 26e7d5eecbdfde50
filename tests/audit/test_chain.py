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


@pytest.mark.parametrize("position", [3, 4, 5, 6])  # the first, a middle and the last of a batch of 3, the next's first
def test_the_log_is_read_in_batches_and_a_break_at_a_batch_edge_is_caught(app, position):
    """``verify_chain`` reads the log a batch at a time (its memory does not grow with the log): each
    batch's first link is checked against the previous batch's last hash."""
    _events(8)
    ids = db.session.execute(text("SELECT id FROM audit_event ORDER BY id")).scalars().all()
    total, seen = len(ids), []
    assert verify_chain(progress=seen.append, batch=3) == (total, None)
    assert seen == list(range(3, total + 1, 3)) + ([total] if total % 3 else [])
    db.session.execute(text("UPDATE audit_event SET actor = 'someone-else' WHERE id = :id"), {"id": ids[position]})
    db.session.commit()
    assert verify_chain(batch=3) == (position + 1, ids[position])


def _listed(runner, *args) -> list[dict]:
    result = runner.invoke(args=["audit", "list", *args])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_audit_list_filters_and_prints_json_lines(app, runner):
    from datetime import timedelta

    from idp.audit.models import AuditEvent
    from idp.db import utcnow

    with transaction():
        record("seal.applied", actor="person:p1", target="seal:3", detail={"application": 1})
        record("seal.apply_refused", actor="person:p2", target="seal:3", outcome="refused", detail={"reason": "x"})
        record("session.ended", actor="person:p1", target="session:s1", detail={"reason": "user_logout"})
        record("sealed_off.test", actor="cli", target="seal:3")
    everything = _listed(runner)
    assert [e["action"] for e in everything][-4:] == ["seal.applied", "seal.apply_refused", "session.ended",
                                                      "sealed_off.test"]
    assert everything == sorted(everything, key=lambda e: e["id"])
    assert set(everything[-1]) == {"id", "at", "action", "actor", "target", "outcome", "ip", "detail", "hash"}
    assert [e["action"] for e in _listed(runner, "--action", "seal.*")] == ["seal.applied", "seal.apply_refused"]
    assert [e["action"] for e in _listed(runner, "--action", "session.ended", "--action", "seal.applied")] == \
           ["seal.applied", "session.ended"]
    assert [e["action"] for e in _listed(runner, "--actor", "person:p1")] == ["seal.applied", "session.ended"]
    assert [e["action"] for e in _listed(runner, "--target", "seal:3", "--limit", "2")] == \
           ["seal.applied", "seal.apply_refused"]
    assert _listed(runner, "--action", "seal_%") == []  # a prefix is text, not a pattern
    # times: with their zone, converted to UTC; --since inclusive, --until exclusive
    first = AuditEvent.query.filter_by(action="seal.applied").one()
    first.at = first.at - timedelta(days=2)
    db.session.commit()
    local = (utcnow() - timedelta(days=1)).replace(microsecond=0)
    east8 = (local + timedelta(hours=8)).isoformat() + "+08:00"
    assert "seal.applied" not in [e["action"] for e in _listed(runner, "--since", east8)]
    assert [e["action"] for e in _listed(runner, "--until", east8, "--action", "seal.*")] == ["seal.applied"]
    assert _listed(runner, "--since", local.isoformat() + "Z") == _listed(runner, "--since", east8)


@pytest.mark.parametrize("value", ["2026-11-01T00:00:00", "yesterday"])
def test_audit_list_refuses_a_time_without_its_zone_in_one_line(app, runner, value):
    result = runner.invoke(args=["audit", "list", "--since", value])
    assert result.exit_code == 2 and "--since" in result.output and "Traceback" not in result.output
