"""Are all messages translated? Extracts every msgid from ``idp/`` with Babel (``babel.cfg``) and
compares it with the merged catalogues of each language (``idp/translations/<lang>/LC_MESSAGES``).

``python -m idp.i18n_check`` (``make messages``) prints what is missing as .po entries ready to
paste into your area's file, and exits 1 if anything is missing or a catalogue is broken;
``tests/test_translations.py`` fails on the same findings.
"""
from __future__ import annotations

import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from .i18n import DEFAULT, SOURCE, usable

PACKAGE = Path(__file__).resolve().parent
BABEL_CFG = PACKAGE.parent / "babel.cfg"
# %(name)s placeholders and %% escapes; Jinja's newstyle gettext %-formats every template message.
_PLACEHOLDER = re.compile(r"%(?:\((\w+)\)[-#0 +]*\d*(?:\.\d+)?[sdifr]|%)")
# One line of a .po file: a keyword and a quoted string, or a continuation string (Babel's reader
# accepts an unterminated or unescaped quote silently, so lines are checked first).
_PO_LINE = re.compile(r'(?:(?:msgctxt|msgid|msgid_plural|msgstr(?:\[\d+\])?)[ \t]+)?"(?:[^"\\]|\\.)*"')


@dataclass
class Findings:
    """What the check found for one language."""

    missing: dict[str, list[str]] = field(default_factory=dict)  # msgid -> ["idp/…:line", …]
    broken: list[str] = field(default_factory=list)  # .po files that do not parse, templates that do not
    mismatched: list[str] = field(default_factory=list)  # translations that would not format like the msgid
    conflicting: list[str] = field(default_factory=list)  # one msgid, different translations in two files
    unused: list[str] = field(default_factory=list)  # translated msgids no code uses (informational)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.broken or self.mismatched or self.conflicting)


def extract(package: Path = PACKAGE, cfg: Path = BABEL_CFG) -> tuple[dict[str, list[str]], list[str]]:
    """Every msgid used under ``package`` with where it is used, and the files that could not be read."""
    from babel.messages.extract import DEFAULT_KEYWORDS, check_and_call_extract_file
    from babel.messages.frontend import parse_mapping_cfg

    with cfg.open(encoding="utf-8") as fh:
        method_map, options_map = parse_mapping_cfg(fh, str(cfg))
    found: dict[str, list[str]] = defaultdict(list)
    broken: list[str] = []
    files = sorted(f for f in package.rglob("*") if f.is_file()
                   and not any(part.startswith((".", "__pycache__")) for part in f.relative_to(package).parts))
    for path in files:
        where = f"{package.name}/{path.relative_to(package).as_posix()}"
        try:  # file by file, so that one file that cannot be parsed hides no other
            results = list(check_and_call_extract_file(path, method_map, options_map, None, DEFAULT_KEYWORDS,
                                                       (), False, dirpath=package))
        except Exception as exc:  # a template Jinja cannot parse (silent = false), a broken .py
            broken.append(f"{where}:{getattr(exc, 'lineno', '?')}: {type(exc).__name__}: {exc}")
            continue
        for _filename, lineno, message, _comments, _context in results:
            msgid = message[0] if isinstance(message, tuple) else message
            if msgid:
                found[msgid].append(f"{where}:{lineno}")
    return dict(found), broken


def lint_po(text: str) -> list[str]:
    """Lines that are not .po syntax, and msgids defined twice in one file ("line N: problem")."""
    problems: list[str] = []
    seen: dict[tuple[str, str], int] = {}
    entry: dict[str, str] = {}  # keyword -> its string so far, for the entry being read
    keyword, first_line = None, 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not _PO_LINE.fullmatch(line):
            problems.append(f"line {n}: not a keyword and a quoted string (is a \" unescaped?): {line[:60]!r}")
            continue
        if not line.startswith('"'):
            keyword, value = line.split(None, 1)
            if keyword in ("msgctxt", "msgid") and ("msgstr" in entry or keyword == "msgctxt"):
                entry = {}
            if keyword == "msgid":
                first_line = n
            entry[keyword if not keyword.startswith("msgstr") else "msgstr"] = value[1:-1]
        elif keyword is not None:
            entry[keyword if not keyword.startswith("msgstr") else "msgstr"] += line[1:-1]
        if keyword and keyword.startswith("msgstr") and "msgid" in entry and entry["msgid"]:
            key = (entry.get("msgctxt", ""), entry["msgid"])
            if seen.setdefault(key, first_line) != first_line:
                problems.append(f"line {first_line}: msgid {entry['msgid']!r} defined again (first on line {seen[key]})")
    return problems


def read_catalogues(lang: str, source: Path = SOURCE):
    """The merged translations of ``lang`` (msgid -> (translation, file)) and the problems found."""
    from babel.messages.pofile import PoFileError, read_po

    merged: dict[str, tuple[object, str]] = {}
    broken, conflicting = [], []
    for po in sorted((source / lang / "LC_MESSAGES").glob("*.po")):
        name = f"{po.relative_to(source.parent.parent)}"
        try:
            lint = lint_po(po.read_text(encoding="utf-8"))
            if lint:
                broken += [f"{name}: {problem}" for problem in lint]
                continue
            with po.open("rb") as fh:
                catalog = read_po(fh, locale=lang, abort_invalid=True)
        except (PoFileError, UnicodeDecodeError, ValueError) as exc:
            line = getattr(exc, "lineno", None)
            broken.append(f"{name}{f':{line + 1}' if isinstance(line, int) else ''}: {exc}")
            continue
        for message in catalog:
            if not usable(message):
                continue
            if message.id in merged and merged[message.id][0] != message.string:
                conflicting.append(f"{message.id!r}: {merged[message.id][1]} says {merged[message.id][0]!r}, "
                                   f"{name} says {message.string!r}")
            merged[message.id] = (message.string, name)
    return merged, broken, conflicting


def _placeholders(text: str) -> list[str]:
    return sorted(m.group(0) for m in _PLACEHOLDER.finditer(text))


def _stray_percent(text: str) -> bool:
    return "%" in _PLACEHOLDER.sub("", text)


def check(lang: str = DEFAULT, package: Path = PACKAGE, source: Path = SOURCE, cfg: Path = BABEL_CFG) -> Findings:
    used, broken_sources = extract(package, cfg)
    merged, broken_po, conflicting = read_catalogues(lang, source)
    findings = Findings(broken=broken_sources + broken_po, conflicting=conflicting)
    known = {k[0] if isinstance(k, tuple) else k for k in merged}  # a plural entry is known by its singular
    findings.missing = {msgid: where for msgid, where in sorted(used.items()) if msgid not in known}
    for msgid, (string, name) in sorted(merged.items(), key=lambda kv: str(kv[0])):
        ids = msgid if isinstance(msgid, tuple) else (msgid,)
        strings = string if isinstance(string, tuple) else (string,)
        for s in strings:
            if _placeholders(s) != _placeholders(ids[-1]) or _stray_percent(s):
                findings.mismatched.append(f"{name}: {msgid!r} -> {s!r} (placeholders must be the msgid's: "
                                           f"{', '.join(_placeholders(ids[-1])) or 'none'}; a literal % is %%)")
        if ids[0] not in used:
            findings.unused.append(f"{name}: {ids[0]!r}")
    return findings


def report(findings: Findings, lang: str = DEFAULT) -> str:
    """Human-readable findings; missing messages as .po entries to paste into your area's file."""
    out = []
    if findings.broken:
        out.append("Files that could not be read:")
        out += [f"  {b}" for b in findings.broken]
    if findings.conflicting:
        out.append("One msgid translated differently in two files (keep one):")
        out += [f"  {c}" for c in findings.conflicting]
    if findings.mismatched:
        out.append("Translations whose placeholders differ from the msgid:")
        out += [f"  {m}" for m in findings.mismatched]
    if findings.missing:
        out.append(f"{len(findings.missing)} message(s) without a '{lang}' translation in "
                   f"idp/translations/{lang}/LC_MESSAGES/*.po; add to your area's file:")
        for msgid, where in findings.missing.items():
            out.append("")
            out += [f"#: {w}" for w in where]
            out.append(f"msgid {_po_quote(msgid)}")
            out.append('msgstr ""')
    return "\n".join(out)


def _po_quote(text: str) -> str:
    from babel.messages.pofile import escape

    return escape(text)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    lang = args[0] if args else DEFAULT
    findings = check(lang)
    if findings.unused:
        print(f"(translated but not used any more, may be removed: {len(findings.unused)})", file=sys.stderr)
        for u in findings.unused:
            print(f"  {u}", file=sys.stderr)
    if findings.ok:
        print(f"All messages have a '{lang}' translation.")
        return 0
    print(report(findings, lang))
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
