"""``tokens.revoke_issued``: the one rule every cascade (logout, consent withdrawal, a subsite or an
account disabled, an agent revoked, a certificate revoked, a staff membership ended) uses to stop
what was issued. Each selector must reach the codes and the tokens it names, and nothing else: RFC
6749 §10.5 (a code is single-use and short-lived) and RFC 7009 §2.1 (revoking a grant's tokens)."""
from __future__ import annotations

import secrets
from datetime import timedelta

import pytest
from sqlalchemy import select

from idp.db import db, transaction, utcnow
from idp.oauth.models import AuthorizationCode, Token
from idp.oauth.tokens import revoke_issued
from tests.accounts.support import citizen

KEY, OTHER_KEY = "k" * 43, "o" * 43


@pytest.fixture
def people(app):
    return citizen("zhang"), citizen("lisi")


def _code(person, **kw) -> int:
    now = utcnow()
    row = AuthorizationCode(code_digest=secrets.token_hex(32), client_id=kw.pop("client_id", "rp"), person_id=person.id,
                            redirect_uri="https://rp.example.cn/cb", scope="openid", auth_time=now,
                            expires_at=now + timedelta(minutes=2), **kw)
    db.session.add(row)
    db.session.flush()
    return row.id


def _token(person, **kw) -> int:
    now = utcnow()
    row = Token(client_id=kw.pop("client_id", "rp"), person_id=person.id, family=secrets.token_hex(8),
                grant_type="authorization_code", access_digest=secrets.token_hex(32), jti=secrets.token_hex(8),
                access_expires_at=now + timedelta(minutes=10), **kw)
    db.session.add(row)
    db.session.flush()
    return row.id


def _live_codes() -> set[int]:
    return set(db.session.execute(select(AuthorizationCode.id).where(
        AuthorizationCode.used_at.is_(None), AuthorizationCode.expires_at > utcnow())).scalars())


def _live_tokens() -> set[int]:
    return set(db.session.execute(select(Token.id).where(Token.revoked_at.is_(None))).scalars())


def test_a_key_selects_the_codes_to_be_redeemed_with_it_and_the_tokens_bound_to_it(people):
    """RFC 9449: a code carries the key it must be redeemed with (§10 ``dpop_jkt``), a token the key it
    is bound to (§6.1 ``cnf.jkt``); revoking for a key and a person reaches both, and only theirs."""
    zhang, li = people
    with transaction():
        bound_code, bound_token = _code(zhang, dpop_jkt=KEY), _token(zhang, cnf_jkt=KEY)
        kept = {_code(zhang, dpop_jkt=OTHER_KEY), _code(zhang), _code(li, dpop_jkt=KEY)}
        kept_tokens = {_token(zhang, cnf_jkt=OTHER_KEY), _token(zhang), _token(li, cnf_jkt=KEY)}
    with transaction():
        assert revoke_issued(utcnow(), person_id=zhang.id, cnf_jkt=KEY) == 1
    assert bound_code not in _live_codes() and _live_codes() == kept
    assert bound_token not in _live_tokens() and _live_tokens() == kept_tokens


def test_offline_grants_are_kept_only_when_asked(people):
    zhang, _ = people
    with transaction():
        offline, online = _token(zhang, offline=True), _token(zhang)
    with transaction():
        assert revoke_issued(utcnow(), person_id=zhang.id, keep_offline=True) == 1
    assert _live_tokens() == {offline}
    with transaction():
        assert revoke_issued(utcnow(), person_id=zhang.id) == 1
    assert _live_tokens() == set() and online


def test_an_unknown_or_missing_selector_is_a_programming_error_not_a_revocation_of_everything(people):
    zhang, _ = people
    with transaction():
        _token(zhang)
    with pytest.raises(TypeError, match="cannot select by person"):
        revoke_issued(utcnow(), person=zhang.id)
    with pytest.raises(TypeError, match="needs whom"):
        revoke_issued(utcnow())
    with pytest.raises(TypeError, match="needs whom"):
        revoke_issued(utcnow(), keep_offline=True, client_id=None)
    assert len(_live_tokens()) == 1
