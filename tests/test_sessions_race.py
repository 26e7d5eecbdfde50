"""Two tabs authorizing the same client in one session at once must both succeed (no 500)."""
from __future__ import annotations

import pytest

from idp.db import db
from idp.dbread import write_together
from idp.sessions.models import SessionClient
from idp.sessions.service import note_client


def _session(user):
    from idp.sessions.models import SsoSession
    from idp.db import utcnow

    s = SsoSession(sid="s1", cookie_digest="d" * 64, person_id=user.id, auth_time=utcnow(), acr="a", amr=["pwd"],
                   idle_expires_at=utcnow(), absolute_expires_at=utcnow())
    db.session.add(s)
    db.session.commit()
    return s


def test_note_client_is_idempotent(app, user):
    s = _session(user)
    db.session.commit()
    write_together(note_client(s.id, "c1"))  # on the driver connection, committed at once
    db.session.execute(db.text("SELECT 1"))
    write_together(note_client(s.id, "c1"))  # the second writer, in the session's transaction: no IntegrityError
    db.session.commit()
    assert SessionClient.query.filter_by(session_id=s.id).count() == 1


@pytest.mark.postgres
def test_note_client_concurrent_on_postgresql(tmp_path, postgres_url, template_dir):
    """Two transactions insert the same (session, client) concurrently; neither fails (one writes
    in its request's open transaction, the other on the driver connection, ``dbread.write_together``)."""
    import shutil
    import threading

    from idp import create_app
    from idp.accounts.service import create_citizen
    from idp.migrations_lock import upgrade_database
    from tests.conftest import _config

    shutil.copytree(template_dir / "keys", tmp_path / "keys")
    app = create_app(_config(tmp_path, db_url=postgres_url))
    with app.app_context():
        upgrade_database()
        user = create_citizen(username="alice", password="correct horse battery")
        sid = _session(user).id
    barrier, errors = threading.Barrier(2), []

    def worker(in_session: bool):
        with app.app_context():
            try:
                if in_session:
                    db.session.execute(db.text("SELECT 1"))
                barrier.wait()
                write_together(note_client(sid, "c1"))
                db.session.commit()
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(in_session,)) for in_session in (True, False)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with app.app_context():
        count = SessionClient.query.filter_by(session_id=sid).count()
    with app.app_context():
        db.engine.dispose()
    assert errors == [] and count == 1


def test_a_session_read_directly_slides_its_idle_expiry_in_the_database(app, user):
    """``find_session`` reads the session and its person on the driver connection and turns the row
    into persistent ORM objects: a change to them (the idle expiry, slid at most once a minute) is an
    UPDATE of the stored row, and the objects compare unmodified until then."""
    from datetime import timedelta

    from sqlalchemy import inspect

    from idp.db import utcnow
    from idp.sessions.models import SsoSession
    from idp.sessions.service import _digest, find_session

    s = _session(user)
    old = utcnow() - timedelta(minutes=5)
    s.cookie_digest, s.last_seen_at = _digest("cookie-value"), old
    s.idle_expires_at, s.absolute_expires_at = utcnow() + timedelta(minutes=1), utcnow() + timedelta(hours=1)
    db.session.commit()
    sid = s.id
    db.session.remove()  # a new request: nothing in the identity map

    found = find_session("cookie-value")
    assert found is not None and found.id == sid and found.person.id == user.id
    assert inspect(found).persistent and inspect(found.person).persistent
    assert not inspect(found.person).modified
    db.session.remove()
    stored = db.session.get(SsoSession, sid)
    assert stored.last_seen_at > old + timedelta(minutes=4)
    assert stored.idle_expires_at > utcnow() + timedelta(minutes=5)
