"""TOTP verification (RFC 6238): the published test vectors, the ±1 step window, replay refusal, and
recovery codes (single use, stored as keyed digests)."""
from __future__ import annotations

import base64
import hashlib

import pyotp
import pytest
from sqlalchemy import text

from idp.audit.models import AuditEvent
from idp.authn import recovery, totp
from idp.authn.models import RecoveryCode, TotpCredential
from idp.db import db
from tests.authn.support import clock, enroll, in_request  # noqa: F401

# RFC 6238 Appendix B: seeds of 20, 32 and 64 ASCII bytes for HMAC-SHA1, -SHA256 and -SHA512; 8 digits.
SEEDS = {
    "sha1": (b"12345678901234567890", hashlib.sha1),
    "sha256": (b"12345678901234567890123456789012", hashlib.sha256),
    "sha512": (b"1234567890123456789012345678901234567890123456789012345678901234", hashlib.sha512),
}
VECTORS = [  # (time, algorithm, TOTP)
    (59, "sha1", "94287082"), (59, "sha256", "46119246"), (59, "sha512", "90693936"),
    (1111111109, "sha1", "07081804"), (1111111109, "sha256", "68084774"), (1111111109, "sha512", "25091201"),
    (1111111111, "sha1", "14050471"), (1111111111, "sha256", "67062674"), (1111111111, "sha512", "99943326"),
    (1234567890, "sha1", "89005924"), (1234567890, "sha256", "91819424"), (1234567890, "sha512", "93441116"),
    (2000000000, "sha1", "69279037"), (2000000000, "sha256", "90698825"), (2000000000, "sha512", "38618901"),
    (20000000000, "sha1", "65353130"), (20000000000, "sha256", "77737706"), (20000000000, "sha512", "47863826"),
]


def _b32(seed: bytes) -> str:
    return base64.b32encode(seed).decode()


@pytest.mark.parametrize("at, alg, expected", VECTORS)
def test_rfc6238_appendix_b_vectors(at, alg, expected):
    """RFC 6238 Appendix B: each published TOTP is accepted at its time, as step T = floor(time / 30),
    with no tolerance needed; one wrong digit is refused."""
    seed, digest = SEEDS[alg]
    step = totp.matching_step(_b32(seed), expected, at=at, window=0, digits=8, digest=digest)
    assert step == at // 30
    wrong = expected[:-1] + str((int(expected[-1]) + 1) % 10)
    assert totp.matching_step(_b32(seed), wrong, at=at, window=0, digits=8, digest=digest) is None


def test_one_step_of_tolerance_either_side():
    """RFC 6238 §5.2: accept the previous and next time step (delay, drift); not two steps away."""
    secret = _b32(SEEDS["sha1"][0])
    at = 1111111111
    for offset, accepted in ((-2, False), (-1, True), (0, True), (1, True), (2, False)):
        code = pyotp.TOTP(secret).generate_otp(at // 30 + offset)
        assert (totp.matching_step(secret, code, at=at) == at // 30 + offset) is accepted, offset


def test_a_code_at_or_before_the_last_accepted_step_is_refused():
    """RFC 6238 §5.2: the verifier MUST NOT accept the second attempt of an OTP once one succeeded."""
    secret = _b32(SEEDS["sha1"][0])
    at = 1111111111
    code = pyotp.TOTP(secret).generate_otp(at // 30)
    assert totp.matching_step(secret, code, at=at, after=at // 30 - 1) == at // 30
    assert totp.matching_step(secret, code, at=at, after=at // 30) is None


@pytest.mark.parametrize("code", ["", "12345", "1234567", "12345a", "１２３４５６", "١٢٣٤٥٦", " "])
def test_malformed_codes_are_refused(code):
    assert totp.matching_step(_b32(SEEDS["sha1"][0]), code, at=59) is None


def test_a_used_code_is_refused_and_so_is_an_older_one(app, in_request, user, clock):
    """RFC 6238 §5.2: a replayed code is refused even within its window; so is any earlier step."""
    secret, _ = enroll(user, clock)
    older = clock.code(secret, -1)  # still within the ±1 window, but before the confirmation's step
    now = clock.code(secret)
    assert totp.check_second_factor(user, now, purpose="login") == "totp"
    assert totp.check_second_factor(user, now, purpose="login") is None
    assert totp.check_second_factor(user, older, purpose="login") is None
    clock.tick()
    assert totp.check_second_factor(user, clock.code(secret), purpose="login") == "totp"


def test_replay_is_refused_by_the_database_even_after_a_stale_read(app, in_request, user, clock, monkeypatch):
    """Two nodes may both read the credential before either accepts the code: the conditional UPDATE
    of ``last_step`` (not the value read) decides, so only one of them accepts it."""
    secret, _ = enroll(user, clock)
    code = clock.code(secret)
    stale = db.session.execute(db.select(TotpCredential)).scalar_one()
    db.session.expunge(stale)  # what the other node read before this one accepted the code
    assert totp.check_second_factor(user, code, purpose="login") == "totp"
    monkeypatch.setattr(totp, "_credential", lambda person, confirmed: stale)
    assert stale.last_step < clock.step  # the stale copy would let the code through
    assert totp.check_second_factor(user, code, purpose="login") is None


def test_secret_is_encrypted_at_rest(app, in_request, user, clock):
    secret, _ = enroll(user, clock)
    row = db.session.execute(text("SELECT secret_enc FROM totp_credential")).scalar_one()
    assert secret not in row and secret.lower() not in row.lower()


def test_ten_recovery_codes_stored_as_keyed_digests_each_used_once(app, in_request, user, clock):
    """Recovery codes: shown once, stored only as HMAC digests, and each accepted a single time."""
    _, codes = enroll(user, clock)
    assert len(codes) == 10 and len(set(codes)) == 10
    stored = [r.code_digest for r in db.session.execute(db.select(RecoveryCode)).scalars()]
    assert len(stored) == 10
    for c in codes:
        bare = recovery.normalize(c)
        assert bare not in stored and hashlib.sha256(bare.encode()).hexdigest() not in stored
    assert totp.check_second_factor(user, codes[3].upper(), purpose="login") == "recovery_code"
    assert totp.check_second_factor(user, codes[3], purpose="login") is None
    assert recovery.remaining(user) == 9
    used = AuditEvent.query.filter_by(action="mfa.recovery_used").one()
    assert used.detail == {"purpose": "login", "remaining": 9}


def test_recovery_codes_are_bound_to_their_owner(app, in_request, user, clock):
    from idp.accounts.service import create_citizen
    from tests.conftest import PASSWORD

    bob = create_citizen(username="bob", password=PASSWORD)
    _, codes = enroll(user, clock)
    enroll(bob, clock)
    assert totp.check_second_factor(bob, codes[0], purpose="login") is None
    assert totp.check_second_factor(user, codes[0], purpose="login") == "recovery_code"


def test_regenerating_recovery_codes_voids_the_old_ones(app, in_request, user, clock):
    secret, old = enroll(user, clock)
    new = totp.regenerate_recovery_codes(user, clock.code(secret))
    assert len(new) == 10 and not set(new) & set(old)
    assert totp.check_second_factor(user, old[0], purpose="login") is None
    assert totp.check_second_factor(user, new[0], purpose="login") == "recovery_code"
    assert AuditEvent.query.filter_by(action="mfa.recovery_regenerated").count() == 1


def test_audit_records_hold_no_secret_or_code(app, in_request, user, clock):
    secret, codes = enroll(user, clock)
    totp.check_second_factor(user, "000000", purpose="login")
    totp.check_second_factor(user, codes[0], purpose="login")
    dump = " ".join(str((e.action, e.detail)) for e in AuditEvent.query)
    assert "mfa.enrolled" in dump and "mfa.failed" in dump
    assert secret not in dump and not any(recovery.normalize(c) in dump or c in dump for c in codes)
