"""Languages: Simplified Chinese (default) and English, with Flask-Babel.

Which language a page uses, first match wins:
1. ``?lang=zh|en`` on any page (the switch in every page's header), remembered in a cookie;
2. the ``idp_lang`` cookie;
3. ``ui_locales`` of this request, on the endpoints that define it: the authorization request
   (OIDC Core §3.1.2.1) and the logout request (RP-Initiated Logout 1.0 §2);
4. that ``ui_locales`` remembered in the browser's UI session, for the pages that follow (login,
   consent, logout confirmation);
5. on the JSON APIs under ``/api/`` (programs such as ``sealctl``, not browsers), ``Accept-Language``
   (RFC 9110 §12.5.4); pages ignore it, so a browser's English default does not override the city's
   Chinese;
6. Simplified Chinese.

The choice is made from the request alone, so a page rendered for an error raised before any view
ran (a refused request, a 404, a 413) is in the same language as the page would have been. Outside
a request (the ``idp`` command, background workers) messages are English, like the rest of the
command's output.

Messages are written in English in the code (``_("...")``) and translated in
``idp/translations/<lang>/LC_MESSAGES/*.po``: one file per capability, so parts can be changed
apart. They are merged and compiled to ``.mo`` on first use (no build step; cached by content).
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from urllib.parse import urlencode

from flask import Flask, g, has_request_context, request, request_started, session
from flask_babel import Babel, force_locale, get_locale

LANGUAGES = {"zh": "简体中文", "en": "English"}
DEFAULT = "zh"
HTML_LANG = {"zh": "zh-CN", "en": "en"}
COOKIE = "idp_lang"
SOURCE = Path(__file__).parent / "translations"
# Endpoints whose requests may carry ``ui_locales`` (OIDC Core §3.1.2.1, RP-Initiated Logout 1.0 §2).
UI_LOCALES_PATHS = ("/authorize", "/logout")

babel = Babel()


def _match(tag: str | None) -> str | None:
    """A BCP 47 tag (zh-CN, zh-Hans, en-US, …) to one of our languages."""
    tag = (tag or "").strip().lower().replace("_", "-")
    primary = tag.split("-", 1)[0]
    return primary if primary in LANGUAGES else None


def match_ui_locales(value: str | None) -> str | None:
    """The first supported language of a space-separated ``ui_locales`` list."""
    for tag in (value or "").split()[:10]:
        if lang := _match(tag):
            return lang
    return None


def select_locale() -> str:
    if not has_request_context():
        return "en"
    # Only the query string here: reading a body may itself fail (413) while its error page renders.
    # A POSTed ui_locales is remembered in the session by the before_request hook in init_app.
    requested = match_ui_locales(request.args.get("ui_locales")) if request.path in UI_LOCALES_PATHS else None
    return (_match(request.args.get("lang")) or _match(request.cookies.get(COOKIE)) or requested
            or _match(session.get("ui_locale")) or _api_accept_language() or DEFAULT)


def _api_accept_language() -> str | None:
    if not request.path.startswith("/api/"):
        return None
    for tag, _quality in request.accept_languages:  # best first
        if lang := _match(tag):
            return lang
    return None


def in_english(message) -> str:
    """A message (a lazy ``_l("...")`` or a plain string) in English: the msgid, for protocol JSON."""
    with force_locale("en"):
        return str(message)


def switch_links(keep_query: bool = True) -> list[dict]:
    """The language switch: this page (GET) in each other language. Error pages pass
    ``keep_query=False`` so that a rejected request is never echoed back as a link."""
    current = str(get_locale() or DEFAULT)
    args = [(k, v) for k in request.args for v in request.args.getlist(k) if k != "lang"] if keep_query else []
    return [{"lang": code, "label": label, "href": request.path + "?" + urlencode(args + [("lang", code)]),
             "html_lang": HTML_LANG[code]}
            for code, label in LANGUAGES.items() if code != current]


def usable(message) -> bool:
    """A catalogue entry the pages use: a msgid with every form translated, not marked fuzzy."""
    string = message.string
    return bool(message.id) and not message.fuzzy and (all(string) if isinstance(string, tuple) else bool(string))


def compiled_catalogs(source: Path = SOURCE) -> str:
    """Merge each language's .po files into one compiled messages.mo; returns the directory."""
    from babel.messages.catalog import Catalog
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    files = sorted(source.glob("*/LC_MESSAGES/*.po"))
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(source)).encode() + b"\0" + f.read_bytes())
    target = Path(tempfile.gettempdir()) / f"idp-translations-{os.getuid()}-{h.hexdigest()[:16]}"
    if target.is_dir():
        return str(target)
    staging = Path(tempfile.mkdtemp(prefix="idp-translations-"))
    for lang_dir in sorted({f.parent.parent for f in files}):
        merged = Catalog(locale=lang_dir.name)
        for po in sorted(lang_dir.glob("LC_MESSAGES/*.po")):
            with po.open("rb") as fh:
                for message in read_po(fh, locale=lang_dir.name):
                    if usable(message):
                        merged[message.id] = message
        out = staging / lang_dir.name / "LC_MESSAGES"
        out.mkdir(parents=True)
        with (out / "messages.mo").open("wb") as fh:
            write_mo(fh, merged)
    try:
        os.rename(staging, target)
    except OSError:  # another process compiled the same catalogs first
        import shutil

        shutil.rmtree(staging, ignore_errors=True)
    return str(target)


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT)
    app.config.setdefault("BABEL_DEFAULT_TIMEZONE", app.config.get("TIMEZONE", "Asia/Shanghai"))
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = compiled_catalogs()
    babel.init_app(app, locale_selector=select_locale)

    def _forget_locale(*_args, **_kwargs):
        # Flask-Babel caches the choice in g, which an enclosing app context (tests, the CLI) shares
        # between requests: each request chooses afresh, whichever hook or error asks first, and
        # what follows a request in that context is outside a request again.
        g.pop("_flask_babel", None)

    request_started.connect(_forget_locale, app, weak=False)
    app.teardown_request(_forget_locale)

    @app.before_request
    def _remember_ui_locales():
        if request.path in UI_LOCALES_PATHS and (lang := match_ui_locales(request.values.get("ui_locales"))):
            if session.get("ui_locale") != lang:
                session["ui_locale"] = lang

    @app.after_request
    def _remember_choice(resp):
        if (lang := _match(request.args.get("lang"))) and request.cookies.get(COOKIE) != lang:
            resp.set_cookie(COOKIE, lang, max_age=365 * 86400, samesite="Lax", httponly=True,
                            secure=request.is_secure)
        return resp

    @app.context_processor
    def _language():
        current = str(get_locale() or DEFAULT)
        return {"html_lang": HTML_LANG.get(current, "zh-CN"), "language_links": switch_links,
                "current_language": current, "current_language_label": LANGUAGES.get(current, "")}
