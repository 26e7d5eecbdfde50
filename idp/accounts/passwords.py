"""Passwords: hashing with argon2id (argon2-cffi; never hand-rolled) and the policy for new passwords.

Policy, NIST SP 800-63B §5.1.1.2 (memorized secrets): at least ``MIN_LENGTH`` characters, long
passphrases welcome (up to ``MAX_LENGTH``, far beyond the 64 the standard asks to allow), any
characters including spaces and Chinese, no composition rules; refused when it is a commonly used or
leaked password (``idp/data/common-passwords.txt``), such a password with digits or symbols around it,
repetitive or sequential characters, or context-specific words: the username, the resident ID number
(or its date of birth or last six characters), the phone number, and the name of the service.
Passwords are compared after Unicode NFKC normalization (§5.1.1.2), so full-width digits typed with a
Chinese input method are the same digits.
"""
from __future__ import annotations

import functools
import re
import unicodedata
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask_babel import gettext as _

_hasher = PasswordHasher()  # RFC 9106 low-memory profile defaults: argon2id, t=3, m=64 MiB, p=4
_dummy: str | None = None

MIN_LENGTH = 10
MAX_LENGTH = 256
SERVICE_WORDS = ("benxi", "本溪")
COMMON_PASSWORDS = Path(__file__).resolve().parent.parent / "data" / "common-passwords.txt"
_EDGE = "0123456789!@#$%^&*()-_=+[]{};:'\",.<>/?\\|`~ "


def _dummy_hash() -> str:
    """Verified against when the account does not exist, so timing does not reveal which names exist."""
    global _dummy
    if _dummy is None:
        _dummy = _hasher.hash("not-a-real-password")
    return _dummy


def normalize(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


def hash_password(password: str) -> str:
    return _hasher.hash(normalize(password))


def verify_password(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or _dummy_hash(), normalize(password)) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)


# An argon2 hash in the PHC string format: unpadded base64 salt (>= 8 bytes) and digest (>= 16 bytes).
_PHC_RE = re.compile(r"\$argon2(?:id|i|d)\$(?:v=(?:16|19)\$)?m=(\d{1,7}),t=(\d{1,3}),p=(\d{1,3})"
                     r"\$([A-Za-z0-9+/]{11,64})\$([A-Za-z0-9+/]{22,128})")


def check_stored_hash(stored: str) -> str | None:
    """Why a hash brought from elsewhere (``idp users import``, an operator tool: English) cannot be
    stored, or None.

    Only argon2 PHC strings that ``verify_password`` can check are accepted, with costs bounded so one
    login cannot exhaust a node; weaker costs are upgraded by ``needs_rehash`` at the next login.
    """
    match = _PHC_RE.fullmatch(stored)
    if match is None or len(match[4]) % 4 == 1 or len(match[5]) % 4 == 1:
        return "Not an argon2 hash in PHC format ($argon2id$v=19$m=...,t=...,p=...$salt$hash)."
    memory, time, lanes = int(match[1]), int(match[2]), int(match[3])
    if not (1 <= lanes and 1 <= time and memory >= 8 * lanes):
        return "The argon2 costs are invalid (m must be at least 8 * p, t and p at least 1)."
    if memory > 262144 or time > 16 or lanes > 16:
        return "Argon2 costs above m=262144, t=16, p=16 are not accepted."
    return None


@functools.cache
def common_passwords() -> frozenset[str]:
    with COMMON_PASSWORDS.open(encoding="utf-8") as fh:
        return frozenset(line.rstrip("\n") for line in fh if line.strip())


def _monotonous(text: str) -> bool:
    """One character repeated, or a run like 1234567890 / abcdefghij / 9876543210."""
    steps = {ord(b) - ord(a) for a, b in zip(text, text[1:])}
    return len(set(text)) <= 2 or steps in ({1}, {-1})


def check_policy(password: str, *, username: str | None = None, id_number: str | None = None,
                 phone: str | None = None) -> str | None:
    """What is wrong with a new password (a message for the person), or None."""
    pw = normalize(password or "")
    if len(pw) < MIN_LENGTH:
        return _("The password must have at least %(min)s characters; a few words make a good one.", min=MIN_LENGTH)
    if len(pw) > MAX_LENGTH:
        return _("The password must have at most %(max)s characters.", max=MAX_LENGTH)
    lower = pw.lower()
    common = common_passwords()
    if lower in common:
        return _("This password is one of the most common passwords, which attackers try first. Choose another.")
    core = lower.strip(_EDGE)
    if core != lower and len(core) >= 4 and core in common:
        return _("This password is a common password with digits or symbols added. Choose another.")
    if _monotonous(lower):
        return _("This password is made of repeated or sequential characters. Choose another.")
    if username and len(username) >= 3 and username.lower() in lower:
        return _("The password must not contain your username.")
    if id_number:
        idn = id_number.lower()
        if any(part in lower for part in (idn, idn[6:14], idn[-6:])):
            return _("The password must not contain your ID number or part of it (such as your date of birth).")
    if phone and (phone in lower or phone[-8:] in lower):
        return _("The password must not contain your phone number.")
    if any(word in lower for word in SERVICE_WORDS):
        return _("The password must not contain the name of this service or city (benxi).")
    return None
