"""Data-key rotation: versioned keys (ciphertexts name their key; old ones stay readable),
``idp keys rotate-data`` re-encrypting every stored value in resumable batches, blind indexes,
client secrets and pairwise subjects unchanged throughout (keys/README.md)."""
from __future__ import annotations

import base64
import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import text

from idp import create_app
from idp.accounts import rotation
from idp.accounts.models import Person
from idp.accounts.protection import FIELD_PHONE, FIELD_TOTP_SECRET, FIELD_VERIFICATION_DESTINATION, key_id_of, protector
from idp.accounts.service import check_password, create_citizen, find_by_login
from idp.audit.models import AuditEvent
from idp.audit.service import verify_chain
from idp.authn.models import TotpCredential, VerificationCode
from idp.db import db, utcnow
from idp.keystore import datakey
from tests.conftest import PASSWORD, _config, basic, make_rp

PEOPLE = [("alice", "11010519491231002X", "13800138000", "alice@example.cn"),
          ("bob", "210502198001011234", "13900139000", "bob@example.cn"),
          ("carol", None, "13700137000", None)]


def _seed(app):
    """Citizens, a TOTP secret, a verification code, and one value in format 1 (before versioning)."""
    people = []
    for username, id_number, phone, email in PEOPLE:
        people.append(create_citizen(username=username, password=PASSWORD, id_number=id_number, phone=phone,
                                     email=email))
    p = protector()
    db.session.add(TotpCredential(person_id=people[0].id, secret_enc=p.encrypt("JBSWY3DPEHPK3PXP", FIELD_TOTP_SECRET)))
    db.session.add(VerificationCode(purpose="register", channel="phone", destination_index="x" * 64,
                                    destination_enc=p.encrypt("13600136000", FIELD_VERIFICATION_DESTINATION), code_digest="y" * 64,
                                    expires_at=utcnow() + timedelta(minutes=5)))
    # carol's phone as a node running the previous release wrote it: no key id, key "1".
    root = datakey.load(Path(app.config["KEYS_DIR"]), None)
    nonce = os.urandom(12)
    legacy = AESGCM(datakey.derive(root, "pii-encryption")).encrypt(nonce, b"13700137000", b"phone")
    people[2].phone_enc = base64.urlsafe_b64encode(nonce + legacy).decode()
    db.session.commit()
    return people


def _ciphertexts() -> list[str]:
    out = []
    for spec in rotation.ENCRYPTED:
        col = spec.model.__table__.c[spec.column]
        out += [v for (v,) in db.session.execute(db.select(col).where(col.isnot(None)))]
    return out


def _plain(people) -> dict:
    p = protector()
    return {x.username: (p.decrypt(x.id_number_enc, "id_number"), p.decrypt(x.phone_enc, "phone"),
                         p.decrypt(x.email_enc, "email")) for x in people}


def test_rotate_data_reencrypts_everything_and_keeps_lookups(app, runner, client):
    """Every stored value moves to the new key; values, blind indexes, logins by phone and ID
    number, client secrets, pairwise subjects and profile timestamps are unchanged; audited."""
    from idp.oauth.claims import subject_for
    from idp.oauth.clients import get_client

    people = _seed(app)
    rp = make_rp(app, grant_types=["client_credentials"], redirect_uris=[])
    pairwise = get_client(make_rp(app, subject_type="pairwise")["client_id"])
    before = _plain(people)
    indexes = db.session.execute(text("SELECT id_number_index, phone_index, email_index, updated_at FROM person")).all()
    subject = subject_for(people[0], pairwise)
    assert {key_id_of(v) for v in _ciphertexts()} == {"1"}

    result = runner.invoke(args=["keys", "rotate-data", "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out == {"data_key": "2", "resumed": False, "reencrypted": 9, "unreadable": 0, "remaining": 0}
    assert {v.split(".")[0] for v in _ciphertexts()} == {"2"}

    db.session.expire_all()
    people = [Person.query.filter_by(username=u).one() for u, *_ in PEOPLE]
    assert _plain(people) == before
    assert protector().decrypt(TotpCredential.query.one().secret_enc, FIELD_TOTP_SECRET) == "JBSWY3DPEHPK3PXP"
    assert protector().decrypt(VerificationCode.query.one().destination_enc, FIELD_VERIFICATION_DESTINATION) == "13600136000"
    assert db.session.execute(text("SELECT id_number_index, phone_index, email_index, updated_at FROM person")).all() == indexes
    assert find_by_login("13700137000").username == "carol"
    assert find_by_login(before["alice"][0]).username == "alice"
    assert check_password("13900139000", PASSWORD).username == "bob"
    assert subject_for(people[0], pairwise) == subject
    token = client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(rp))
    assert token.status_code == 200  # client secrets are checked with a key that did not rotate

    actions = [e.action for e in AuditEvent.query.order_by(AuditEvent.id)]
    assert actions[-2:] == ["data_key.created", "data_key.reencrypted"]
    done = AuditEvent.query.filter_by(action="data_key.reencrypted").one()
    assert done.outcome == "success" and done.detail["reencrypted"] == 9
    assert verify_chain()[1] is None
    keys = datakey.describe(Path(app.config["KEYS_DIR"]), None)
    assert [(k["id"], k["current"], k["root"]) for k in keys] == [("1", False, True), ("2", True, False)]


def test_interrupted_rotation_resumes_and_lookups_work_meanwhile(app, runner):
    """An interruption leaves values under both keys: all stay readable and findable, and running
    the command again finishes the same rotation instead of starting another."""
    people = _seed(app)
    before = _plain(people)
    rot = rotation.start()
    calls = []

    def crash(n):
        calls.append(n)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rot.run(batch_size=1, progress=crash)
    kids = [key_id_of(v) for v in _ciphertexts()]
    assert kids.count("2") == 2 and "1" in kids  # half way
    db.session.expire_all()
    assert _plain([Person.query.filter_by(username=u).one() for u, *_ in PEOPLE]) == before
    for login in ("13800138000", "13900139000", "13700137000"):
        assert find_by_login(login) is not None

    again = runner.invoke(args=["keys", "rotate-data"])
    assert again.exit_code == 0, again.output
    out = json.loads(again.stdout)
    assert out["data_key"] == "2" and out["resumed"] is True and out["remaining"] == 0 and out["reencrypted"] == 7
    assert {key_id_of(v) for v in _ciphertexts()} == {"2"}
    # Finished: the next run is a new rotation.
    third = json.loads(runner.invoke(args=["keys", "rotate-data"]).stdout)
    assert third["data_key"] == "3" and third["resumed"] is False and third["reencrypted"] == 9


def test_another_node_follows_a_rotation_without_restart(instance):
    """Two nodes sharing keys/ and the database: after a rotation on one, the other reads values
    under the new key at once and writes new values under it."""
    node_a, node_b = create_app(_config(instance)), create_app(_config(instance))
    with node_b.app_context():
        create_citizen(username="alice", password=PASSWORD, phone="13800138000")
    with node_a.app_context():
        assert node_a.test_cli_runner().invoke(args=["keys", "rotate-data"]).exit_code == 0
    with node_b.app_context():
        person = Person.query.filter_by(username="alice").one()
        assert key_id_of(person.phone_enc) == "2"
        assert protector().decrypt(person.phone_enc, FIELD_PHONE) == "13800138000"
        bob = create_citizen(username="bob", password=PASSWORD, phone="13900139000")
        assert key_id_of(bob.phone_enc) == "2"


def test_unreadable_value_is_reported_not_lost(app, runner):
    """A value no key opens (damaged row) is counted, left as it is, and the command fails loudly."""
    people = _seed(app)
    people[1].email_enc = "1." + base64.urlsafe_b64encode(os.urandom(40)).decode()
    db.session.commit()
    result = runner.invoke(args=["keys", "rotate-data"])
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    assert out["unreadable"] == 1 and out["remaining"] == 1 and "run 'idp keys rotate-data' again" in result.stderr
    assert AuditEvent.query.filter_by(action="data_key.reencrypted").one().outcome == "failure"
    assert find_by_login("13900139000").username == "bob"


def test_rotated_key_file_is_wrapped_with_the_passphrase(tmp_path):
    """With IDP_KEYS_PASSPHRASE every data key, old and new, is stored wrapped, never in the clear."""
    from idp.keystore.service import ensure_keys
    from idp.migrations_lock import upgrade_database

    cfg = _config(tmp_path, KEYS_PASSPHRASE="s3cret-passphrase")
    setup = create_app(cfg, load_keys=False)
    with setup.app_context():
        ensure_keys(setup.config)
        upgrade_database()
    app = create_app(cfg)
    with app.app_context():
        before = datakey.load_keys(tmp_path / "keys", "s3cret-passphrase")
        assert app.test_cli_runner().invoke(args=["keys", "rotate-data"]).exit_code == 0
        after = datakey.load_keys(tmp_path / "keys", "s3cret-passphrase")
    doc = json.loads((tmp_path / "keys" / "data-key.json").read_text())
    assert doc["wrap"] == "scrypt-aes256gcm" and all("key" not in k and "ciphertext" in k for k in doc["keys"])
    raw = (tmp_path / "keys" / "data-key.json").read_bytes()
    for key in after.keys.values():
        assert base64.b64encode(key) not in raw
    assert after.keys["1"] == before.keys["1"] and after.current == "2"
    with pytest.raises(datakey.KeyFileError):
        datakey.load_keys(tmp_path / "keys", "wrong-passphrase")
