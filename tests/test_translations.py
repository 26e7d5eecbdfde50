"""Completeness of the Simplified Chinese catalogues: every message the code and templates use
(extracted with Babel's extraction API, configured by ``babel.cfg``) has a translation in the merged
``idp/translations/zh/LC_MESSAGES/*.po``, and those files parse. ``make messages`` prints the same
findings as .po entries to fill in."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from idp import i18n_check

ROOT = Path(__file__).resolve().parents[1]
HOW = ("Add them to your area's idp/translations/zh/LC_MESSAGES/<area>.po; `make messages` prints them "
       "as .po entries ready to fill in.")


@pytest.fixture(scope="module")
def findings() -> i18n_check.Findings:
    return i18n_check.check("zh")


def test_catalogues_and_templates_parse(findings):
    assert not findings.broken, "Cannot read:\n  " + "\n  ".join(findings.broken)


def test_every_message_has_a_chinese_translation(findings):
    missing = [f"{msgid!r}  ({', '.join(where)})" for msgid, where in findings.missing.items()]
    assert not missing, (f"{len(missing)} message(s) without a Simplified Chinese translation:\n  "
                         + "\n  ".join(missing) + "\n" + HOW)


def test_translations_keep_the_placeholders(findings):
    """A translation that drops or renames %(name)s, or has a bare %, breaks the page that formats it."""
    assert not findings.mismatched, "\n  ".join(["Placeholders differ:", *findings.mismatched])


def test_one_translation_per_message(findings):
    """Two areas' files may both translate a shared message, but then the same way."""
    assert not findings.conflicting, "\n  ".join(["Translated differently:", *findings.conflicting])


def test_the_check_finds_what_is_missing_where_it_is_used(tmp_path):
    """The checker itself, on a small tree: it can fail, and says what and where."""
    pkg = tmp_path / "idp"
    (pkg / "templates" / "account").mkdir(parents=True)
    (pkg / "views.py").write_text(
        'from flask_babel import gettext as _, lazy_gettext as _l\n'
        'A = _l("Translated")\n'
        'def f():\n'
        '    return _("Not yet"), _("Hello %(name)s", name="x")\n')
    (pkg / "templates" / "account" / "page.html").write_text(
        '{% extends "base.html" %}\n{% block content %}\n<h1>{{ _("Translated") }}</h1>\n'
        '<p>{{ _("Only in a template") }}</p>\n{% endblock %}\n')
    (pkg / "templates" / "broken.html").write_text('{{ _("Unclosed" }}\n')
    po = tmp_path / "translations" / "zh" / "LC_MESSAGES"
    po.mkdir(parents=True)
    header = 'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
    (po / "a.po").write_text(header + 'msgid "Translated"\nmsgstr "已翻译"\n\n'
                             'msgid "Hello %(name)s"\nmsgstr "你好 %(nom)s"\n\n'
                             'msgid "Gone"\nmsgstr "已删除"\n')
    (po / "b.po").write_text(header + 'msgid "Translated"\nmsgstr "翻译过了"\n')
    (po / "c.po").write_text(header + 'msgid "Bad\nmsgstr "坏"\n')

    found = i18n_check.check("zh", package=pkg, source=tmp_path / "translations", cfg=ROOT / "babel.cfg")

    assert found.missing == {"Not yet": ["idp/views.py:4"],
                             "Only in a template": ["idp/templates/account/page.html:4"]}
    assert len(found.broken) == 2, found.broken
    assert found.broken[0].startswith("idp/templates/broken.html:1:"), found.broken
    assert "c.po" in found.broken[1], found.broken
    assert len(found.conflicting) == 1 and "'Translated'" in found.conflicting[0]
    assert len(found.mismatched) == 1 and "%(nom)s" in found.mismatched[0]
    assert any("'Gone'" in u for u in found.unused) and not found.ok
    text = i18n_check.report(found)
    assert '#: idp/views.py:4\nmsgid "Not yet"\nmsgstr ""' in text, text
    assert "idp/templates/account/page.html:4" in text


def test_fuzzy_and_empty_translations_count_as_missing(tmp_path):
    """They are not used at run time (idp.i18n.compiled_catalogs), so they are not translations."""
    pkg = tmp_path / "idp"
    pkg.mkdir()
    (pkg / "m.py").write_text('from flask_babel import gettext as _\n_("One")\n_("Two")\n_("50%% off")\n')
    po = tmp_path / "translations" / "zh" / "LC_MESSAGES"
    po.mkdir(parents=True)
    (po / "x.po").write_text('msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
                             '#, fuzzy\nmsgid "One"\nmsgstr "一"\n\nmsgid "Two"\nmsgstr ""\n\n'
                             'msgid "50%% off"\nmsgstr "五折 50%"\n')
    found = i18n_check.check("zh", package=pkg, source=tmp_path / "translations", cfg=ROOT / "babel.cfg")
    assert set(found.missing) == {"One", "Two"}
    assert len(found.mismatched) == 1 and "50%% off" in found.mismatched[0]


def test_make_messages_command():
    """``make messages`` runs this; it exits 0 only when nothing is missing or broken."""
    res = subprocess.run([sys.executable, "-m", "idp.i18n_check"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "All messages have a 'zh' translation." in res.stdout


@pytest.mark.parametrize("entry, problem", [
    ('msgid "Sign in\nmsgstr "登录"', "line 5: not a keyword and a quoted string"),
    ('msgid "Sign in"\nmsgstr "点击"登录""', "line 6: not a keyword and a quoted string"),
    ('msgid Sign in\nmsgstr "登录"', "line 5: not a keyword"),
    ('msgid "Sign in"\nmsgstr "登录"\n\nmsgid ""\n"Sign in"\nmsgstr "登入"', "line 8: msgid 'Sign in' defined again"),
])
def test_po_syntax_that_babels_reader_would_let_through(entry, problem):
    """Babel reads these without complaint (and loses or changes a message); the check does not."""
    text = 'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n' + entry + "\n"
    problems = i18n_check.lint_po(text)
    assert len(problems) == 1 and problems[0].startswith(problem), problems
    ok = 'msgctxt "menu"\nmsgid "Sign in"\nmsgstr "登录"\n\nmsgid "Sign in"\nmsgstr "登录"\n\nmsgid "a \\"b\\""\nmsgstr "甲"'
    assert i18n_check.lint_po(ok) == []
