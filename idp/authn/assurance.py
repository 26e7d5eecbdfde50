"""Assurance levels: the one place for the rule (DESIGN.md "Assurance").

- level 1: a password;
- level 2: a password and a TOTP code, for a person whose real name was verified (``Person.level >= 2``,
  set by ``idp users verify``);
- level 3: proof of possession of a key certified by a trusted CA (certificate login, ``authn.certificate``):
  the CA issues login certificates only to officials, so the certificate is the identity proofing.

A session's ``acr`` is the configured URI of its level (``IDP_ACR_VALUES``), its ``amr`` lists the
methods used as RFC 8176 §2 values, with ``mfa`` when two factors were used.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from flask import current_app

from ..config import acr_for_level, level_for_acr

# Our method names → RFC 8176 §2 values. A recovery code is a single-use secret the person holds
# (a look-up secret, NIST SP 800-63B §5.1.2): a one-time password, so "otp" too.
AMR = {"pwd": "pwd", "totp": "otp", "recovery_code": "otp", "certificate": "swk"}
# What kind of factor each RFC 8176 value is ("mfa" means more than one kind was used).
FACTOR = {"pwd": "know", "otp": "have", "swk": "have", "hwk": "have"}
# Proof of possession of a certified key (RFC 8176 "swk"/"hwk"): level 3 on its own.
KEY_METHODS = ("swk", "hwk")
# The highest level any sign-in reaches in this deployment (certificate login).
HIGHEST_LEVEL = 3


@dataclass(frozen=True)
class Assurance:
    level: int
    acr: str
    amr: list[str]


def assess(person, methods: Iterable[str]) -> Assurance:
    """The assurance of a sign-in that used ``methods`` (RFC 8176 values, e.g. a session's amr)."""
    used: list[str] = []
    for m in methods:
        if m in FACTOR and m not in used:
            used.append(m)
    level = 1
    if "pwd" in used and "otp" in used and (person.level or 1) >= 2:
        level = 2
    if any(m in used for m in KEY_METHODS):
        level = 3
    amr = used + (["mfa"] if len({FACTOR[m] for m in used}) >= 2 else [])
    return Assurance(level=level, acr=acr_for_level(current_app.config, level), amr=amr)


def session_level(acr: str | None) -> int:
    """The level a session (or token) was issued at; an unknown acr counts as the lowest."""
    return level_for_acr(current_app.config, acr or "") or 1


def reachable_level(person, has_totp: bool) -> int:
    """The highest level this person can reach now by stepping up (what a subsite may ask of them)."""
    return 2 if has_totp and (person.level or 1) >= 2 else 1


def missing_for(person, has_totp: bool, level: int) -> list[str]:
    """What the person must do before a sign-in can reach ``level`` (machine words for the pages)."""
    if level >= 3:
        return ["certificate"]  # certificate login (officials); a password or TOTP never reaches it
    missing = []
    if level >= 2 and (person.level or 1) < 2:
        missing.append("identity")
    if level >= 2 and not has_totp:
        missing.append("totp")
    return missing
