"""How ``sealctl`` words the hub's refusals (``clients/sealctl/lang.py``): the hub's
``error_description`` whenever it sent one (RFC 6749 §5.2; the hub writes it in the language asked
with Accept-Language, RFC 9110 §12.5.4, where it translates it); in Chinese, a sign-in or token
refusal whose description is the protocol's English gets the tool's Chinese sentence first, the hub's
detail after it; the error code visible either way."""
from __future__ import annotations

import pytest

from clients.sealctl import lang


@pytest.fixture(autouse=True)
def _restore_language():
    before = lang.current()
    yield
    lang.choose(before)


@pytest.mark.parametrize("language, body, status, protocol, expect", [
    # The hub's detail, kept: a token refusal (English protocol text, after the tool's Chinese sentence)
    # and a translated seal refusal (as the hub wrote it).
    ("zh", {"error": "invalid_grant", "error_description": "The certificate has been revoked."}, 400, True,
     f"login 被拒绝：{lang.PROTOCOL_ZH['invalid_grant']}（The certificate has been revoked.；invalid_grant）"),
    ("zh", {"error": "forbidden", "error_description": "您未获授权使用印章“甲”。"}, 403, False,
     "login 被拒绝：您未获授权使用印章“甲”。（forbidden）"),
    ("zh", {"error": "invalid_token", "error_description": "The access token has expired."}, 401, False,
     f"login 被拒绝：{lang.PROTOCOL_ZH['invalid_token']}（The access token has expired.；invalid_token）"),
    ("zh", {"error": "invalid_token", "error_description": "令牌已过期。"}, 401, False,
     "login 被拒绝：令牌已过期。（invalid_token）"),
    ("zh", {"error": "not_pdf", "error_description": "Not a PDF."}, 400, False,
     "login 被拒绝：Not a PDF.（not_pdf）"),
    ("en", {"error": "invalid_grant", "error_description": "The certificate has been revoked."}, 400, True,
     "login refused: The certificate has been revoked. (invalid_grant)"),
    # None sent: the tool's own sentence (Chinese) or the code, still with the code.
    ("zh", {"error": "invalid_grant"}, 400, True, f"login 被拒绝：{lang.PROTOCOL_ZH['invalid_grant']}（invalid_grant）"),
    ("zh", {"error": "invalid_token", "error_description": "  "}, 401, False,
     f"login 被拒绝：{lang.PROTOCOL_ZH['invalid_token']}（invalid_token）"),
    ("zh", {"error": "strange"}, 401, False, f"login 被拒绝：{lang.PROTOCOL_ZH_OTHER}（strange）"),
    ("zh", {}, 401, True, f"login 被拒绝：{lang.PROTOCOL_ZH_OTHER}（HTTP 401）"),
    ("zh", {"error": "not_pdf"}, 400, False, "login 被拒绝：not_pdf"),
    ("en", {"error": "invalid_grant"}, 400, True, "login refused: invalid_grant"),
    ("en", {}, 500, False, "login refused: HTTP 500"),
])
def test_the_hubs_description_is_shown_with_the_code(language, body, status, protocol, expect):
    lang.choose(language)
    assert lang.refusal("login", status, body, protocol=protocol) == expect
