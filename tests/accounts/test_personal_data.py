"""Personal identifiers are encrypted at rest and found by a keyed blind index."""
from __future__ import annotations

from sqlalchemy import text

from idp.accounts.service import check_password, find_by_login
from idp.db import db


def test_identifiers_are_not_stored_in_the_clear(app, user):
    row = db.session.execute(text("SELECT * FROM person")).mappings().one()
    blob = " ".join(str(v) for v in row.values())
    for secret in ("11010519491231002X", "13800138000", "alice@example.cn"):
        assert secret not in blob
    assert "correct horse" not in blob and row["password_hash"].startswith("$argon2id$")


def test_login_by_username_phone_or_id_number(app, user):
    for login in ("alice", "13800138000", "11010519491231002X", "11010519491231002x"):
        assert find_by_login(login).id == user.id
    assert check_password("13800138000", "correct horse battery").id == user.id
    assert check_password("alice", "wrong password") is None
    assert check_password("nobody", "correct horse battery") is None


def test_disabled_account_cannot_log_in(app, user):
    user.status = "disabled"
    db.session.commit()
    assert check_password("alice", "correct horse battery") is None
