"""Password policy, NIST SP 800-63B §5.1.1.2 (memorized secret verifiers): minimum length, long
passphrases allowed, no composition rules, a list of common/breached passwords, context-specific
words, repetitive or sequential characters, Unicode normalization (NFKC)."""
from __future__ import annotations

import pytest

from idp.accounts.passwords import (
    MAX_LENGTH,
    MIN_LENGTH,
    check_policy,
    common_passwords,
    hash_password,
    verify_password,
)

ID = "21050219850118123X"


def test_minimum_length_is_ten():
    assert MIN_LENGTH == 10
    assert "at least 10 characters" in check_policy("abc defgh")
    assert check_policy("river tea9") is None


def test_long_passphrases_are_welcome():
    """§5.1.1.2: verifiers SHOULD permit at least 64 characters; spaces and any Unicode allowed."""
    assert MAX_LENGTH >= 64
    assert check_policy("the quick brown fox jumps over the lazy dog near taizi river " * 4) is None
    assert check_policy("风吹稻花香两岸 我家就在岸上住 听惯了艄公的号子") is None
    assert "at most" in check_policy("x" * 100 + "y" * (MAX_LENGTH - 99))


def test_no_composition_rules():
    """§5.1.1.2: no rules requiring mixtures of character types."""
    assert check_policy("correct horse battery") is None
    assert check_policy("lowercaseonlywords") is None


def test_the_list_is_a_real_one():
    common = common_passwords()
    assert len(common) > 30000
    assert {"password", "123456789", "qwertyuiop", "woaini1314", "1qaz2wsx"} <= common


@pytest.mark.parametrize("password", ["qwertyuiop", "QWERTYUIOP", "1qaz2wsx3edc", "woaini1314", "iloveyou123",
                                      "password123!", "!!dragon2024", "a1b2c3d4e5", "1234567890"])
def test_common_passwords_are_refused(password):
    problem = check_policy(password)
    assert problem and ("common password" in problem or "repeated or sequential" in problem), (password, problem)


@pytest.mark.parametrize("password", ["aaaaaaaaaaaa", "abababababab", "abcdefghijkl", "9876543210", "0000000000"])
def test_repetitive_or_sequential_passwords_are_refused(password):
    assert check_policy(password) is not None


@pytest.mark.parametrize("password, words", [
    ("zhangsan-river-tea", "username"),
    (f"my id {ID}", "ID number"),
    ("born 19850118 here", "ID number"),  # the date of birth in the ID number
    ("tail 18123x of id", "ID number"),  # its last six characters, either case of X
    ("call 13800138000 now", "phone number"),
    ("Benxi mountains 2026", "benxi"),
    ("我爱本溪的枫叶和太子河", "benxi"),
])
def test_context_specific_words_are_refused(password, words):
    problem = check_policy(password, username="zhangsan", id_number=ID, phone="13800138000")
    assert problem and words in problem, (password, problem)


def test_full_width_digits_are_the_same_password():
    """§5.1.1.2: apply NFKC before hashing, so a Chinese input method's full-width digits match."""
    stored = hash_password("maple river 2026")
    assert verify_password(stored, "maple river ２０２６")
    assert not verify_password(stored, "maple river 2027")


def test_messages_are_translated_on_pages_and_english_elsewhere(app):
    from flask_babel import refresh  # the app fixture's context is shared: choose the language afresh

    assert check_policy("short") == "The password must have at least 10 characters; a few words make a good one."
    with app.test_request_context("/register"):
        refresh()
        assert check_policy("short") == "密码至少需要 10 个字符；几个词组成的密码就很好。"
    with app.test_request_context("/register?lang=en"):
        refresh()
        assert check_policy("qwertyuiop").startswith("This password is one of the most common passwords")


def test_stored_hashes_use_the_rfc_9106_low_memory_profile(production_password_hashing):
    """RFC 9106 §4 (second recommended option): argon2id, t=3, m=64 MiB, p=4. The other in-process
    tests hash with a small cost (tests/conftest.py); this one checks the cost the hub really uses."""
    stored = hash_password("correct horse battery")
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert verify_password(stored, "correct horse battery") and not verify_password(stored, "wrong horse battery")
