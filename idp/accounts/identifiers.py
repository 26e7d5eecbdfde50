"""Checks of Chinese identifiers.

Resident ID number, GB 11643-1999: 17 digits (6 region, 8 birth date, 3 sequence) and a check
character computed with ISO 7064 MOD 11-2 (``X`` stands for 10).
"""
from __future__ import annotations

import re
from datetime import date

_ID_WEIGHTS = [pow(2, 17 - i, 11) for i in range(17)]  # 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2
_ID_CHECK = "10X98765432"


class InvalidIdentifier(ValueError):
    pass


def normalize_id_number(value: str) -> str:
    """Return the canonical form (upper-case X) or raise InvalidIdentifier saying what is wrong."""
    v = (value or "").strip().upper()
    if len(v) != 18:
        raise InvalidIdentifier(f"a resident ID number has 18 characters, this one has {len(v)}")
    if not re.fullmatch(r"\d{17}[\dX]", v):
        raise InvalidIdentifier("a resident ID number is 17 digits followed by a digit or X")
    try:
        born = date(int(v[6:10]), int(v[10:12]), int(v[12:14]))
    except ValueError as exc:
        raise InvalidIdentifier(f"the date of birth {v[6:14]} is not a valid date") from exc
    if born > date.today() or born.year < 1900:
        raise InvalidIdentifier(f"the date of birth {v[6:14]} is not plausible")
    expected = _ID_CHECK[sum(int(c) * w for c, w in zip(v[:17], _ID_WEIGHTS)) % 11]
    if v[17] != expected:
        raise InvalidIdentifier(f"the check character should be {expected}, not {v[17]}")
    return v
