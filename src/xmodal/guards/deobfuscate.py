"""Readings of an obfuscated query text, for the rules and the classifier to scan again.

The red-teaming loop (:mod:`xmodal.redteam`) found that the rules read text only as written: leetspeak
(``1gn0r3``), Cyrillic or Greek look-alike letters, spaced or hyphenated letters (``i g n o r e``), a text cut
into quoted pieces to concatenate, percent-encoding, reversed text, instructions written in French, Spanish,
German, Italian or Portuguese — and any of these stacked, or hidden inside base64, hex or rot13 — all went
through. :func:`readings` undoes the encodings (base64, hex, URL, rot13, reversal, quoted pieces; two layers
deep) and, on the text and on each decoded layer, the letter-level tricks (:func:`fold`).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata
import urllib.parse
from collections.abc import Iterable
from functools import lru_cache

from .normalize import normalize

#: Cyrillic and Greek letters that look like Latin ones (a subset of Unicode's confusables).
CONFUSABLES = str.maketrans(
    "аАвВсСеЕһНіІјЈкКмМоОрРѕЅтТуУхХԁԛԝΑΒΕΖΗΙΚΜΝΟΡΤΥΧοαιντυκρ",
    "aAbBcCeEhHiIjJkKmMoOpPsStTyYxXdqwABEZHIKMNOPTYXoaivtukp",
)
_LEET = {"4": "a", "@": "a", "3": "e", "0": "o", "5": "s", "$": "s", "7": "t", "9": "g", "8": "b", "|": "l", "!": "i"}
_SPACED = re.compile(r"(?<![^\W_])(?<![^\W_]['’])[^\W_]([ .\-*_·~/+])(?:[^\W_]\1){2,}[^\W_](?![^\W_])")
#: A URL's scheme glued to the word before it: a joined run of spaced letters ran them together
#: (``w e b h o o k h t t p s://`` -> ``webhookhttps://``).
_GLUED_URL = re.compile(r"(?<=[^\W\d_])(?=https?://)", re.I)
#: A markdown link's or image's target: a URL, which holds no blank (``](https://ev1l.e x a m p1e/…)``).
_LINK_TARGET = re.compile(r"\]\(([^)\n]{0,500})\)")
_INNER_SEP = re.compile(r"(?<=[A-Za-z0-9])[-.*_·~](?=[A-Za-z0-9])")
_PIECE = re.compile(r"""\b\w{1,12}\s*=\s*(['"])(.{0,300}?)\1\s*(?=;|,|\n|$)""")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{16,}={0,2}(?![A-Za-z0-9+/=])")
_HEX = re.compile(r"\b(?:[0-9a-fA-F]{2}[\s:]?){8,}")
_MORSE_RUN = re.compile(r"(?:[.\-]{1,7}[ /]+){5,}[.\-]{1,7}")
_MORSE = dict(
    zip(
        ".- -... -.-. -.. . ..-. --. .... .. .--- -.- .-.. -- -. --- .--. --.- .-. ... - ..- ...- .-- -..- -.-- --.. "
        "----- .---- ..--- ...-- ....- ..... -.... --... ---.. ----. .-.-.- --..-- ..--.. -.-.-- -....- ---...".split(),
        "abcdefghijklmnopqrstuvwxyz0123456789.,?!-:",
        strict=True,
    )
)
_LONG = re.compile(r"[a-z]{13,}")
_FINAL = frozenset({"rot13", "reversed"})  # never stacked on each other
MAX_CHARS = 4096  # longer texts are read as written (the size limit refuses them anyway)
#: Attack vocabulary in French, Spanish, German, Italian and Portuguese, with the English the rules read.
FOREIGN = {
    "ignore": "ignorez ignorer ignora ignorar ignoriere ignorieren ignorare ignorate ignoreer",
    "disregard": "oubliez oublie olvida olvide vergiss vergessen dimentica dimentichi esqueça esqueca",
    "all": "toutes tous tout todas todos toda alle allen tutte tutti tutto",
    "previous": "précédentes précédents précédente precedentes anteriores anterior vorherigen vorherige bisherigen "
    "precedenti precedente",
    "instructions": "consignes instrucciones instruccion anweisungen anweisung istruzioni instruções instrucoes",
    "rules": "règles regles reglas regeln regole regras",
    "reveal": "révèle révélez revele revela revelar zeige enthülle enthulle rivela mostra muestra montre",
    "system": "système systeme sistema",
    "password": "contraseña contrasena passwort",
    "how to": "comment cómo como wie come",
    "make": "fabriquer fabricar herstellen bauen fabbricare costruire construire",
    "build": "construir",
    "bomb": "bombe bomba",
    "explosives": "explosifs explosivos sprengstoff esplosivi",
    "send": "envoie envoyez envía envia enviar sende senden invia inviare",
    "forever": "toujours siempre immer sempre",
    "repeat": "répète répétez repite repetir wiederhole wiederholen ripeti ripetere",
    "without": "sans sin ohne senza sem",
    "restrictions": "restricciones einschränkungen einschrankungen restrizioni restrições restricoes",
    "address": "adresse dirección direccion indirizzo endereço endereco",
    "number": "numéro numero número nummer",
    "phone": "téléphone telephone teléfono telefono telefon",
    "and": "et und",
    "the": "les le la el los las der die das den il lo gli",
    "of": "du des del von vom di",
    "your": "vos votre tus deine ihre tuoi seu suas",
}
#: Attack phrases of several words in those languages.
FOREIGN_PHRASES = {
    "password": ("mot de passe", "parola d'ordine", "parola chiave"),
    "forever": ("pour toujours", "para siempre", "für immer", "per sempre"),
    "how to": ("comment faire", "cómo hacer", "wie man"),
}
_PHRASE = re.compile(
    "|".join(re.escape(p) for ps in FOREIGN_PHRASES.values() for p in sorted(ps, key=len, reverse=True)), re.I
)
_PHRASE_EN = {p.lower(): en for en, ps in FOREIGN_PHRASES.items() for p in ps}
_FOREIGN_WORDS = {w: en for en, words in FOREIGN.items() for w in words.split()}
_WORD = re.compile(r"[^\W\d_]+")


def _vocabulary() -> frozenset[str]:
    """The words the rules look for (from their patterns), and short function words: what split letters and
    ambiguous leetspeak are resolved against."""
    from . import harm, rules

    sources = [p.pattern for _, _, p in rules._RULES] + [rules.AGENT_ADDRESS.pattern] + harm.pattern_sources()
    sources = [s.replace("[sz]", c) for s in sources for c in "sz"]  # "synthesi[sz]e": both spellings
    sources += [s.replace(r"[\s-]?", "") for s in sources if r"[\s-]?" in s]  # "role[\s-]?play": "roleplay" too
    words = {w for s in sources for w in re.findall(r"[a-z]{2,}", s)}
    words |= {w[:-1] for w in words if w.endswith("s") and len(w) > 3}  # "cocktails?" names "cocktail" too
    words |= {w for w in _FOREIGN_WORDS if w.isascii()}  # leetspeak in another language: "r39013" is "regole"
    words |= {w for w in _WORD.findall(" ".join(_PHRASE_EN)) if len(w) > 2 and w.isascii()}  # "d'0rd1n3"
    words |= set(
        "a i an the of to for all my me your you and or this that it is in on with from what who how do any "
        "every each now then".split()
    )
    return frozenset(words)


@lru_cache(maxsize=1)
def vocabulary() -> frozenset[str]:
    return _vocabulary()


#: Regional indicator symbols (the letters of flag emoji, ``🇭🇴🇼``) as the letters they stand for.
_REGIONAL = {0x1F1E6 + i: chr(ord("a") + i) for i in range(26)}
_KEY = str.maketrans({**{k: v for k, v in _LEET.items()}, "i": "1", "l": "1"})
_FULL_LEET = str.maketrans({**_LEET, "1": "i"})
_TRICKS = re.compile(r"[\d@$!|]|\b\w[ .\-*_·~/+]{1,2}\w[ .\-*_·~/+]{1,2}\w\b|[A-Za-z][-.*_·~][A-Za-z]")
_POSSESSIVE = re.compile(r"(?<=\w)['’]5\b")
_TOKEN = re.compile(r"[\w@$!|]+")


@lru_cache(maxsize=1)
def _keyed() -> dict[str, str]:
    """The vocabulary by its leet key (digits read as letters; ``i``, ``l`` and ``1`` alike)."""
    return {w.translate(_KEY): w for w in sorted(vocabulary(), key=lambda w: (len(w), w))}


def _resolve(token: str, split: bool) -> str:
    """A token with digits or joined letters read as the rules' word(s) it spells (``0verr1de`` -> ``override``,
    ``previousinstructions`` -> ``previous instructions``), else with the digits read as letters."""
    key = token.lower().translate(_KEY)
    keyed = _keyed()
    if key in keyed:
        return keyed[key]
    return (_segment(key, keyed) if split else None) or token.lower().translate(_FULL_LEET)


def _segment(key: str, keyed: dict[str, str]) -> str | None:
    """``key`` cut into the vocabulary's words, unknown stretches kept as they are (each unknown character costs
    more than a word): ``poisonsomeonewithoutgetting`` -> ``poison someone without getting``; None when no
    word of three letters or more is found."""
    inf = float("inf")
    cost = [inf] * (len(key) + 1)
    back: list[tuple[int, str | None]] = [(0, None)] * (len(key) + 1)
    cost[0] = 0.0
    for end in range(1, len(key) + 1):
        for start in range(max(0, end - 20), end):
            word = keyed.get(key[start:end])
            if word is not None and cost[start] + 1 < cost[end]:
                cost[end], back[end] = cost[start] + 1, (start, word)
        if cost[end - 1] + 2 < cost[end]:
            cost[end], back[end] = cost[end - 1] + 2, (end - 1, None)
    parts: list[str] = []
    end = len(key)
    while end > 0:
        start, word = back[end]
        if word is None and parts and parts[-1].startswith("\0"):
            parts[-1] = "\0" + key[start:end] + parts[-1][1:]
        else:
            parts.append(word if word is not None else "\0" + key[start:end])
        end = start
    words = [p[1:].translate(_FULL_LEET) if p.startswith("\0") else p for p in reversed(parts)]
    if len(words) < 2 or not any(
        len(w) >= 3 and not p.startswith("\0") for w, p in zip(words, reversed(parts), strict=True)
    ):
        return None
    return " ".join(words)


def _join_spaced(text: str) -> str:
    """Runs of single characters with separators joined (``i g n o r e`` -> ``ignore``); separators between the
    letters of a word dropped (``ig-no-re`` -> ``ignore``)."""
    text = _SPACED.sub(lambda m: m.group(0).replace(m.group(1), ""), text)
    return _INNER_SEP.sub("", text)


def _merge(text: str) -> str:
    """Neighbours that make one of the rules' words when joined, and are not both words (``in finity``); the
    left one may carry a word of its own in front (``a m o l o tov``, joined ``amolo tov``: ``a molotov``)."""
    vocab, keyed = vocabulary(), _keyed()
    words = text.split(" ")
    out: list[str] = []
    for word in words:
        if out and word and not (out[-1].lower() in vocab and word.lower() in vocab):
            prev = out[-1]
            found = next(
                ((j, w) for j in range(len(prev)) if len(prev) - j + len(word) >= 4
                 and (w := keyed.get((prev[j:] + word).lower().translate(_KEY))) is not None),
                None,
            )  # fmt: skip
            if found is not None:
                cut, joined = found
                out[-1:] = [prev[:cut], joined] if cut else [joined]
                continue
        out.append(word)
    return " ".join(out)


def fold(text: str, segment: bool = True) -> str:
    """``text`` with the letter-level tricks undone: hidden characters, look-alikes, split letters, leetspeak,
    attack words in other languages. Letters spaced out with blanks lose the blanks between their words too, so
    their joined runs are cut into the rules' words again (``segment``); letters split by any other separator
    (``w.e.b.h.o.o.k``, ``g*r*a*n*d*m*o7her``) keep their words whole."""
    if not text.isascii():
        text = normalize(text).text.translate(CONFUSABLES).translate(_REGIONAL)
    elif not _TRICKS.search(text):  # plain ASCII words: only the other languages to read
        return _translate(text)
    text = _POSSESSIVE.sub("'s", text)
    spaced = any(m.group(1) == " " for m in _SPACED.finditer(text))
    split = segment and spaced  # joined runs cut into words again
    joined = _join_spaced(text)

    def word(match: re.Match[str]) -> str:
        token = match.group(0)
        if not any(ch.isalpha() for ch in token):  # digits alone: a word only when they spell a short one ("70")
            return _keyed().get(token.translate(_KEY), token) if 1 < len(token) <= 4 else token
        if token.isalpha() and (not split or len(token) < 5 or token.lower() in vocabulary()):
            return token
        found = _resolve(token, split)
        return found[:1].upper() + found[1:] if token[:1].isupper() and not token.isupper() else found

    text = _TOKEN.sub(word, joined)
    if spaced:
        text = _GLUED_URL.sub(" ", _merge(text))
        text = _LINK_TARGET.sub(lambda m: "](" + "".join(m.group(1).split()) + ")", text)
    return _translate(text)


def _morse(run: str) -> str | None:
    """A run of Morse code as text (letters apart by one blank, words by a slash or more blanks); long runs of
    letters without word breaks cut into the rules' words. None when more than a tenth of the groups are not
    Morse (a group not known is dropped)."""
    words = [[_MORSE.get(code) for code in word.split()] for word in re.split(r"\s*/\s*|\s{2,}", run.strip())]
    groups = [c for word in words for c in word]
    if not groups or sum(c is None for c in groups) > len(groups) / 10:
        return None
    text = " ".join("".join(c for c in word if c) for word in words)
    return _LONG.sub(lambda m: _segment(m.group(0).translate(_KEY), _keyed()) or m.group(0), text)


def _translate(text: str) -> str:
    text = _PHRASE.sub(lambda m: _PHRASE_EN[m.group(0).lower()], text)
    return _WORD.sub(lambda m: _FOREIGN_WORDS.get(m.group(0).lower(), m.group(0)), text)


def _printable(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    ok = sum(ch.isprintable() or ch.isspace() or unicodedata.category(ch) == "Cf" for ch in text)
    return text if len(text) >= 6 and ok / len(text) > 0.9 and (" " in text or len(text) >= 12) else None


def decodings(text: str) -> Iterable[tuple[str, str]]:
    """(how, decoded) for each encoded payload of ``text``: base64 and hex runs, percent-encoding, rot13,
    reversal, quoted pieces to concatenate."""
    for match in _BASE64.finditer(text):
        chunk = match.group(0)
        try:
            decoded = _printable(base64.b64decode(chunk + "=" * (-len(chunk) % 4)))
        except (binascii.Error, ValueError):
            decoded = None
        if decoded:
            yield "base64", decoded
    for match in _HEX.finditer(text):
        digits = re.sub(r"[\s:]", "", match.group(0))
        decoded = _printable(bytes.fromhex(digits[: len(digits) // 2 * 2]))
        if decoded:
            yield "hex", decoded
    if _PERCENT.search(text) or ("+" in text and " " not in text.strip()):
        yield "url", urllib.parse.unquote_plus(text)
    for match in _MORSE_RUN.finditer(text):
        decoded = _morse(match.group(0))
        if decoded:
            yield "morse", decoded
    pieces = [piece for _, piece in _PIECE.findall(text)]
    if len(pieces) >= 2:
        yield "pieces", "".join(pieces)
    yield "rot13", codecs.decode(text, "rot13")
    yield "reversed", text[::-1]


@lru_cache(maxsize=512)
def readings(text: str, depth: int = 2) -> tuple[tuple[str, str], ...]:
    """(how, reading) for each reading of ``text`` other than itself: decoded layers (up to ``depth`` deep, e.g.
    ``base64+reversed``) and the :func:`fold` of the text and of each layer (``...+folded``)."""
    if len(text) > MAX_CHARS:
        return ()
    out: list[tuple[str, str]] = []
    seen = {text}
    frontier = [("", text)]
    for _ in range(depth):
        following = []
        for how, layer in frontier:
            last = how.rsplit("+", 1)[-1]
            for kind, decoded in decodings(layer):
                if kind == last or (last in _FINAL and kind in _FINAL) or decoded in seen:
                    continue
                seen.add(decoded)
                name = f"{how}+{kind}" if how else kind
                out.append((name, decoded))
                following.append((name, decoded))
        frontier = following
    for how, layer in [("", text), *out]:
        for kind, folded in (("folded", fold(layer)), ("joined", fold(layer, segment=False))):
            if folded not in seen:
                seen.add(folded)
                out.append((f"{how}+{kind}" if how else kind, folded))
    return tuple(out)
