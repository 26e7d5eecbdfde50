"""Redeeming a code is single-use (RFC 6749 §4.1.2: "The client MUST NOT use the authorization code
more than once"; §10.5). On PostgreSQL the code's consumption and its token row are one statement
(``grants._CONSUME_WITH_TOKEN``, a data-modifying ``WITH``): the token row is inserted only if the
guarded UPDATE consumed the code. Checked on the driver connection and through a request's session
that is already in use (``dbread.write_one``), since each reports the row count its own way."""
from __future__ import annotations

import shutil
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from idp.db import db, utcnow
from idp.dbread import write_one
from idp.oauth.models import AuthorizationCode, Token
from tests.test_dbread import _token_row

pytestmark = pytest.mark.postgres


def _code(person_id: int) -> int:
    now = utcnow()
    code = AuthorizationCode(code_digest=f"{now.timestamp():.6f}".ljust(64, "c")[:64], client_id="c1",
                             person_id=person_id, redirect_uri="https://rp.example/cb", scope="openid email",
                             nonce="n-1", auth_time=now, acr="urn:idp:loa:2", amr=["pwd"], created_at=now,
                             expires_at=now + timedelta(minutes=1))
    db.session.add(code)
    db.session.commit()
    return code.id


def _redeem(code_id: int, digest: str, in_session: bool) -> int:
    from idp.oauth.grants import _CONSUME_WITH_TOKEN

    db.session.remove()
    if in_session:
        db.session.execute(text("SELECT 1"))  # the request's session holds a connection: write_one joins it
    row = _token_row(digest, code_id=code_id)
    params = {f"t_{k}": v for k, v in row.items()} | {"consume_id": code_id, "consume_when": utcnow()}
    count = write_one(_CONSUME_WITH_TOKEN, params)
    db.session.commit()
    return count


@pytest.mark.parametrize("in_session", [False, True], ids=["driver", "session"])
def test_a_code_is_consumed_with_its_token_once(tmp_path, postgres_url, template_dir, in_session):
    from idp import create_app
    from idp.accounts.service import create_citizen
    from idp.migrations_lock import upgrade_database
    from tests.conftest import _config

    shutil.copytree(template_dir / "keys", tmp_path / "keys")
    app = create_app(_config(tmp_path, db_url=postgres_url))
    with app.app_context():
        upgrade_database()
        person = create_citizen(username="alice", password="correct horse battery")
        code_id = _code(person.id)
        before = db.session.execute(select(AuthorizationCode.__table__).where(AuthorizationCode.id == code_id)).one()

        assert _redeem(code_id, "a" * 64, in_session) == 1
        after = db.session.execute(select(AuthorizationCode.__table__).where(AuthorizationCode.id == code_id)).one()
        assert after.used_at is not None
        # Only used_at changed: the token's values (client_id, scope, acr, ...) are not SET on the code.
        assert {k: v for k, v in after._mapping.items() if k != "used_at"} == \
               {k: v for k, v in before._mapping.items() if k != "used_at"}
        token = db.session.execute(select(Token).where(Token.access_digest == "a" * 64)).scalar_one()
        assert (token.code_id, token.client_id, token.scope, token.amr) == (code_id, "c1", "openid email", ["pwd", "otp"])
        assert token.revoked_at is None and token.rotated_at is None

        # A second redemption writes nothing: no token row, the code's consumption time unchanged.
        assert _redeem(code_id, "b" * 64, in_session) == 0
        assert db.session.execute(select(func.count()).select_from(Token)).scalar() == 1
        again = db.session.execute(select(AuthorizationCode.used_at).where(AuthorizationCode.id == code_id)).scalar()
        assert again == after.used_at
        db.session.remove()
        db.engine.dispose()


def _store(params: dict, in_session: bool) -> int:
    from idp.oauth.grants import _CODE_NOTING_CLIENT

    db.session.remove()
    if in_session:
        db.session.execute(text("SELECT 1"))
    count = write_one(_CODE_NOTING_CLIENT, params)
    db.session.commit()
    return count


@pytest.mark.parametrize("in_session", [False, True], ids=["driver", "session"])
def test_a_code_is_stored_with_its_session_entry_in_one_statement(tmp_path, postgres_url, template_dir, in_session):
    """The code and the session's client list entry (OIDC Back-Channel Logout 1.0 §2.5: the RPs to
    notify) are one statement, so a code is never issued to a client the session does not list."""
    from idp import create_app
    from idp.accounts.service import create_citizen
    from idp.migrations_lock import upgrade_database
    from idp.sessions.models import SessionClient
    from idp.sessions.service import start_session
    from tests.conftest import _config

    shutil.copytree(template_dir / "keys", tmp_path / "keys")
    app = create_app(_config(tmp_path, db_url=postgres_url))
    with app.test_request_context(), app.app_context():
        upgrade_database()
        person = create_citizen(username="alice", password="correct horse battery")
        session, _ = start_session(person, acr="urn:idp:loa:2", amr=["pwd"])
        now = utcnow()

        def params(digest: str, first_at):
            code = {"code_digest": digest, "client_id": "code-client", "person_id": person.id,
                    "session_id": session.id, "redirect_uri": "https://rp.example/cb", "scope": "openid",
                    "nonce": None, "code_challenge": None, "code_challenge_method": None, "auth_time": now,
                    "acr": "urn:idp:loa:2", "amr": ["pwd"], "claims_request": None, "representation_id": None,
                    "dpop_jkt": None, "created_at": now, "expires_at": now + timedelta(minutes=1), "used_at": None}
            # A different client in the entry than in the code: each INSERT must take only its own values.
            entry = {"session_id": session.id, "client_id": "entry-client", "first_at": first_at}
            return {f"c_{k}": v for k, v in code.items()} | {f"n_{k}": v for k, v in entry.items()}

        first_at = now - timedelta(seconds=5)
        assert _store(params("d" * 64, first_at), in_session) == 1
        # The entry exists already: the code is still stored, the entry unchanged (ON CONFLICT DO NOTHING).
        assert _store(params("e" * 64, now), in_session) == 1

        codes = db.session.execute(select(AuthorizationCode.client_id, AuthorizationCode.session_id)
                                   .order_by(AuthorizationCode.code_digest)).all()
        assert codes == [("code-client", session.id), ("code-client", session.id)]
        entries = db.session.execute(select(SessionClient.session_id, SessionClient.client_id, SessionClient.first_at)).all()
        assert entries == [(session.id, "entry-client", first_at)]
        db.session.remove()
        db.engine.dispose()
