"""Unified social credit codes, GB 32100-2015 (§4 structure, §4.5 MOD 31 check character), and the
organization code inside them, GB 11714-1997 (§5.2 MOD 11 check character).

The valid samples are codes of real organizations as printed in public documents (annual reports,
invoice headers, business licences); most also appear in python-stdnum's test data
(tests/test_cn_uscc.doctest, "found online").
"""
import pytest

from idp.accounts.identifiers import (USCC_ALPHABET, InvalidIdentifier, normalize_uscc, organization_code_check,
                                      uscc_check)

REAL = {
    "9144030071526726XG": "腾讯科技（深圳）有限公司",
    "914403001922038216": "华为技术有限公司",
    "91100000100003962T": "中国工商银行股份有限公司 (registered nationally: region 100000)",
    "12100000400000624D": "清华大学 (机构编制 / 事业单位)",
    "91110000600037341L": "python-stdnum's documented example (Beijing enterprise)",
    "121200004013590816": "a Tianjin 事业单位 (python-stdnum)",
    "91340600MA2PBM9HXD": "a Huaibei enterprise with a new 'MA' organization code (python-stdnum)",
    "92340602MA2PBMEM24": "a Huaibei 个体工商户 (python-stdnum)",
    "91620105L015101280": "a Lanzhou enterprise whose organization code starts with L (python-stdnum)",
}


@pytest.mark.parametrize("code", REAL)
def test_published_codes_are_valid(code):
    assert normalize_uscc(code) == code


def test_input_is_normalised():
    """Lower case, spaces and hyphens as people type them; the canonical form is upper case."""
    assert normalize_uscc(" 9144030071526726xg ") == "9144030071526726XG"
    assert normalize_uscc("91 110000 600037341L") == "91110000600037341L"
    assert normalize_uscc("91340600-MA2PBM9HX-D") == "91340600MA2PBM9HXD"


def test_weights_are_powers_of_three_mod_31():
    """§4.5: W_i = 3^(i-1) mod 31."""
    from idp.accounts import identifiers

    assert identifiers._USCC_WEIGHTS == [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
    assert USCC_ALPHABET == "0123456789ABCDEFGHJKLMNPQRTUWXY" and len(USCC_ALPHABET) == 31


@pytest.mark.parametrize("code", REAL)
def test_every_wrong_check_character_is_refused_with_the_right_one(code):
    wrong = [c for c in USCC_ALPHABET if c != code[17]]
    assert len(wrong) == 30
    for c in wrong:
        with pytest.raises(InvalidIdentifier, match=f"check character should be {code[17]}, not {c}"):
            normalize_uscc(code[:17] + c)


def test_check_character_computation():
    assert uscc_check("9144030071526726X") == "G"
    assert uscc_check("91100000100003962") == "T"


@pytest.mark.parametrize("value, words", [
    ("", "18 characters, this one has 0"),
    ("9144030071526726X", "18 characters, this one has 17"),
    ("9144030071526726XGG", "18 characters, this one has 19"),
    ("9144030071526726IG", "contains I"),
    ("91440300O1526726XG", "contains O"),
    ("9144030071526726ZG", "contains Z"),
    ("914403007152672SXG", "contains S"),
    ("914403007152672VXG", "contains V"),
    ("9144030071526726X。", "contains 。"),
])
def test_length_and_alphabet(value, words):
    with pytest.raises(InvalidIdentifier, match=words):
        normalize_uscc(value)


def _with_check(first17: str) -> str:
    """A code whose MOD 31 check character is right, so only the structure can be wrong."""
    return first17 + uscc_check(first17)


@pytest.mark.parametrize("first17, words", [
    ("B144030071526726X", "first character \\(registration authority\\) cannot be B"),
    ("9444030071526726X", "second character \\(organization type\\) cannot be 4 after 9"),
    ("Y244030071526726X", "cannot be 2 after Y"),
    ("91990300715267260", "region code of the registering office, not 990300"),
    ("914403A071526726X", "region code"),
])
def test_structure_is_checked(first17, words):
    """§4.1-4.3: authority and type codes from table 1, a GB/T 2260 region."""
    with pytest.raises(InvalidIdentifier, match=words):
        normalize_uscc(_with_check(first17))


@pytest.mark.parametrize("authority, types", [("1", "1239"), ("5", "1239"), ("9", "123"), ("A", "19"), ("N", "1239"),
                                              ("Y", "1")])
def test_table_1_authorities_and_types(authority, types):
    for t in types:
        normalize_uscc(_with_check(authority + t + "440300" + "71526726X"))


# --- GB 11714-1997 organization code (characters 9-17) -------------------------------------------------

@pytest.mark.parametrize("code", ["71526726X", "100003962", "400000624", "192203821", "MA2PBM9HX", "L01510128"])
def test_organization_codes_of_real_organizations(code):
    """§5.2: C9 = 11 - sum(C_i x W_i) mod 11, W = 3 7 9 10 5 8 4 2; 10 is written X, 11 is 0."""
    assert organization_code_check(code[:8]) == code[8]


def test_organization_code_check_values():
    """Worked by hand: letters count A=10 ... Z=35."""
    assert organization_code_check("00000000") == "0"  # 11 - 0 = 11, written 0
    # 7·3 + 1·7 + 5·9 + 2·10 + 6·5 + 7·8 + 2·4 + 6·2 = 199; 199 mod 11 = 1; 11 - 1 = 10, written X
    assert organization_code_check("71526726") == "X"
    assert organization_code_check("A0000000") == "3"  # 10·3 = 30; 30 mod 11 = 8; 11 - 8 = 3
    assert organization_code_check("0000000Z") == "7"  # 35·2 = 70; 70 mod 11 = 4; 11 - 4 = 7


@pytest.mark.parametrize("code", ["9144030071526726XG", "91100000100003962T", "12100000400000624D"])
def test_wrong_organization_check_character_is_refused_even_with_a_right_mod31(code):
    """Every other organization check character, with the MOD 31 character recomputed to match."""
    for c in "0123456789X":
        if c == code[16]:
            continue
        with pytest.raises(InvalidIdentifier, match=f"organization code {code[8:16]}{c} .* should be {code[16]}"):
            normalize_uscc(_with_check(code[:16] + c))
