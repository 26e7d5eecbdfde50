"""No identifier in the clear at rest: after citizens are created (command line and service) and
used (a login by phone number, a failed one by ID number, an authorization releasing every claim,
the ID number included), the raw bytes of the SQLite database — main file and write-ahead log —
and a ``pg_dump`` of a real PostgreSQL server hold no resident ID number, phone number or email
address, neither in the accounts nor in the audit log, sessions, tokens or throttling records.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import text

from idp import create_app
from idp.db import db
from tests.conftest import PASSWORD, Browser, _config, make_rp
from idp.accounts.models import Person
from idp.sessions.models import SsoSession
from tests.oauth.privacy_support import LEVEL2, answer, consent_page, tokens_for, userinfo

CITIZENS = {  # username: (ID number, phone, email)
    "alice": ("11010519491231002X", "13800138000", "alice@example.cn"),
    "bob": ("210502198001011234", "13900139000", "Bob.Li@Example.cn"),
}


def _forms(value: str) -> list[bytes]:
    """The ways a value could be found in clear: as typed, lower/upper case, international form."""
    forms = {value, value.lower(), value.upper()}
    if value.isdigit():
        forms.add("+86" + value)
    return [f.encode() for f in forms]


def _populate(app) -> None:
    from idp.accounts.service import create_citizen

    create_citizen(username="alice", password=PASSWORD, name="张三", id_number=CITIZENS["alice"][0],
                   phone=CITIZENS["alice"][1], email=CITIZENS["alice"][2])
    idn, phone, email = CITIZENS["bob"]
    r = app.test_cli_runner().invoke(args=["users", "create", "--username", "bob", "--password", PASSWORD,
                                           "--name", "李四", "--id-number", idn.lower(), "--phone", phone,
                                           "--email", email])
    assert r.exit_code == 0, r.output
    rp = make_rp(app, name="人社局", scopes=["openid", "profile", "email", "phone", "id_card"])
    client = app.test_client()
    browser = Browser(client)
    bad = browser.login(username=CITIZENS["alice"][0], password="wrong password")
    assert bad.status_code == 200  # a failure recorded against the ID number typed (throttle, audit)
    assert browser.login(username=phone).status_code == 303
    bob = db.session.execute(db.select(Person).filter_by(username="bob")).scalar_one()
    SsoSession.query.filter_by(person_id=bob.id, ended_at=None).update({"acr": LEVEL2})  # as after a step-up
    db.session.commit()
    body = tokens_for(client, rp, answer(client, consent_page(browser, rp, "openid profile email phone id_card"),
                                         share_id_card=True))
    info = userinfo(client, body["access_token"]).get_json()
    assert info["id_card_number"] == idn and info["phone_number"] == "+86" + phone  # the data was used


def _assert_absent(blob: bytes, where: str, sanity=(b"bob", "李四".encode())) -> None:
    for clear in sanity:  # stored in the clear by design: proves these are the right bytes
        assert clear in blob, f"{where}: the check reads the wrong bytes"
    for username, values in CITIZENS.items():
        for value in values:
            for form in _forms(value):
                assert form not in blob, f"{username}'s {form[:4]!r}… is in the clear in {where}"


def test_no_identifier_in_the_raw_sqlite_file(app):
    _populate(app)
    events = db.session.execute(text("SELECT action, actor, target, detail FROM audit_event")).all()
    assert len(events) > 5
    _assert_absent(json.dumps([list(map(str, e)) for e in events], ensure_ascii=False).encode(), "the audit log",
                   sanity=(b"login.failed", b"consent.granted", b"account.created"))
    path = Path(app.config["DATABASE_URL"].removeprefix("sqlite:///"))
    blob = b"".join(p.read_bytes() for p in sorted(path.parent.glob(path.name + "*")))  # main file, -wal, -shm
    _assert_absent(blob, "the SQLite files")


@pytest.mark.postgres
def test_no_identifier_in_a_pg_dump(instance, postgres_database):
    from idp.migrations_lock import upgrade_database

    server, name, url = postgres_database
    setup = create_app(_config(instance, db_url=url), load_keys=False)
    with setup.app_context():
        upgrade_database()
        db.engine.dispose()
    app = create_app(_config(instance, db_url=url))
    with app.app_context():
        _populate(app)
        db.session.remove()
        db.engine.dispose()
    dump = subprocess.run([os.path.join(server.bindir, "pg_dump"), "--no-password", "-h", server.host,
                           "-p", str(server.port), "-U", server.user, name],
                          env={**os.environ, "PGPASSWORD": server.password}, capture_output=True, timeout=120)
    assert dump.returncode == 0, dump.stderr.decode(errors="replace")
    assert b"COPY public.audit_event" in dump.stdout and b"COPY public.person" in dump.stdout
    _assert_absent(dump.stdout, "the pg_dump")
