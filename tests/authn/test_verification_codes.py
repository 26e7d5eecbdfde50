"""One-time verification codes (NIST SP 800-63B §5.1.3 out-of-band authenticators, §5.2.2 rate
limiting): 6 random digits, 10 minutes, stored as a keyed digest, a resend cooldown, 5 tries, compared
in constant time, consumed once."""
from __future__ import annotations

import hmac
import re
from datetime import timedelta

import pytest

from idp.authn import verification
from idp.authn.models import VerificationCode
from idp.db import db, transaction, utcnow


def _issue(purpose="register", destination="13900139000", **kw):
    with transaction():
        return verification.issue(purpose, "phone", destination, **kw)


@pytest.fixture
def ctx(app):
    with app.test_request_context("/register?lang=en", environ_base={"REMOTE_ADDR": "192.0.2.7"}):
        from flask_babel import refresh

        refresh()
        yield


def test_a_code_is_six_random_digits_stored_only_as_a_keyed_digest(ctx):
    issued = _issue()
    row = db.session.get(VerificationCode, issued.row.id)
    assert issued.fresh and re.fullmatch(r"\d{6}", issued.code)
    assert issued.code not in row.code_digest and len(row.code_digest) == 64
    assert "13900139000" not in row.destination_enc + row.destination_index
    assert verification.destination_of(row) == "13900139000"
    assert row.expires_at - row.created_at == timedelta(minutes=10)
    codes = {_issue(destination=f"1390013{i:04d}").code for i in range(30)}
    assert len(codes) > 25  # from secrets, not a counter


def test_the_index_is_the_one_accounts_use(ctx, user):
    assert verification.destination_index("phone", "13800138000") == user.phone_index
    assert verification.destination_index("email", "alice@example.cn") == user.email_index


def test_resend_cooldown_then_a_new_code_replaces_the_old(ctx):
    first = _issue()
    again = _issue()
    assert not again.fresh and again.code is None and again.row.id == first.row.id
    first.row.created_at -= timedelta(seconds=61)
    db.session.commit()
    second = _issue()
    assert second.fresh and second.row.id != first.row.id
    old = db.session.get(VerificationCode, first.row.id)
    with pytest.raises(verification.CodeRefused, match="expired"):
        verification.verify(old, first.code)
    verification.verify(second.row, second.code)


def test_right_code_verifies_and_is_consumed_once(ctx):
    issued = _issue()
    verification.verify(issued.row, f" {issued.code[:3]} {issued.code[3:]} ")  # spaces are ignored
    assert issued.row.attempts == 0  # a right code costs no try
    with transaction():
        verification.consume(issued.row)
    with pytest.raises(verification.CodeRefused, match="already used"):
        with transaction():
            verification.consume(issued.row)
    db.session.refresh(issued.row)
    with pytest.raises(verification.CodeRefused, match="already used"):
        verification.verify(issued.row, issued.code)


def test_full_width_digits_are_accepted(ctx):
    issued = _issue()
    verification.verify(issued.row, issued.code.translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789"}))


def test_five_tries_per_code(ctx, app):
    issued = _issue()
    wrong = f"{(int(issued.code) + 1) % 10 ** 6:06d}"
    from tests.authn.support import let_delays_pass

    for i in range(4):
        let_delays_pass()
        with pytest.raises(verification.CodeRefused, match="The code is wrong"):
            verification.verify(issued.row, wrong)
    let_delays_pass()
    with pytest.raises(verification.CodeRefused, match="too many wrong codes"):
        verification.verify(issued.row, wrong)
    let_delays_pass()
    with pytest.raises(verification.CodeRefused, match="Too many wrong codes"):
        verification.verify(issued.row, issued.code)  # even the right one, now
    assert db.session.get(VerificationCode, issued.row.id).attempts == app.config["VERIFICATION_MAX_ATTEMPTS"] == 5


def test_tries_are_reserved_before_comparing(ctx):
    """Parallel guesses cannot exceed the limit: a try is taken by an atomic UPDATE first, so a row
    whose tries are all taken refuses even the right code without comparing."""
    issued = _issue()
    db.session.execute(VerificationCode.__table__.update().values(attempts=5))
    db.session.commit()
    with pytest.raises(verification.CodeRefused, match="Too many wrong codes"):
        verification.verify(db.session.get(VerificationCode, issued.row.id, populate_existing=True), issued.code)


def test_comparison_is_constant_time(ctx, monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(verification.hmac, "compare_digest", spy)
    issued = _issue()
    verification.verify(issued.row, issued.code)
    with pytest.raises(verification.CodeRefused):
        verification.verify(issued.row, "not a code at all")
    assert calls == [(64, 64), (64, 64)]  # digests of equal length, whatever was typed


def test_expired_code_is_refused(ctx):
    issued = _issue()
    issued.row.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    with pytest.raises(verification.CodeRefused, match="expired"):
        verification.verify(issued.row, issued.code)


def test_codes_are_bound_to_their_purpose_and_ticket(ctx):
    issued = _issue(purpose="register")
    ticket = verification.ticket_for(issued.row)
    assert verification.row_for_ticket(ticket, "register").id == issued.row.id
    assert verification.row_for_ticket(ticket, "reset") is None
    assert ticket != verification.ticket_for(issued.row)  # encrypted with a fresh nonce: no visible id
    for bad in ("", "x" * 300, "not-base64!", ticket[:-4] + "AAAA"):
        assert verification.row_for_ticket(bad, "register") is None
