"""Checks of Chinese identifiers.

Resident ID number, GB 11643-1999: 17 digits (6 region, 8 birth date, 3 sequence) and a check
character computed with ISO 7064 MOD 11-2 (``X`` stands for 10).

Unified social credit code (统一社会信用代码), GB 32100-2015: 18 characters from an alphabet of 31
(digits and capitals without I, O, Z, S, V): registration authority (1), organization type (1),
region of the registering office (6 digits, GB/T 2260), the organization code (9 characters,
GB 11714-1997, with its own MOD 11 check character) and a MOD 31 check character (GB/T 17710).
"""
from __future__ import annotations

import re
from datetime import date

from flask_babel import gettext as _

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


# --- Unified social credit code, GB 32100-2015 ---------------------------------------------------

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # value = position; no I, O, Z, S, V (§4.1)
_USCC_WEIGHTS = [pow(3, i, 31) for i in range(17)]  # 3^(i-1) mod 31: 1 3 9 27 19 26 16 17 20 29 25 13 8 24 10 30 28
# §4.2 table 1 (with amendment No. 1, which added A and N): registration authority -> organization types.
USCC_TYPES = {
    "1": "1239",  # 机构编制: 机关, 事业单位, 中央编办直接管理机构编制的群众团体, 其他
    "2": "19",  # 外交: 外国常驻新闻机构, 其他
    "3": "123459",  # 司法行政: 律师执业机构, 公证处, 基层法律服务所, 司法鉴定机构, 仲裁委员会, 其他
    "4": "19",  # 文化: 外国在华文化中心, 其他
    "5": "1239",  # 民政: 社会团体, 民办非企业单位, 基金会, 其他
    "6": "129",  # 旅游: 外国旅游部门常驻代表机构, 港澳台地区旅游部门常驻代表机构, 其他
    "7": "129",  # 宗教: 宗教活动场所, 宗教院校, 其他
    "8": "19",  # 工会: 基层工会, 其他
    "9": "123",  # 工商 (now market regulation): 企业, 个体工商户, 农民专业合作社
    "A": "19",  # 中央军委改革和编制办公室: 军队事业单位, 其他
    "N": "1239",  # 农业: 组级, 村级, 乡镇级集体经济组织, 其他
    "Y": "1",  # 其他: not divided further
}
# GB/T 2260 provinces of the mainland, and 10 for registrations by a national authority (e.g. 100000).
_PROVINCES = {"10", "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37",
              "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65"}
_ORG_WEIGHTS = [3, 7, 9, 10, 5, 8, 4, 2]  # GB 11714-1997 §5.2


def organization_code_check(body: str) -> str:
    """GB 11714-1997 check character of an 8-character organization code body.

    Digits count as themselves and letters A-Z as 10-35; C9 = 11 - (sum of value x weight) mod 11,
    written ``X`` for 10 and ``0`` for 11.
    """
    total = sum((int(c) if c.isdigit() else ord(c) - 55) * w for c, w in zip(body, _ORG_WEIGHTS))
    c9 = 11 - total % 11
    return {10: "X", 11: "0"}.get(c9, str(c9))


def uscc_check(first17: str) -> str:
    """GB 32100-2015 §4.5 check character: C18 = 31 - (sum of value x 3^(i-1) mod 31) mod 31."""
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(first17, _USCC_WEIGHTS))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def normalize_uscc(value: str) -> str:
    """Return the canonical (upper-case) code or raise InvalidIdentifier saying what is wrong."""
    v = re.sub(r"[\s-]", "", value or "").upper()
    if len(v) != 18:
        raise InvalidIdentifier(_("a unified social credit code has 18 characters, this one has %(n)s", n=len(v)))
    bad = sorted({c for c in v if c not in USCC_ALPHABET})
    if bad:
        raise InvalidIdentifier(_("a unified social credit code uses digits and capital letters except I, O, Z, "
                                  "S and V; it contains %(chars)s", chars=" ".join(bad)))
    if v[0] not in USCC_TYPES:
        raise InvalidIdentifier(_("the first character (registration authority) cannot be %(c)s", c=v[0]))
    if v[1] not in USCC_TYPES[v[0]]:
        raise InvalidIdentifier(_("the second character (organization type) cannot be %(c)s after %(a)s",
                                  c=v[1], a=v[0]))
    if not v[2:8].isdigit() or v[2:4] not in _PROVINCES:
        raise InvalidIdentifier(_("characters 3-8 should be the region code of the registering office, not "
                                  "%(region)s", region=v[2:8]))
    if not (v[16].isdigit() or v[16] == "X") or v[16] != organization_code_check(v[8:16]):
        raise InvalidIdentifier(_("the organization code %(code)s (characters 9-17) is wrong: its check "
                                  "character should be %(expected)s", code=v[8:17],
                                  expected=organization_code_check(v[8:16])))
    expected = uscc_check(v[:17])
    if v[17] != expected:
        raise InvalidIdentifier(_("the check character should be %(expected)s, not %(found)s",
                                  expected=expected, found=v[17]))
    return v
