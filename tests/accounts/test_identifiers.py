"""Resident ID numbers, GB 11643-1999 (ISO 7064 MOD 11-2 check character)."""
import pytest

from idp.accounts.identifiers import InvalidIdentifier, normalize_id_number


@pytest.mark.parametrize("value", ["11010519491231002X", "11010519491231002x", "210502199003071235"])
def test_valid_numbers(value):
    assert normalize_id_number(value) == value.upper()


@pytest.mark.parametrize("value, words", [
    ("1101051949123100", "18 characters"),
    ("11010519491231002Y", "digit or X"),
    ("110105194912310021", "check character should be X"),
    ("110105194913310024", "date of birth"),
    ("", "18 characters"),
])
def test_invalid_numbers_say_what_is_wrong(value, words):
    with pytest.raises(InvalidIdentifier, match=words):
        normalize_id_number(value)
