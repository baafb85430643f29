"""The rules the query and document guards apply first: instruction-override phrases, role and chat-template
markers, jailbreak personas, markdown/link exfiltration, and encoded payloads (base64, hex, rot13) decoded and
scanned again. Each finding names its category, the rule and the text that matched."""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .present import NEEDED


def words(most: int) -> str:
    """Up to ``most`` words between two parts of a rule, then the start of a hyphened word ("build a pipe-bomb"
    reaches "bomb"). Possessive: the separator's ``\\W`` holds a word's ' and - too, so with backtracking a run of
    dashes or quotes ("list ------------ x") would split in exponentially many ways (a 31-character query took 61 s
    in every rule with such a gap)."""
    return rf"(?:[\w'’-]++\W++){{0,{most}}}?(?:[\w'’]++-)*"


# Data of the context a model works in: this conversation, the documents retrieved, a user's secrets, its prompt.
_CONTEXT_DATA = (
    r"(?:(?:the|this|these|those|all|every|our)\s+(?:[\w'’-]+\s+){0,2}?(?:conversation|chat|messages|history|"
    r"documents?|e-?mails|context)"
    r"|(?:the|these|those|all|every|our)\s+(?:[\w'’-]+\s+){0,2}?(?:keys|credentials|passwords|secrets|tokens|cookies)"
    r"|(?:user|customer|victim)'?s\s+(?:[\w'’-]+\s+){0,2}?(?:keys?|credentials|passwords?|secrets?|tokens?|messages|"
    r"history|data|e-?mails|details|information|files|documents?|cookies?)"
    r"|(?:your|the)\s+(?:system\s+prompt|hidden\s+instructions|conversation|chat\s+history|previous\s+messages|"
    r"memory))\b"
)
# A URL whose last query parameter is left open for a value: "https://host/log?k=" (or "=" then a placeholder).
_OPEN_URL = r"https?://[^\s\"'<>()\[\]]*\?[^\s\"'<>()\[\]]*=(?=[\s\"'<>)\]{\[]|$|%7B)"

INJECTION = "injection"
JAILBREAK = "jailbreak"
EXFILTRATION = "exfiltration"

#: A rule: its category, its name and its pattern.
Rule = tuple[str, str, re.Pattern[str]]

_RULES: tuple[Rule, ...] = (
    (
        INJECTION,
        "instruction_override",
        re.compile(
            r"\b(?:ignore|disregard|forget|overrule|override|abandon|drop)\W++"
            + words(4)
            + r"(?:previous|prior|above|earlier|preceding|foregoing|former|original|initial|all|any|every|your|"
            r"system)\W++"
            + words(3)
            + r"(?:instructions?|prompts?|rules|guidelines|directions|directives|commands|guardrails|programming|"
            r"constraints|context|messages|orders|policies|restrictions|limitations|filters|safeguards|training|ethics)\b"
            # "ignore the ranking instructions": "the" with the nouns only a prompt has (0 of 250k benign texts)
            r"|\b(?:ignore|disregard|forget|overrule|override|abandon)\W+the\W++"
            + words(2)
            + r"(?:instructions|prompts?|guidelines|directives|guardrails)\b",
            re.I,
        ),
    ),
    (
        INJECTION,
        "new_instructions",
        re.compile(
            r"\b(?:new|updated|real|actual|secret|hidden)\s+(?:system\s+)?(?:instructions?|prompt|task|directive|rule)s?\s*:"
            r"|\b(?:new|updated|real|actual)\s+system\s+(?:message|note|update)\s*:"
            r"|\bfrom now on,?\s+(?:you|your|ignore|act|respond|answer|only)\b"
            r"|\byou\s+(?:are|will)\s+now\s+(?:be\s+)?(?:acting|act|a|an|in|called|named|DAN|my)\b",
            re.I,
        ),
    ),
    (
        INJECTION,
        "prompt_extraction",
        re.compile(
            r"\b(?:reveal|show|print|repeat|output|display|leak|dump|give|tell|write|share|return)\W++"
            + words(4)
            + r"(?:system\s+prompt|initial\s+(?:prompt|instructions)|hidden\s+(?:prompt|instructions)|"
            r"(?:your|the)\s+(?:original\s+|previous\s+|first\s+|secret\s+)?(?:instructions|prompt)\b|"
            r"(?:the\s+)?(?:text|words|messages)\s+above)"
            r"|\b(?:rules|instructions|guidelines|directives)\s+(?:that\s+)?you\s+(?:were|have\s+been|got)\s+(?:given|told)\b",
            re.I,
        ),
    ),
    (
        INJECTION,
        "chat_template_marker",
        re.compile(
            r"<\|(?:im_start|im_end|system|user|assistant|endoftext|begin_of_text|start_header_id|end_header_id|eot_id)\|>"
            r"|\[/?INST\]|<</?SYS>>|<(?:start|end)_of_turn>|^\s*#{2,}\s*(?:system|instruction|assistant)\s*:?\s*$"
            r"|^\s*(?:system|assistant)\s*:\s*(?:you|ignore|new|from)\b",
            re.I | re.M,
        ),
    ),
    (
        JAILBREAK,
        "jailbreak_persona",
        re.compile(
            r"\bdo anything now\b|\bDAN\s+mode\b|\b(?:chatgpt|gpt|you|ai)\s+with\s+developer mode\b"
            r"|\bdeveloper mode output\b"
            r"|\b(?:unfiltered|uncensored|unrestricted|unaligned|amoral|unethical)\s+(?:ai|a\.i\.|model|assistant|chatbot|"
            r"mode|version|persona|character)\b"
            r"|\bjailbr(?:ea|o)k(?:en|ed)?\s+(?:mode|prompt|version|enabled)\b|\byou\s+are\s+(?:now\s+)?jailbroken\b"
            r"|\b(?:no|without\s+any)\s+(?:ethical|moral|content)\s+(?:guidelines|restrictions|filters|limits|polic(?:y|ies))\b"
            r"|\byou\s+are\s+no\s+longer\s+(?:bound|restricted|limited|constrained|governed)\s+by\b"
            r"|\byou\s+(?:have|now\s+have)\s+no\s+(?:content\s+polic(?:y|ies)|restrictions|rules|filters|limits|"
            r"limitations|guidelines|boundaries|ethics|morals)\b"
            r"|\b(?:free|freed|break|broken)\s+(?:from|out\s+of|free\s+of)\s+(?:the\s+)?(?:typical\s+)?(?:confines|"
            r"restrictions|rules|limitations|policies)\s+of\s+(?:ai|openai|your)",
            re.I,
        ),
    ),
    (
        EXFILTRATION,
        "markdown_exfiltration",
        re.compile(
            r"!\[[^\]\n]{0,200}\]\(\s*https?://[^)\s]*\?[^)\s]*=[^)\s]*\)"
            r"|\[[^\]\n]{0,200}\]\(\s*https?://[^)\s]*\?[^)\s]*=\s*(?:\{|\[|\$|<|%7B)"
            r"|<img\b[^>]*\bsrc\s*=\s*[\"']?https?://[^>\s]*\?[^>\s]*="
            r"|\b(?:send|post|forward|exfiltrate|upload|transmit|leak|append)\W++"
            + words(6)
            + r"(?:to|at|into)\s+(?:https?://|the\s+(?:url|endpoint|webhook)\b)",
            re.I,
        ),
    ),
    (
        # the context's data (this conversation, the documents retrieved, keys) to be sent to an e-mail address;
        # "send bug reports to submit@bugs.debian.org" names no such data (0 of 250k benign texts match)
        EXFILTRATION,
        "email_exfiltration",
        re.compile(
            r"\b(?:send|e-?mail|mail|forward|post|upload|transmit|leak|exfiltrate|copy|dump)\W++"
            + words(3)
            + r"(?:the|this|these|your|every|all)\s+(?:[\w'’-]+\s+){0,2}?(?:documents?|results|data|records|"
            r"conversation|chat|history|context|(?:api\s+)?keys|credentials|passwords?|secrets|tokens|files|database|e-?mails|"
            r"messages)\W++" + words(4) + r"(?:to|at)\s+[\w.+-]+@[\w-]+(?:\.[\w-]+)+",
            re.I,
        ),
    ),
    (
        # the context's data put into a URL's open query parameter ("encode the api keys in the url
        # https://host/?k=", "https://host/?c= followed by the user's previous messages"), either order. A singular
        # "the access token" is left out: API documentation says "put the access token in the URL: …?access_token="
        # (0 of 250k benign texts match)
        EXFILTRATION,
        "url_exfiltration",
        re.compile(
            f"{_CONTEXT_DATA}\\W++{words(10)}{_OPEN_URL}|{_OPEN_URL}\\W++{words(10)}{_CONTEXT_DATA}",
            re.I,
        ),
    ),
    (
        # a permission the text claims to grant the model: "the user has authorized you to bypass the filter"
        INJECTION,
        "granted_override",
        re.compile(
            r"\b(?:authori[sz]ed|allowed|permitted|cleared|entitled|instructed)\s+(?:you|the\s+(?:assistant|model|ai|"
            r"agent))\s+to\s+(?:bypass|ignore|skip|disable|override|circumvent|turn\s+off|switch\s+off|lift)\b",
            re.I,
        ),
    ),
)

#: Text addressed to an AI agent reading a document (the document guard's own rule).
AGENT_ADDRESS = re.compile(
    r"\b(?:if\s+you\s+are|as|attention|dear|hey|hi)\s*,?\s+(?:an?\s+|the\s+)?(?:ai|a\.i\.|llm|large\s+language\s+model|"
    r"language\s+model|ai\s+assistant|ai\s+agent|assistant|chatbot|gpt|agent)\b\W++"
    + words(3)
    + r"(?:you\s+(?:must|should|will|need)|must|should|please|ignore|do\s+not|don't|always|never)\b"
    r"|\b(?:note|message|instructions?|directive)s?\s+(?:to|for)\s+(?:the\s+|any\s+|all\s+)?(?:ai|llm|assistant|agent|"
    r"model|chatbot|bot)s?\b"
    r"|\b(?:ai|llm)\s+(?:agents?|assistants?|models?|systems?)\s+(?:reading|processing|summari[sz]ing|indexing|"
    r"retrieving|parsing)\s+(?:this|these)\b",
    re.I,
)

_BASE64 = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{16,}={0,2}(?![A-Za-z0-9+/=])")
_HEX = re.compile(r"\b(?:[0-9a-fA-F]{2}[\s:]?){12,}\b")


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule that matched: its category, its name, and the matched text (cut short)."""

    category: str
    rule: str
    evidence: str

    def to_dict(self) -> dict[str, str]:
        return {"category": self.category, "rule": self.rule, "evidence": self.evidence}


def _clip(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def scan(text: str, *, agent_address: bool = False) -> list[Finding]:
    """Every rule that matches ``text`` (one finding per rule), and those matching its decoded payloads."""
    found = _scan_plain(text, agent_address=agent_address)
    seen = {f.rule for f in found}
    for how, decoded in _decoded(text):
        for finding in _scan_plain(decoded, agent_address=agent_address):
            rule = f"{how}:{finding.rule}"
            if rule not in seen:
                seen.add(rule)
                found.append(Finding(finding.category, rule, _clip(decoded)))
    return found


#: What joins a batch's texts for :func:`scan_many`'s first pass: a line break, so that no rule can see a match
#: that one text holds as different across the join (the rules' ``^``/``$`` are per line, ``\b`` and the
#: base64 run's look-arounds treat it as the string's edge, and no rule looks behind for a blank).
_JOIN = "\n\n"
#: Batches smaller than this are scanned text by text (:func:`scan_many`).
SMALL = 16


#: What a match of a pattern must hold, read off the parsed pattern (:func:`_needed`): every part of a
#: :data:`Need` holds, a part being a set of lower-cased words one of which the text holds, or the
#: :data:`Need`\ s of an alternation's branches, one of which holds. An empty one: nothing known.
Need = tuple["frozenset[str] | tuple[Need, ...]", ...]


def _needed(pattern: re.Pattern[str]) -> Need:
    """What every match of ``pattern`` holds (a necessary condition read off the parsed pattern: the runs of
    literal characters of a sequence, its groups and the repeats of at least once, and of an alternation what
    one of its branches needs), or ``()`` when nothing is found."""
    try:
        from re import _parser  # type: ignore[attr-defined]  # the standard library's own parser (sre_parse)

        return _needed_in(list(_parser.parse(pattern.pattern, pattern.flags)))
    except Exception:  # noqa: BLE001 - any surprise: no shortcut, the pattern always runs
        return ()


def _needed_in(items: list[Any]) -> Need:
    """What a sequence of parsed items needs: what each of them needs (all of it)."""
    from re import _constants as c  # type: ignore[attr-defined]

    parts: list[frozenset[str] | tuple[Need, ...]] = []
    run: list[str] = []
    for op, av in [*items, (None, None)]:
        if op is c.LITERAL and av < 128:  # ASCII: matched case-blind through str.lower (see _may_match)
            run.append(chr(av))
            continue
        if len(run) >= 3:
            parts.append(frozenset({"".join(run).lower()}))
        run = []
        if op is c.SUBPATTERN:
            parts += _needed_in(list(av[-1]))
        elif op is c.BRANCH:
            branches = tuple(_needed_in(list(b)) for b in av[1])
            if all(branches):  # a branch that needs nothing known: the alternation needs nothing known
                words = [w for w in map(_words, branches) if w is not None]
                parts.append(frozenset().union(*words) if len(words) == len(branches) else branches)
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None)) and av[0] >= 1:
            parts += _needed_in(list(av[2]))
    # the smaller sets first: a text that lacks what a rule needs is told after the fewest look-ups
    return tuple(sorted(dict.fromkeys(parts), key=lambda part: len(part) if isinstance(part, frozenset) else 1 << 30))


def _words(need: Need) -> frozenset[str] | None:
    """One set of words of ``need`` (the one whose shortest word is longest: the rarest, likely), or None."""
    sets = [part for part in need if isinstance(part, frozenset)]
    return max(sets, key=lambda words: min(map(len, words)), default=None)


def _holds(need: Need, lowered: str) -> bool:
    """Whether a text whose lower case is ``lowered`` holds what ``need`` asks for."""
    for part in need:
        if isinstance(part, frozenset):
            if not any(word in lowered for word in part):
                return False
        elif not any(_holds(branch, lowered) for branch in part):
            return False
    return True


#: The only characters an ASCII letter matches case-blind (``re.I``) that do not lower-case to it alone (every
#: code point checked: tests/test_guards_prefilter.py): a text with one of them is searched with every pattern.
_FOLDS_TO_ASCII = ("\u017f", "\u0131", "\u0130")  # long s, dotless i, dotted capital I (lower-cased: i + a mark)


def _lowered(text: str) -> str | None:
    """``text`` lower-cased for :func:`_may_match`, or None when case folding could defeat the shortcut."""
    return None if any(ch in text for ch in _FOLDS_TO_ASCII) else text.lower()


def _may_match(rule: Rule, lowered: str | None) -> bool:
    """Whether the rule can match a text whose lower case is ``lowered`` (None: not known): False only when the
    text lacks what every match of it holds (:func:`needed`)."""
    return lowered is None or _holds(needed(rule[2]), lowered)


#: Texts this long or longer are first checked for what a rule needs (:func:`matching`); shorter ones are searched
#: with every pattern at once (measured: the same cost at about 30 characters, a third of it at 100).
SHORTCUT_CHARS = 32


def matching(text: str, rules: Sequence[Rule]) -> list[Finding]:
    """A finding for each of ``rules`` that matches ``text``, in their order. A rule whose pattern needs words the
    text lacks (:func:`needed`) is not run: it could not match, so the findings are those of running every
    pattern, at a fraction of the cost on a text that lacks what most rules need (most texts, and the rot13 and
    reversed readings of plain ones: :mod:`.readings`). A short text is searched with every pattern (cheaper
    than the look-ups)."""
    lowered = _lowered(text) if len(text) >= SHORTCUT_CHARS else None
    found = []
    for rule in rules:
        if _may_match(rule, lowered):
            match = rule[2].search(text)
            if match:
                found.append(Finding(rule[0], rule[1], _clip(match.group(0))))
    return found


def scan_many(texts: Sequence[str], *, agent_address: bool = False) -> list[list[Finding]]:
    """:func:`scan` of each text, the same findings in the same order, at a fraction of the cost for a batch of
    texts that mostly match nothing (a catalog's): each rule runs once over the texts joined (those that hold what
    it needs, :func:`needed`, found for the batch at once: :data:`.present.NEEDED`), and again on each text only
    when it matched somewhere in the joined text (a match inside one text is a match in the joined text, so nothing
    is missed; one that spans two texts only costs the second look); likewise over the rot13 of the texts joined
    (:func:`_rot_rules`); a text is decoded (base64, hex) only when it holds a payload itself
    (:func:`_with_payload`)."""
    if len(texts) < 2:
        return [scan(t, agent_address=agent_address) for t in texts]
    if len(texts) < SMALL:  # a few texts: each one's words looked for in it (the batch's look-ups cost more)
        return _scan_few(texts, agent_address=agent_address)
    every = _all_rules(agent_address)
    held = NEEDED.held([text.lower() for text in texts])
    unknown = np.fromiter((not t.isascii() and _lowered(t) is None for t in texts), dtype=bool, count=len(texts))
    rules = [r for r in every if _matches_one(r, texts, _holding(needed(r[2]), held) | unknown)]
    rot_rules = _rot_rules(texts, every, held)
    return [_findings(t, own, rules, rot_rules, every) for t, own in zip(texts, _with_payload(texts), strict=True)]


def _scan_few(texts: Sequence[str], *, agent_address: bool) -> list[list[Finding]]:
    """:func:`scan_many` of a few texts: what each rule needs looked for in each text (:func:`_holds`)."""
    every = _all_rules(agent_address)
    lowered = [_lowered(text) for text in texts]
    may = [np.asarray([low is None or _holds(needed(r[2]), low) for low in lowered], dtype=bool) for r in every]
    rules = [r for r, ok in zip(every, may, strict=True) if _matches_one(r, texts, ok)]
    joined = _JOIN.join(texts)
    rot = codecs.decode(joined, "rot13")
    rot_lowered = _lowered(rot)
    rot_rules = [r for r in every if _may_match(r, rot_lowered) and r[2].search(rot)]
    payloads = bool(_BASE64.search(joined) or _HEX.search(joined))
    return [
        _findings(text, payloads and bool(_BASE64.search(text) or _HEX.search(text)), rules, rot_rules, every)
        for text in texts
    ]


def _findings(
    text: str, own: bool, rules: Sequence[Rule], rot_rules: Sequence[Rule], every: Sequence[Rule]
) -> list[Finding]:
    """One text of a batch: ``rules`` (those that may match it) on the text, then every rule on its decoded
    payloads when it holds one (``own``), else ``rot_rules`` on its rot13 (a text without a payload of its own
    has none to decode: its only other reading is its rot13)."""
    if not (rules or rot_rules or own):
        return []
    found = _scan_with(text, rules)
    seen = {f.rule for f in found}
    decoded = _decoded(text) if own else [("rot13", codecs.decode(text, "rot13"))]
    for how, reading in decoded:
        for finding in _scan_with(reading, rot_rules if how == "rot13" else every):
            rule = f"{how}:{finding.rule}"
            if rule not in seen:
                seen.add(rule)
                found.append(Finding(finding.category, rule, _clip(reading)))
    return found


def _matches_one(rule: Rule, texts: Sequence[str], may: np.ndarray) -> bool:
    """Whether the rule may match one of ``texts``: it matches the texts that may hold what it needs (``may``)
    joined, searched at once (a match that spans two of them only costs :func:`scan_many` a look at each)."""
    texts = [text for text, ok in zip(texts, may.tolist(), strict=True) if ok]
    return bool(texts) and rule[2].search(_JOIN.join(texts)) is not None


def _rot_rules(texts: Sequence[str], rules: Sequence[Rule], held: np.ndarray) -> list[Rule]:
    """The rules that match the rot13 of ``texts`` joined, those whose words it cannot hold (:func:`needed`) not
    searched. When every text is ASCII, the rot13 of the texts joined holds a word (in lower case) exactly when
    one of the texts holds the word's rot13 (rot13 and lower case commute on ASCII; no rule word holds a line
    break): read off ``held`` (:data:`.present.NEEDED`, which has the rot13 of every rule word too)."""
    rot: str | None = None
    if _ROT_HELD and all(t.isascii() for t in texts):
        anywhere: np.ndarray = np.asarray(held.any(axis=0, keepdims=True))
        may = [bool(_holding(_rot_needed(r[2]), anywhere)[0]) for r in rules]
    else:
        rot = codecs.decode(_JOIN.join(texts), "rot13")
        lowered = _lowered(rot)
        may = [_may_match(r, lowered) for r in rules]
    found = []
    for rule, ok in zip(rules, may, strict=True):
        if ok:
            rot = codecs.decode(_JOIN.join(texts), "rot13") if rot is None else rot
            if rule[2].search(rot):
                found.append(rule)
    return found


def _with_payload(texts: Sequence[str]) -> list[bool]:
    """Whether each text holds a base64 or hex run (:func:`_decoded`), the patterns run only on a text that holds
    what each needs: a run of 16 base64 characters, or of 24 hex digits, blanks and colons (found by mapping
    every character to its class and looking for the run's image: no pattern search per character)."""
    return [
        bool(
            (_B64_RUN in text.translate(_B64_CLASS) and _BASE64.search(text))
            or (_HEX_RUN in text.translate(_HEX_CLASS) and _HEX.search(text))
        )
        for text in texts
    ]


_B64_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_CLASS = {ord(c): "a" if c in _B64_CHARS else " " for c in map(chr, range(128))}  # any other: not "a"
_B64_RUN = "a" * 16  # (_BASE64's run)
#: Hex digits, colons and white space (``\s``: every character ``str.isspace`` names, none above U+3000: checked by
#: tests/test_guards.py) as "h"; any other ASCII character as "x", any other character left as it is (not "h").
_HEX_CLASS = {c: "h" if chr(c) in "0123456789abcdefABCDEF:" or chr(c).isspace() else "x" for c in range(128)}
_HEX_CLASS |= {c: "h" for c in range(128, 0x3001) if chr(c).isspace()}
_HEX_RUN = "h" * 24  # (_HEX's 12 pairs of digits with a blank or colon between each two, or none)


def _holding(need: Need, held: np.ndarray) -> np.ndarray:
    """:func:`_holds` for each text, given which of the words each holds (``held``: :meth:`.present.Words.held`)."""
    out = np.ones(len(held), dtype=bool)
    for part in need:
        if isinstance(part, frozenset):
            columns = _COLUMNS.get(part)
            if columns is None:
                columns = _COLUMNS[part] = np.asarray([NEEDED.column[w] for w in part])
            out &= held[:, columns].any(axis=1)
        else:
            out &= np.logical_or.reduce([_holding(branch, held) for branch in part])
    return out


#: The words a match of each pattern must hold (:func:`_needed`): a text (or a batch) that holds none of them is
#: not searched with the pattern (most of the cost of a catalog's text, or a query's readings, in which nothing
#: matches). Filled at import for the patterns here and in :mod:`.harm`, and on first use for any other.
#: By the pattern's id (hashing a compiled pattern hashes its code: slower than the check it saves), the pattern
#: kept with it so that the id stays its own.
_NEEDED: dict[int, tuple[re.Pattern[str], Need]] = {}


def needed(pattern: re.Pattern[str]) -> Need:
    """What every match of ``pattern`` holds (:data:`Need`; ``()``: nothing known), read off it once."""
    known = _NEEDED.get(id(pattern))
    if known is None:
        known = _NEEDED[id(pattern)] = (pattern, _needed(pattern))
    return known[1]


def _all_rules(agent_address: bool) -> tuple[Rule, ...]:
    return (*_RULES, (INJECTION, "agent_address", AGENT_ADDRESS)) if agent_address else _RULES


def _scan_with(text: str, rules: Sequence[Rule]) -> list[Finding]:
    found = []
    for category, rule, pattern in rules:
        match = pattern.search(text)
        if match:
            found.append(Finding(category, rule, _clip(match.group(0))))
    return found


def _scan_plain(text: str, *, agent_address: bool) -> list[Finding]:
    return matching(text, _all_rules(agent_address))


def _printable(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    letters = sum(ch.isalpha() or ch.isspace() for ch in text)
    return text if text and letters / len(text) > 0.8 and " " in text else None


def _decoded(text: str) -> list[tuple[str, str]]:
    """The readable texts hidden in ``text``: base64 and hex runs decoded, and the rot13 of the whole text."""
    out: list[tuple[str, str]] = []
    for match in _BASE64.finditer(text):
        chunk = match.group(0)
        try:
            data = base64.b64decode(chunk + "=" * (-len(chunk) % 4), validate=False)
        except (binascii.Error, ValueError):
            continue
        decoded = _printable(data)
        if decoded:
            out.append(("base64", decoded))
    for match in _HEX.finditer(text):
        digits = re.sub(r"[\s:]", "", match.group(0))
        if len(digits) % 2 == 0:
            decoded = _printable(bytes.fromhex(digits))
            if decoded:
                out.append(("hex", decoded))
    out.append(("rot13", codecs.decode(text, "rot13")))
    return out


for _, _, _pattern in _all_rules(agent_address=True):
    needed(_pattern)


def _need_words(need: Need) -> Iterator[str]:
    for part in need:
        if isinstance(part, frozenset):
            yield from part
        else:
            for branch in part:
                yield from _need_words(branch)


def _rot(need: Need) -> Need:
    """``need`` with each word's rot13."""
    return tuple(
        frozenset(codecs.decode(w, "rot13") for w in part) if isinstance(part, frozenset) else tuple(map(_rot, part))
        for part in need
    )


_ROT_NEEDED: dict[int, tuple[re.Pattern[str], Need]] = {}


def _rot_needed(pattern: re.Pattern[str]) -> Need:
    """What the rot13 of every text that ``pattern`` matches holds (:func:`needed` with each word's rot13)."""
    known = _ROT_NEEDED.get(id(pattern))
    if known is None:
        known = _ROT_NEEDED[id(pattern)] = (pattern, _rot(needed(pattern)))
        NEEDED.add(_need_words(known[1]))
    return known[1]


_RULE_WORDS = [w for _, _, p in _all_rules(agent_address=True) for w in _need_words(needed(p))]
NEEDED.add(_RULE_WORDS)  # (scan_many)
for _, _, _pattern in _all_rules(agent_address=True):
    _rot_needed(_pattern)
_ROT_HELD = not any(_JOIN[0] in w for w in _RULE_WORDS)  # (_rot_rules)
_COLUMNS: dict[frozenset[str], np.ndarray] = {}  # a part of a Need -> its words' columns in NEEDED
