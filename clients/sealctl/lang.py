"""The one language rule of ``sealctl``: Simplified Chinese (``zh``) or English (``en``).

Chosen once per run, first match wins: ``--lang``, ``SEALCTL_LANG``, then the locale (``LC_ALL``,
``LC_MESSAGES``, ``LANG``) when it names Chinese or English, else Chinese (an officials' tool in a
Chinese city). Everything the tool prints follows it:

- its own messages (this module's ``MESSAGES``);
- the hub's refusals of seal requests: every request carries ``Accept-Language`` (RFC 9110 §12.5.4)
  and the hub writes ``error_description`` in that language;
- refusals of the sign-in itself (the token endpoint, RFC 6749 §5.2) and of the DPoP-bound token
  (HTTP 401: RFC 6750 §3.1, RFC 9449 §7.1): the hub's own ``error_description`` as it sent it (the
  detail is the hub's; some protocol text stays English); only when it sent none, in Chinese, the
  tool's sentence for the error code.

Every refusal shows the hub's error code (``error``, RFC 6749 §5.2) after the description.
"""
from __future__ import annotations

import os

LANGUAGES = ("zh", "en")
DEFAULT = "zh"
_current = DEFAULT


def _match(tag: str | None) -> str | None:
    primary = (tag or "").strip().lower().replace("_", "-").split("-", 1)[0].split(".", 1)[0]
    return primary if primary in LANGUAGES else None


def choose(given: str | None = None, environ=None) -> str:
    """The language for this run (the rule in the module docstring); remembered for ``current()``."""
    global _current
    environ = os.environ if environ is None else environ
    _current = (_match(given) or _match(environ.get("SEALCTL_LANG"))
                or next((lang for name in ("LC_ALL", "LC_MESSAGES", "LANG") if (lang := _match(environ.get(name)))),
                        None)
                or DEFAULT)
    return _current


def current() -> str:
    return _current


MESSAGES = {
    "password_needed": ("the PKCS#12 password is needed: give --password or set SEALCTL_PASSWORD",
                        "需要 PKCS#12 文件的密码：请使用 --password 或设置 SEALCTL_PASSWORD"),
    "password_prompt": ("PKCS#12 password: ", "PKCS#12 密码："),
    "not_signed_in": ("not signed in: run 'sealctl login' first", "尚未登录：请先运行 'sealctl login'"),
    "expired": ("the sign-in has expired: run 'sealctl login' again", "登录已过期：请重新运行 'sealctl login'"),
    "cannot_read": ("cannot read {path}: {error}", "无法读取 {path}：{error}"),
    "cannot_write": ("cannot write {path}: {error}", "无法写入 {path}：{error}"),
    "which_hub": ("which hub? give --hub URL (or sign in first)", "请用 --hub URL 指定平台（或先登录）"),
    "aborted": ("aborted", "已取消"),
    "unreachable": ("{what}: cannot reach {host}: {error}", "{what}：无法连接 {host}：{error}"),
    "not_json": ("{what}: HTTP {status}, not a JSON answer", "{what}：HTTP {status}，平台的回答不是 JSON"),
    "http_status": ("{what}: HTTP {status}", "{what}：HTTP {status}"),
    "refused": ("{what} refused: {description}", "{what} 被拒绝：{description}"),
    "issuer_mismatch": ("discovery: the hub says its issuer is {issuer!r}, not {hub!r}",
                        "discovery：平台声明的 issuer 是 {issuer!r}，而不是 {hub!r}"),
    "no_jwt_bearer": ("discovery: the hub does not offer certificate login (JWT bearer grant)",
                      "discovery：该平台不提供证书登录（JWT bearer grant）"),
    "no_dpop": ("discovery: the hub does not support DPoP", "discovery：该平台不支持 DPoP"),
    "not_dpop_bound": ("login: the hub did not issue a DPoP-bound token", "login：平台签发的令牌没有绑定 DPoP 密钥"),
    "key_unreadable": ("cannot read {path}: {error}", "无法读取 {path}：{error}"),
    "key_wrong_password": ("cannot open {name}: wrong password or not a PKCS#12 file",
                           "无法打开 {name}：密码错误，或不是 PKCS#12 文件"),
    "key_empty": ("{name} holds no key and certificate", "{name} 中没有密钥和证书"),
    "key_type": ("{name}: unsupported key type", "{name}：不支持的密钥类型"),
    "key_reference": ("unknown key type {kind!r}", "未知的密钥类型 {kind!r}"),
}

# Chinese for the sign-in and token refusals (RFC 6749 §5.2, RFC 6750 §3.1, RFC 9449 §7.1, §12.2), shown
# ahead of the hub's description when that is not in Chinese (``refusal``).
PROTOCOL_ZH = {
    "invalid_grant": "证书无效、已过期或已被吊销，或登录断言不被接受",
    "invalid_client": "平台不认识本工具的 client_id（请检查 SEALCTL_CLIENT_ID）",
    "unauthorized_client": "本工具未获准使用证书登录",
    "unsupported_grant_type": "平台不接受证书登录方式",
    "invalid_request": "平台认为请求不完整或格式不正确",
    "invalid_token": "登录凭证无效、已过期或已被吊销：请重新运行 'sealctl login'",
    "invalid_dpop_proof": "DPoP 证明无效：须由登录时的密钥为本次请求新签",
    "use_dpop_nonce": "平台要求 DPoP nonce，用平台给出的 nonce 重试后仍被拒绝",
    "insufficient_user_authentication": "此操作需要以证书登录（3 级）",
}
PROTOCOL_ZH_OTHER = "平台拒绝了登录凭证"


def t(key: str, **params) -> str:
    """The tool's message ``key`` in the current language."""
    en, zh = MESSAGES[key]
    return (zh if _current == "zh" else en).format(**params)


def refusal(what: str, status: int, body: dict, *, protocol: bool) -> str:
    """A refusal by the hub as one line, its error code always shown, and the hub's ``error_description``
    when it sent one (written in the language asked, where the hub translates it). In Chinese, a refusal
    of the sign-in or of the token (``protocol``, or HTTP 401) leads with the tool's own sentence for the
    code when the hub's description is not Chinese (the protocol's descriptions are ASCII, RFC 6749
    §5.2), the hub's detail kept after it; the code alone when there is nothing else to say."""
    code = body.get("error") if isinstance(body.get("error"), str) and body.get("error") else None
    given = body.get("error_description")
    description = given.strip() if isinstance(given, str) else ""
    mark = code or f"HTTP {status}"
    if _current == "zh" and (protocol or status == 401) and not _chinese(description):
        own = PROTOCOL_ZH.get(code, PROTOCOL_ZH_OTHER)
        detail = f"{description}；{mark}" if description and mark not in description else (description or mark)
        return t("refused", what=what, description=f"{own}（{detail}）")
    if not description:
        description = mark
    elif mark not in description:
        description = f"{description}（{mark}）" if _current == "zh" else f"{description} ({mark})"
    return t("refused", what=what, description=description)


def _chinese(text: str) -> bool:
    """Does ``text`` contain CJK ideographs (the hub translated it)?"""
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def headers() -> dict:
    """What every request to the hub carries: the language to answer in (RFC 9110 §12.5.4)."""
    return {"Accept-Language": _current}
