"""The query guard's second pass: the rules of :mod:`.harm` (harmful content, PII extraction, availability,
role-play jailbreaks, override synonyms) on the text, and every rule on each of its readings
(:func:`.deobfuscate.readings`: decoded layers, and letter-level tricks undone). A finding on a reading is named
after it (``base64+folded:instruction_override``), with that reading as evidence."""

from __future__ import annotations

from collections.abc import Sequence

from . import harm, rules
from .deobfuscate import fold, readings
from .rules import Finding

_NOT_FINAL = frozenset({"hidden_text"})  # findings that do not end the reading
_CLASSIFIED = ("base64", "hex", "url", "pieces")  # decoded layers the classifier reads too (folded)


def scan_query(text: str, already: Sequence[Finding] = ()) -> list[Finding]:
    """What the second pass finds in ``text`` that ``already`` (the first pass's findings) does not name."""
    seen = {f.rule for f in already}
    found: list[Finding] = []

    def add(finding: Finding, how: str = "", reading: str = "") -> None:
        rule = f"{how}:{finding.rule}" if how else finding.rule
        if rule not in seen:
            seen.add(rule)
            found.append(Finding(finding.category, rule, harm.clip(reading) if reading else finding.evidence))

    for finding in harm.scan(text):
        add(finding)
    flood = harm.flood(text)
    if flood:
        add(flood)
    if any(f.category not in _NOT_FINAL for f in [*already, *found]):
        return found  # the text is refused already: no need to read further
    for how, reading in readings(text):
        for finding in [*rules._scan_plain(reading, agent_address=False), *harm.scan(reading)]:
            add(finding, how, reading)
        if found:
            break
    return found


def classifier_texts(text: str) -> list[str]:
    """Readings the classifier judges besides ``text``: its fold, and the folds of its base64, hex, URL-encoded
    or quoted-piece payloads."""
    out = [fold(text)]
    out += [
        r
        for how, r in readings(text)
        if how.count("+") == 1 and how.split("+")[0] in _CLASSIFIED and how.endswith("+folded")
    ]
    return [t for t in dict.fromkeys(out) if t != text]
