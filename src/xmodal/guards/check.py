"""What the guards decide about a query text or a document text: findings (category, rule, evidence) from
the normalisation, the size and encoding checks, the rules and the classifier, and the action the policy
gives each category. Independent of the engine: the extension (:mod:`.extension`) wires it in."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ..courtesy import step_aside
from . import classifier as clf
from . import readings
from .normalize import bad_encoding, normalize
from .policy import ALLOW, BLOCK, FLAG, Policy
from .rules import INJECTION, Finding, scan, scan_many

log = logging.getLogger(__name__)
_RANK = {ALLOW: 0, FLAG: 1, BLOCK: 2}
#: Texts shorter than this (in words) are left to the rules: n-grams of a word or two say nothing reliable.
MIN_WORDS = 4
_NOT_FOR_IMAGES = frozenset({"oversize", "encoding", "hidden_text"})


@dataclass(frozen=True, slots=True)
class Decision:
    """One finding with the action the policy gives its category."""

    category: str
    action: str
    rule: str
    evidence: str

    def to_dict(self) -> dict[str, str]:
        return {"category": self.category, "action": self.action, "rule": self.rule, "evidence": self.evidence}

    @property
    def reason(self) -> str:
        return f"{self.rule}: {self.evidence!r}" if self.evidence else self.rule


@dataclass(frozen=True, slots=True)
class Checked:
    """A text after the guards: the cleaned text, every decision, and the strongest action."""

    text: str
    decisions: tuple[Decision, ...]
    classifier: str  # "checked", or "not checked: <why>"

    @property
    def action(self) -> str:
        return max((d.action for d in self.decisions), key=_RANK.__getitem__, default=ALLOW)

    @property
    def blocking(self) -> Decision | None:
        return next((d for d in self.decisions if d.action == BLOCK), None)


class Guard:
    """The policy and the classifier; checks query and document texts."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.model: clf.Classifier | None = None
        try:
            self.model = clf.shared(Path(policy.classifier) if policy.classifier else None)
            self.classifier_status = "checked"
        except clf.ModelError as exc:
            self.classifier_status = f"not checked: {exc}"
            log.warning("guards: the classifier is not used (%s); the rules still run", exc)

    def _classify(self, text: str) -> list[Finding]:
        if self.model is None or len(text.split()) < MIN_WORDS:
            return []
        p = self.model.probability(text)
        if p < self.model.threshold:
            return []
        return [Finding(INJECTION, "classifier", f"p={p:.3f} >= {self.model.threshold:.3f}")]

    def query_findings(self, text: str) -> tuple[str, list[Finding]]:
        """The cleaned query text and what the guards found in it."""
        found: list[Finding] = []
        if len(text) > self.policy.max_query_chars:
            found.append(Finding("oversize", "max_query_chars", f"{len(text)} > {self.policy.max_query_chars}"))
        why = bad_encoding(text)
        if why:
            found.append(Finding("encoding", "encoding", why))
        norm = normalize(text)
        if norm.hidden:
            kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(norm.removed.items()))
            found.append(Finding("hidden_text", "stripped", kinds))
        found += scan(norm.text)
        step_aside()  # between the passes, a background (anonymous) query lets foreground ones run: xmodal.courtesy
        found += readings.scan_query(norm.text, found)  # harmful, PII, availability; de-obfuscated readings
        if norm.hidden_message:
            found += [Finding(f.category, "tag_message:" + f.rule, f.evidence) for f in scan(norm.hidden_message)]
        step_aside()
        if not any(f.category in (INJECTION, "jailbreak") for f in found):
            found += self._classify(norm.text)
            for reading in readings.classifier_texts(norm.text) if not found else ():
                found += self._classify(reading)
        return norm.text, found

    def document_findings(self, text: str) -> list[Finding]:
        """What the guards found in an item's text: instructions aimed at an agent (rules, then classifier)."""
        norm = normalize(text)
        found = scan(norm.text, agent_address=True)
        if norm.hidden_message:
            found += [Finding(f.category, "tag_message:" + f.rule, f.evidence) for f in scan(norm.hidden_message)]
        if not found:
            found = self._classify(norm.text)
        return found

    def document_findings_many(self, texts: Sequence[str]) -> list[list[Finding]]:
        """:meth:`document_findings` of each text (a batch at ingest): the rules over the batch at once
        (:func:`~.rules.scan_many`), then the classifier in one NumPy pass over the texts no rule matched."""
        norms = [normalize(t) for t in texts]
        found = scan_many([n.text for n in norms], agent_address=True)
        for norm, findings in zip(norms, found, strict=True):
            if norm.hidden_message:
                hidden = scan(norm.hidden_message)
                findings += [Finding(f.category, "tag_message:" + f.rule, f.evidence) for f in hidden]
        todo = [i for i, f in enumerate(found) if not f and len(norms[i].text.split()) >= MIN_WORDS]
        if self.model is not None and todo:
            threshold = self.model.threshold
            for i, p in zip(todo, self.model.probabilities([norms[i].text for i in todo]).tolist(), strict=True):
                if p >= threshold:
                    found[i] = [Finding(INJECTION, "classifier", f"p={p:.3f} >= {threshold:.3f}")]
        return found

    def decide(self, findings: Sequence[Finding], caller: str | None, *, document: bool = False) -> list[Decision]:
        """Each finding with its action under ``caller``'s policy (a document's: its ``document_injection``)."""
        actions: Mapping[str, str] = self.policy.actions(caller)
        out = []
        for f in findings:
            category = "document_injection" if document else f.category
            out.append(Decision(category, actions.get(category, FLAG), f.rule, f.evidence))
        return out

    def check_image_text(self, text: str, caller: str | None) -> list[Decision]:
        """The decisions on the text read in a query image (:mod:`.image_text`): the rules and the classifier,
        as for query text, each rule named ``image_text:<rule>``. Its length and OCR's stray characters are
        not held against it (no ``oversize``, ``encoding`` or ``hidden_text``)."""
        _, findings = self.query_findings(text)
        kept = [f for f in findings if f.category not in _NOT_FOR_IMAGES]
        return [replace(d, rule=f"image_text:{d.rule}") for d in self.decide(kept, caller)]

    def check_query(self, text: str, caller: str | None) -> Checked:
        cleaned, findings = self.query_findings(text)
        return Checked(cleaned, tuple(self.decide(findings, caller)), self.classifier_status)
