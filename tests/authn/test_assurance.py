"""The assurance rule (DESIGN.md "Assurance") and its amr values (RFC 8176 §2)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from idp.authn.assurance import assess, missing_for, reachable_level, session_level


@pytest.mark.parametrize("identity, methods, level, amr", [
    (1, ["pwd"], 1, ["pwd"]),
    (2, ["pwd"], 1, ["pwd"]),                       # verified, but one factor
    (1, ["pwd", "otp"], 1, ["pwd", "otp", "mfa"]),  # two factors, identity not verified
    (2, ["pwd", "otp"], 2, ["pwd", "otp", "mfa"]),
    (2, ["pwd", "mfa", "otp", "pwd"], 2, ["pwd", "otp", "mfa"]),  # a session's amr plus a new factor
    (2, ["otp"], 1, ["otp"]),                       # a code alone is one factor
])
def test_levels_and_amr(app, identity, methods, level, amr):
    a = assess(SimpleNamespace(level=identity), methods)
    assert (a.level, a.amr) == (level, amr)
    assert a.acr == f"urn:idp:loa:{level}" and session_level(a.acr) == level


def test_unknown_acr_counts_as_the_lowest_level(app):
    assert session_level("urn:example:gold") == 1 and session_level(None) == 1


def test_what_is_missing_for_level_2(app):
    person = SimpleNamespace(level=1)
    assert missing_for(person, False, 2) == ["identity", "totp"]
    assert missing_for(SimpleNamespace(level=2), True, 2) == [] and reachable_level(SimpleNamespace(level=2), True) == 2
    assert missing_for(SimpleNamespace(level=2), True, 3) == ["certificate"]
