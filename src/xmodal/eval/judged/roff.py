"""Plain text of a manual page's source (man(7) macros), section by section.

Only what a judged set reads: each ``.SH`` section's running text, with font changes, escapes, comments,
tables and layout requests removed. Not a typesetter: no line filling rules, no conditionals evaluated,
no user-defined macros expanded (their lines are dropped). groff could render pages fully, but it is not
installed everywhere the sets are built, and the sets need words, not layout.
"""

from __future__ import annotations

import re
import shlex

# Macros whose arguments are text in alternating fonts, joined without spaces (``.BR open (2)`` → "open(2)").
_ALTERNATING = frozenset({"BR", "RB", "BI", "IB", "IR", "RI"})
# Macros whose arguments are text, joined with spaces.
_TEXT = frozenset({"B", "I", "SM", "SB", "UR", "MT", "TQ", "OP", "SY"})
_SKIPPED_BLOCKS = {"TS": "TE", "EQ": "EN", "PS": "PE", "de": ".."}
_NAMED = {
    "em": "—", "en": "–", "aq": "'", "dq": '"', "lq": '"', "rq": '"', "oq": "'", "cq": "'", "ti": "~",
    "ha": "^", "rs": "\\", "bu": "•", "mu": "×", "<=": "≤", ">=": "≥", "!=": "≠", "->": "→", "co": "©",
    "hy": "-", "mi": "-", "pl": "+", "eq": "=", "ga": "`", "sl": "/", "ba": "|", "at": "@", "sh": "#",
}  # fmt: skip
_ESCAPE = re.compile(
    r"\\(?:"
    r"f(?:\[[^\]]*\]|\(..|.)"  # font change
    r"|s[-+]?(?:\[[^\]]*\]|\(..|\d+)"  # size change
    r"|\*(?:\[([^\]]*)\]|\((..)|(.))"  # string: groups 1-3
    r"|\[([^\]]*)\]|\((..)"  # named character: groups 4-5
    r"|[kmn](?:\[[^\]]*\]|\(..|.)"  # marks, colours, number registers
    r"|[hvwlLoxXNDZbR]'[^']*'"  # motions and other quoted-argument escapes
    r"|(.)"  # one character: group 6
    r")"
)
_ONE_CHAR = {"-": "-", "e": "\\", "\\": "\\", " ": " ", "~": " ", "0": " ", "'": "'", "`": "`", ".": "."}
_GLUE = "\x00"
_COMMENTS = (r".\"", r"'\"", r"\"")  # a comment line: .\" or '\" or \"
_STRINGS = {"R": "®", "Tm": "™", "lq": '"', "rq": '"', "dq": '"'}


def inline(text: str) -> str:
    """``text`` with its escapes resolved: fonts and sizes dropped, characters and strings spelled out."""

    def one(match: re.Match[str]) -> str:
        string = match.group(1) or match.group(2) or match.group(3)
        if string is not None:
            return _STRINGS.get(string, "")
        named = match.group(4) or match.group(5)
        if named is not None:
            return _NAMED.get(named, "")
        char = match.group(6)
        return _ONE_CHAR.get(char, "") if char is not None else ""

    return _ESCAPE.sub(one, text)


def _arguments(rest: str) -> list[str]:
    try:
        return shlex.split(rest.replace("\\", "\\\\"), posix=True)
    except ValueError:  # an unbalanced quote: words as they are
        return rest.split()


def sections(source: str) -> dict[str, str]:
    """Each ``.SH`` section's text by its upper-cased heading (the first of a repeated heading), paragraphs
    separated by blank lines; the text before the first heading is dropped."""
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    skip_until: str | None = None
    for raw in source.splitlines():
        line = raw.rstrip()
        if skip_until is not None:
            if line.startswith(f".{skip_until}") or (skip_until == ".." and line == ".."):
                skip_until = None
            continue
        if line.startswith(_COMMENTS) or line in (".", "'"):
            continue
        if line.startswith((".", "'")):
            name, _, rest = line[1:].lstrip().partition(" ")
            if name in _SKIPPED_BLOCKS:
                skip_until = _SKIPPED_BLOCKS[name]
                continue
            if name == "SH":
                heading = inline(" ".join(_arguments(rest))).strip().upper()
                current = out.setdefault(heading, []) if heading not in out else []  # a repeat's text dropped
                continue
            if current is None:
                continue
            args = [inline(a) for a in _arguments(rest)]
            if name in _ALTERNATING:
                current.append("".join(args))
            elif name in _TEXT:
                current.append(" ".join(args))
            elif name == "SS":  # a subsection's heading: a paragraph of its own
                current.extend(["", " ".join(args), ""])
            elif name in ("PP", "P", "LP", "TP", "IP", "sp", "HP"):
                current.append("")
                if name == "IP" and args and args[0] not in ("", "•", "*"):
                    current.append(args[0])
            continue  # any other request or macro: layout, dropped
        if current is not None:  # a line ending in \\c runs on into the next without a space
            current.append(inline(line[:-2]) + _GLUE if line.endswith("\\c") else inline(line))
    return {heading: _paragraphs(lines) for heading, lines in out.items()}


def _paragraphs(lines: list[str]) -> str:
    paragraphs, words = [], []
    for line in [*lines, ""]:
        if line.strip():
            words.append(line.strip())
        elif words:
            paragraphs.append(re.sub(r"\s+", " ", " ".join(words).replace(_GLUE + " ", "")))
            words = []
    return "\n\n".join(paragraphs)


def name_line(name_section: str) -> tuple[list[str], str] | None:
    """The names a page documents and its one-line description, from the text of its NAME section
    (``open, openat, creat - open and possibly create a file``); None when it has no such line."""
    names, dash, about = name_section.replace("\n\n", " ").partition(" - ")
    if not dash:
        return None
    listed = [n.strip() for n in names.split(",") if n.strip()]
    return (listed, about.strip()) if listed and about.strip() else None
