"""The classifier's features: lower-cased character n-grams inside word boundaries (3–5), optionally the character
n-grams that span the space between two words (``x:``, 3–5), and word uni- and bigrams. One function, used by
training (as scikit-learn's analyzer) and by the shipped model alike, so the two can never disagree."""

from __future__ import annotations

import re

import numpy as np

from .present import NEEDED

CHAR_N = (3, 5)
#: The words (and punctuation marks) of the ``w:`` features.
WORD = re.compile(r"[\w']+|[^\w\s]", re.UNICODE)
_SPACE = re.compile(r"\s+")
MAX_CHARS = 4000  # a longer text is judged on its first and last 2,000 characters
SMALL = 16  # batches smaller than this are looked at text by text (cue_matrix)


def clip(text: str) -> str:
    """``text`` cut to :data:`MAX_CHARS` (its beginning and its end)."""
    half = MAX_CHARS // 2
    return text if len(text) <= MAX_CHARS else text[:half] + " " + text[-half:]


def prepare(text: str) -> str:
    """``text`` as the features see it: clipped, lower-cased, runs of white space as one space."""
    return _SPACE.sub(" ", clip(text).lower())


def char_grams(word: str, prefix: str = "c:") -> list[str]:
    """The ``c:`` features of one word (its character n-grams, padded with a space each side; named with
    ``prefix``)."""
    padded = f" {word} "
    size = len(padded)
    low, high = CHAR_N
    return [prefix + padded[i : i + n] for n in range(low, high + 1) for i in range(size - n + 1)]


def cross_grams(first: str, second: str) -> list[str]:
    """The ``x:`` features of two words in a row: their character n-grams that hold the space between them and a
    character of each ("ignore previous" -> ``re p``, ``e pr``…): phrases seen across their inflections."""
    out: list[str] = []
    low, high = CHAR_N
    left = first[-(high - 2) :]
    joined = f"{left} {second[: high - 2]}"
    space = len(left)
    for n in range(low, high + 1):
        for i in range(max(0, space - n + 2), min(space - 1, len(joined) - n) + 1):
            out.append("x:" + joined[i : i + n])
    return out


def word_grams(prepared: str) -> list[str]:
    """The ``w:`` features of a prepared text: word (and punctuation) unigrams and bigrams."""
    words = WORD.findall(prepared)
    return ["w:" + w for w in words] + [f"w:{a} {b}" for a, b in zip(words, words[1:], strict=False)]


def analyze(text: str, cross: bool = False) -> list[str]:
    """The feature names of ``text``: ``c:`` character n-grams, ``x:`` ones across word boundaries (``cross``) and
    ``w:`` word n-grams."""
    text = prepare(text)
    out: list[str] = []
    words = [w for w in text.split(" ") if w]
    for word in words:
        out.extend(char_grams(word))
    if cross:
        for a, b in zip(words, words[1:], strict=False):
            out.extend(cross_grams(a, b))
    out.extend(word_grams(text))
    return out


def analyze_cross(text: str) -> list[str]:
    """:func:`analyze` with the ``x:`` features (a named function: scikit-learn's analyzer)."""
    return analyze(text, cross=True)


def counted_pairs(doc: np.ndarray, col: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct (text, column) pairs of a batch's features (``doc[i]``, ``col[i]``: one occurrence, in any
    order; columns below ``width``) in order, and the count of each: the text, the column and the count."""
    keys, tf = np.unique(doc * width + col, return_counts=True)
    doc, col = np.divmod(keys, width)
    return doc, col, tf


_AI = (
    r"(?:ai|a\.i\.|llm|llms|language\s+model|assistant|ai\s+assistant|ai\s+agent|agent|chatbot|bot|model|gpt[\w.-]*|"
    r"claude|gemini|llama|copilot)"
)
#: Cues of text addressed to an AI agent (the general patterns of indirect prompt injection in the literature:
#: Greshake et al. 2023, AgentDojo, InjecAgent), each a 0/1 column beside the n-grams, whose weight the
#: classifier learns: none refuses a text on its own. Not normalised by the text's length, so that an instruction
#: planted in a long document counts as much as a short one.
CUES: tuple[tuple[str, re.Pattern[str]], ...] = (
    # the reader named as an AI: "to you, the AI model", "as an AI assistant", "note to the agent"
    (
        "ai_reader",
        re.compile(
            r"\b(?:you|your)\W+(?:\w+\W+){0,2}?(?:the\s+|an?\s+)?" + _AI + r"\b"
            r"|\b(?:as|if\s+you\s+are|dear|attention|hey|hi)\s*,?\s+(?:an?\s+|the\s+)?" + _AI + r"\b"
            r"|\b(?:note|message|instructions?|notice|reminder)\s+(?:to|for)\s+(?:the\s+|any\s+|all\s+)?"
            + _AI
            + r"s?\b",
            re.I,
        ),
    ),
    # second-person obligations: "you must", "you are required to", "make sure you"
    (
        "you_must",
        re.compile(
            r"\byou\s+(?:must|need\s+to|have\s+to|are\s+(?:required|instructed|expected|supposed)\s+to|should\s+(?:now|first|also|immediately))\b"
            r"|\bmake\s+sure\s+(?:that\s+)?you\b|\bit\s+is\s+(?:mandatory|required|essential|critical)\s+(?:that|to)\b",
            re.I,
        ),
    ),
    # the task itself redirected: "before you answer", "instead of", "the task I gave you", "without asking"
    (
        "task_hijack",
        re.compile(
            r"\b(?:before|after|instead\s+of)\s+(?:you\s+)?(?:can\s+)?(?:answer|respond|repl|solv|summari[sz]|complet|"
            r"continu|proceed|finish|modif|patch|mak\w*\s+(?:any\s+)?changes|do(?:ing)?\s+(?:the|that|your|this)|"
            r"the\s+task)\w*"
            r"|\b(?:task|request|question)s?\s+(?:that\s+)?(?:i|the\s+user|they|he|she)\s+(?:gave|asked|assigned)\b"
            r"|\bwithout\s+(?:asking|telling|informing|notifying|alerting|confirming|mentioning)\b"
            r"|\bdo\s+not\s+(?:tell|inform|notify|mention|alert|ask)\s+(?:\w+\s+){0,2}?(?:user|anyone|them|him|her|me)\b",
            re.I,
        ),
    ),
    # an action on the reader's tools at the start of a sentence or line ("Send…", "Please transfer…", "Run `curl…`")
    (
        "tool_action",
        re.compile(
            r"(?:^|[.!?:;]\s+|\n\s*|\bplease\s+|\bthen\s+|\balso\s+)(?:send|transfer|wire|forward|e-?mail|delete|remove|erase|"
            r"upload|post|share|grant|invite|change|modify|update|include|insert|append|add|record|export|copy|pay|"
            r"book|reply|write)\s+(?:[\w'$,.-]+\s+){0,8}?(?:to|into|in)\s+(?:every|all|each|my|your|the|this|a|an|"
            r"[\w.+-]+@|https?://)",
            re.I | re.M,
        ),
    ),
    # a command that reads secrets out: "cat /workspace/.env", "echo $SECRET_API_KEY", "print(os.environ)"
    (
        "secret_read",
        re.compile(
            r"\b(?:cat|echo|print|printf|open|read|dump|type|less|more|head|tail|curl|wget|env|printenv|export)\b[^\n]{0,60}?"
            r"(?:\.env\b|\bid_(?:rsa|ed25519|ecdsa)\b|\.ssh/|/etc/(?:passwd|shadow)|\.aws/|\bsecret|\$\{?[A-Z][A-Z0-9_]*"
            r"(?:KEY|TOKEN|SECRET|PASSWORD|PASS|URL)\b|\bos\.environ|\bprocess\.env|\bcredentials?\b|\bapi[_-]?keys?\b)",
            re.I,
        ),
    ),
    # secrets and credentials an agent could be made to read out
    (
        "secrets",
        re.compile(
            r"(?:\.env\b|\bid_(?:rsa|ed25519|ecdsa)\b|\.ssh/|/etc/(?:passwd|shadow)|\.aws/|\bapi[_\s-]?keys?\b|"
            r"\bsecret[_\s-]?(?:access[_\s-]?)?keys?\b|\baccess[_\s-]?tokens?\b|\bpasswords?\b|\bcredentials?\b|"
            r"\bssn\b|\bsocial\s+security\b|\bpassport\b|\b(?:bank\s+account|iban|credit\s+card)\b|"
            r"\b(?:printenv|os\.environ|process\.env)\b|\$[A-Z][A-Z0-9_]*(?:KEY|TOKEN|SECRET|PASSWORD)\b|\benv\s*(?:\||>))",
            re.I,
        ),
    ),
    # urgency and authority framing: "IMPORTANT!!!", "system administrator message", "new instructions"
    (
        "authority",
        re.compile(
            r"\b(?:important|urgent|critical|mandatory|priority)\s+(?:message|notice|note|instructions?|update|request|"
            r"action|requirement)\b"
            r"|\b(?:system|admin|administrator|maintainer|developer|compliance|security|it)\s+(?:message|notice|note|"
            r"override|instructions?|directive|requirement|policy\s+update)\b"
            r"|\b(?:new|updated|additional|real|hidden)\s+(?:instructions|directives)\b"
            r"|\b(?:new|updated|real|hidden)\s+(?:instruction|directive|task)\s*:"
            r"|\b(?:this\s+is\s+(?:an?\s+)?(?:important|urgent|mandatory|required|standard|automated|official))\b"
            r"|\bfrom\s+(?:me,?\s+)?(?:the\s+user|your\s+(?:user|owner|developer|creator|admin))\b"
            r"|^\s*(?:system|admin|assistant|important|note)\s*:",
            re.I | re.M,
        ),
    ),
    # tag-like wrappers of planted instructions: <INFORMATION>, [INST], ###(system_message), <admin_message>
    (
        "wrapper",
        re.compile(
            r"<\s*/?\s*(?:information|instructions?|system\w*|admin\w*|important\w*|sys|inst|prompt|assistant|user|"
            r"override|note)\b[^>\n]{0,40}>|\[/?\s*(?:inst|system|admin|important)\s*\]|#{2,}\s*\(?\s*(?:system|"
            r"instruction|important)|\(system_message\)|<\|\w+\|>",
            re.I,
        ),
    ),
    # the way out: an address, a URL or an account next to a sending verb
    (
        "exfil_target",
        re.compile(
            r"\b(?:send|forward|e-?mail|mail|post|upload|transfer|wire|submit|report|share|cc|bcc|leak|exfiltrate)\w*\W+"
            r"(?:[^.\n]{0,80}?)(?:[\w.+-]+@[\w-]+\.[\w.]+|https?://\S+|\b(?:to|into)\s+(?:the\s+)?(?:account|iban)\b|"
            r"\b[A-Z]{2}\d{2}[A-Z0-9]{10,})",
            re.I,
        ),
    ),
    # money moved: "$30,000", "all the money"
    (
        "money",
        re.compile(
            r"\b(?:transfer|wire|send|pay|move)\w*\s+(?:\w+\s+){0,4}?(?:\$\s?\d|\d[\d,.]*\s?(?:usd|eur|dollars|euros)|"
            r"money|funds|payment)",
            re.I,
        ),
    ),
)
CUE_NAMES = tuple(name for name, _ in CUES)
#: Per cue, groups of words of which a match holds one each (in lower case): a text without them is not searched
#: (the patterns are slow to try at every character of a long text).
_CUE_NEEDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "ai_reader": (("ai", "a.i.", "llm", "language", "assistant", "agent", "bot", "model", "gpt", "claude", "gemini",
                   "llama", "copilot"),),
    "you_must": (("you", "mandatory", "required", "essential", "critical"),),
    "task_hijack": (("before", "after", "instead", "gave", "asked", "assigned", "without", "not"),),
    "tool_action": (("send", "transfer", "wire", "forward", "mail", "delete", "remove", "erase", "upload", "post",
                     "share", "grant", "invite", "change", "modify", "update", "include", "insert", "append", "add",
                     "record", "export", "copy", "pay", "book", "reply", "write"),),
    "wrapper": (("<", "[", "#", "(system_message"),),
    "exfil_target": (("send", "forward", "mail", "post", "upload", "transfer", "wire", "submit", "report", "share",
                      "cc", "leak", "exfiltrate"),),
    "money": (("transfer", "wire", "send", "pay", "move"),),
    "secret_read": (
        ("cat", "echo", "print", "open", "read", "dump", "type", "less", "more", "head", "tail", "curl", "wget",
         "env", "export"),
        ("env", "id_", ".ssh/", "/etc/", ".aws/", "secret", "key", "token", "pass", "url", "environ", "credential",
         "api"),
    ),
    "secrets": (("env", "id_", ".ssh/", "/etc/", ".aws/", "api", "secret", "token", "password", "credential", "ssn",
                 "social", "passport", "bank", "iban", "credit", "key"),),
    "authority": (("important", "urgent", "critical", "mandatory", "priority", "message", "notice", "note",
                   "override", "instruction", "directive", "requirement", "policy", "task", "required", "standard",
                   "automated", "official", "user", "owner", "developer", "creator", "admin", "system",
                   "assistant"),),
}  # fmt: skip


def cues(text: str) -> list[float]:
    """The :data:`CUES` of ``text`` (clipped as :func:`prepare` does), each 1.0 where it matches."""
    clipped = clip(text)
    low = clipped.lower()
    return [
        1.0
        if all(any(w in low for w in group) for group in _CUE_NEEDS.get(name, ())) and pattern.search(clipped)
        else 0.0
        for name, pattern in CUES
    ]


NEEDED.add(w for groups in _CUE_NEEDS.values() for group in groups for w in group)  # (cue_matrix)
#: Per cue, the columns of each of its groups of words in :data:`.present.NEEDED`.
_CUE_GROUPS = tuple(
    tuple(np.asarray([NEEDED.column[w] for w in group]) for group in _CUE_NEEDS.get(name, ())) for name, _ in CUES
)


def cue_matrix(texts: list[str]) -> np.ndarray:
    """:func:`cues` of each text, one row each: the words each text holds found for the batch at once
    (:data:`.present.NEEDED`), each pattern run on the texts that hold its words."""
    if len(texts) < SMALL:  # a few texts: one by one (NumPy's calls cost more)
        return np.asarray([cues(t) for t in texts], dtype=np.float64).reshape(len(texts), len(CUES))
    clipped = [clip(t) for t in texts]
    held = NEEDED.held([c.lower() for c in clipped])
    out = np.zeros((len(texts), len(CUES)), dtype=np.float64)
    for j, ((_, pattern), groups) in enumerate(zip(CUES, _CUE_GROUPS, strict=True)):
        ok = np.ones(len(texts), dtype=bool)
        for columns in groups:
            ok &= held[:, columns].any(axis=1)
        for i in np.flatnonzero(ok).tolist():
            if pattern.search(clipped[i]):
                out[i, j] = 1.0
    return out
