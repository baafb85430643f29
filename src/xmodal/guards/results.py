"""The result guard: what the hits of a search show. At ingest each item is scored once — its image by the
NSFW model (:mod:`.nsfw`), its title and text by the toxicity model (:mod:`.toxicity`), and (when the policy
asks for the ``pii`` category) its personal data found by Presidio (:mod:`.pii`) — and the scores and spans are
kept by row. At query time nothing is run again: each hit is dropped, flagged or redacted under the caller's
policy and the query's ``safe`` level (:data:`SAFE_LEVELS`), from the stored figures alone.

State: ``<index>/guards/results.json`` — the rows worth keeping (an image's NSFW score, a toxic text, PII
spans, a check that could not run), written at a checkpoint when changed; a missing or unreadable file, or
PII scanning turned on since it was written, makes the engine replay every item (the catch-up).
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..media import Media
from ..records import SAFE_LEVELS, Hits, Item
from ..store.base import StoredItem
from ..store.files import write_json
from . import nsfw, pii, toxicity
from .classifier import ModelError
from .policy import ALLOW, BLOCK, FLAG, Policy

log = logging.getLogger(__name__)
STATE = "results.json"
STATE_FORMAT = 1
#: ``safe`` of a query (:data:`~xmodal.records.SAFE_LEVELS`), like a web engine's SafeSearch: ``strict``
#: blocks sensitive images (open_nsfw's "not safe" bound, 0.2) and toxic text; ``moderate`` (the default)
#: applies the policy (NSFW at 0.8); ``off`` shows both. PII is a matter of privacy, not of taste: ``safe``
#: never changes it.
__all__ = ["SAFE_LEVELS", "ResultGuard", "redact_item"]
CONTENT = ("nsfw", "toxicity")
NOT_CHECKED = "not checked"

Finding = dict[str, str]


@dataclass
class Entry:
    """What the result guard keeps of one item."""

    id: str
    nsfw: float | None = None  # P(NSFW) of its image; None: no image, or not checked
    nsfw_status: str | None = None  # "checked", or "not checked: <why>" (images only)
    toxicity: float | None = None  # kept when at or above the threshold
    pii: dict[str, list[pii.Span]] = field(default_factory=dict)  # field name -> spans

    def worth_keeping(self, tox_threshold: float) -> bool:
        return (
            self.nsfw_status is not None
            or (self.toxicity is not None and self.toxicity >= tox_threshold)
            or any(self.pii.values())
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id}
        if self.nsfw_status is not None:
            out["nsfw"], out["nsfw_status"] = self.nsfw, self.nsfw_status
        if self.toxicity is not None:
            out["toxicity"] = self.toxicity
        if self.pii:
            out["pii"] = {name: [s.to_list() for s in spans] for name, spans in self.pii.items()}
        return out

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> Entry:
        spans = {str(k): [pii.Span.of(s) for s in v] for k, v in dict(data.get("pii", {})).items()}
        nsfw_score = data.get("nsfw")
        tox = data.get("toxicity")
        return cls(
            str(data["id"]),
            None if nsfw_score is None else float(nsfw_score),
            data.get("nsfw_status"),
            None if tox is None else float(tox),
            spans,
        )


def _load(loader: Callable[[], Any], what: str) -> tuple[Any, str]:
    try:
        return loader(), "checked"
    except ModelError as exc:
        log.warning("guards: %s is not checked (%s); search and ingest go on", what, exc)
        return None, f"{NOT_CHECKED}: {exc}"


def item_texts(item: Item) -> dict[str, str]:
    return {name: value for name, value in (("title", item.title), ("text", item.text)) if value}


class ResultGuard:
    """Scores at ingest, screens hits at query time; thread-safe."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._lock = threading.Lock()
        self._entries: dict[int, Entry] = {}
        self._rows: dict[str, int] = {}  # item id -> row, for the entries kept
        self._dirty = False
        self._stale_toxicity = False  # the state loaded was scored with another toxicity reading (:meth:`rejudge`)
        self.pii_on = any(a.get("pii", ALLOW) != ALLOW for a in (policy.default, *policy.keys.values()))
        self.status: dict[str, str] = {"nsfw": "not loaded yet", "toxicity": "", "pii": "off (policy: allow)"}
        self._tox, self.status["toxicity"] = _load(lambda: toxicity.shared(_path(policy.toxicity_model)), "toxicity")
        self._nsfw: nsfw.NsfwModel | None = None
        self._nsfw_tried = False
        self._pii: pii.PiiDetector | None = None
        self._pii_tried = False
        if self.pii_on:
            self.status["pii"] = "not loaded yet"

    # -- the models, loaded on first use (an index without images never loads the image model) -----
    def _nsfw_model(self) -> nsfw.NsfwModel | None:
        if not self._nsfw_tried:
            self._nsfw, self.status["nsfw"] = _load(lambda: nsfw.shared(_path(self.policy.nsfw_model)), "NSFW")
            self._nsfw_tried = True
        return self._nsfw

    def _pii_detector(self) -> pii.PiiDetector | None:
        if not self._pii_tried:
            self._pii, self.status["pii"] = _load(pii.shared, "PII")
            self._pii_tried = True
        return self._pii

    # -- state ---------------------------------------------------------------------------------------
    def load_state(self, folder: Path) -> int:
        """The store sequence the saved state reflects (0: replay every item)."""
        try:
            data = json.loads((folder / STATE).read_text(encoding="utf-8"))
            if data.get("format") != STATE_FORMAT:
                raise ValueError(f"format {data.get('format')!r}")
            if self.pii_on and not data.get("pii_on"):
                log.info("guards: PII scanning is on since %s was written; every item is scanned", folder / STATE)
                return 0
            if self.pii_on and self.policy.pii_lowercase_names and not data.get("pii_lowercase_names", True):
                log.info(
                    "guards: names in lower case are looked for since %s was written; every item is scanned",
                    folder / STATE,
                )
                return 0
            entries = {int(r): Entry.of(v) for r, v in data["rows"].items()}
        except FileNotFoundError:
            return 0
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("guards: %s unreadable (%s); every item is scanned again", folder / STATE, exc)
            return 0
        with self._lock:
            self._entries = entries
            self._rows = {e.id: r for r, e in entries.items()}
            self._stale_toxicity = data.get("toxicity_reading") != toxicity.READING
        return int(data["seq"])

    def rejudge(self, texts_of: Callable[[Sequence[int]], Mapping[int, tuple[str, str]]]) -> int:
        """After :meth:`load_state`: when the state's toxicity was read another way than
        :meth:`.toxicity.ToxicityModel.judged` reads it now (an index scored before, :data:`.toxicity.READING`),
        score again the items it holds a toxicity for, from their (title, text) by ``texts_of``; the reading only
        ever lowers a probability, so no other item can have reached the threshold. Returns how many were scored."""
        with self._lock:
            if not self._stale_toxicity or self._tox is None:
                return 0
            rows = [row for row, e in self._entries.items() if e.toxicity is not None]
        texts = texts_of(rows)
        scored = [row for row in rows if row in texts]
        probs = self._tox.judged(["\n".join(t for t in texts[row] if t) for row in scored]) if scored else []
        with self._lock:
            for row, p in zip(scored, probs, strict=True):
                entry = self._entries.get(row)
                if entry is None:
                    continue
                entry.toxicity = float(p)
                if not entry.worth_keeping(self._tox.threshold):
                    del self._entries[row]
                    self._rows.pop(entry.id, None)
            self._stale_toxicity, self._dirty = False, True
        log.info("guards: %d items' toxicity scored again (%s)", len(scored), toxicity.READING)
        return len(scored)

    def save_state(self, folder: Path, seq: int) -> None:
        with self._lock:
            if not self._dirty:
                return
            data = {
                "format": STATE_FORMAT,
                "seq": seq,
                "pii_on": self.pii_on,
                "pii_lowercase_names": self.policy.pii_lowercase_names,
                "toxicity_reading": toxicity.READING,
                "rows": {str(r): e.to_dict() for r, e in sorted(self._entries.items())},
            }
            self._dirty = False
        try:
            write_json(folder / STATE, data)
        except BaseException:  # a full disk: written at the next checkpoint
            with self._lock:
                self._dirty = True
            raise

    # -- ingest --------------------------------------------------------------------------------------
    def on_put(
        self, stored: Sequence[StoredItem], media: Media, toxicity_of: Mapping[str, float] | None = None
    ) -> None:
        """Score each item once: its image (NSFW), its text (toxicity) and, with PII on, its personal data.
        ``toxicity_of``: the toxicity of texts already scored by the same model (the scan worker's), by text."""
        ids = {s.row: s.item.id for s in stored}
        # an entry is made for a row with an image, toxicity at the threshold or PII: the others are not kept
        images = [(s.row, s.item.media["image"]) for s in stored if "image" in s.item.media]
        entries = {row: Entry(ids[row]) for row, _ in images}
        if images:
            self._score_images(images, entries, media)
        threshold = self._tox.threshold if self._tox is not None else toxicity.THRESHOLD
        texts = {s.row: "\n".join(t.values()) for s in stored if (t := item_texts(s.item))}
        probs: dict[int, float] = {}  # row -> toxicity
        if self._tox is not None and texts:
            known = toxicity_of or {}
            todo = {row: text for row, text in texts.items() if text not in known}
            scores = dict(zip(todo, self._tox.judged(list(todo.values())).tolist(), strict=True)) if todo else {}
            probs = {row: known[text] if text in known else scores[row] for row, text in texts.items()}
            for row, p in probs.items():
                entry = entries.get(row)
                if entry is not None:
                    entry.toxicity = p
                elif p >= threshold:
                    entries[row] = Entry(ids[row], toxicity=p)
        detector = self._pii_detector() if self.pii_on else None
        if detector is not None:
            fields = [(s.row, name, text) for s in stored for name, text in item_texts(s.item).items()]
            found = detector.find_many([t for _, _, t in fields], self.policy.pii_lowercase_names)
            for (row, name, _), spans in zip(fields, found, strict=True):
                if spans:
                    entry = entries.get(row)
                    if entry is None:
                        entry = entries[row] = Entry(ids[row], toxicity=probs.get(row))
                    entry.pii[name] = spans
        with self._lock:
            self._dirty = True  # the sequence the state reflects moved, even when no row is kept
            for row in ids:
                old = self._entries.pop(row, None)
                if old is not None:
                    self._rows.pop(old.id, None)
                entry = entries.get(row)
                if entry is not None and entry.worth_keeping(threshold):
                    self._entries[row], self._rows[entry.id] = entry, row

    def _score_images(self, images: list[tuple[int, Any]], entries: dict[int, Entry], media: Media) -> None:
        model = self._nsfw_model()
        if model is None:
            for row, _ in images:
                entries[row].nsfw_status = self.status["nsfw"]
            return
        store = media
        sources: list[Any] = []
        for _, ref in images:
            if isinstance(ref, str) and ref.startswith("media/"):
                try:
                    sources.append(store.path(ref))
                except Exception:  # noqa: BLE001 - a missing file: the score says "not checked"
                    sources.append(b"")
            else:
                sources.append(Path(ref) if isinstance(ref, str) else ref)
        for (row, _), score in zip(images, model.scores(sources), strict=True):
            entries[row].nsfw = score
            entries[row].nsfw_status = "checked" if score is not None else f"{NOT_CHECKED}: the image cannot be read"

    def on_delete(self, rows: Sequence[int]) -> None:
        with self._lock:
            self._dirty = True
            for row in rows:
                entry = self._entries.pop(row, None)
                if entry is not None:
                    self._rows.pop(entry.id, None)

    # -- query time ----------------------------------------------------------------------------------
    def actions(self, caller: str | None, safe: str | None) -> dict[str, str]:
        """The caller's actions for the result categories, with the query's ``safe`` level applied."""
        base = self.policy.actions(caller)
        out = {c: base.get(c, ALLOW) for c in (*CONTENT, "pii")}
        if safe == "strict":
            out.update(dict.fromkeys(CONTENT, BLOCK))
        elif safe == "off":  # a block stands where the policy says safe="off" may not lift it
            out.update({c: ALLOW for c in CONTENT if self.policy.safe_off or out[c] != BLOCK})
        return out

    def findings(self, entry: Entry, actions: Mapping[str, str], safe: str | None) -> list[Finding]:
        """What the policy makes of one kept entry: each finding with its action."""
        out: list[Finding] = []
        bound = nsfw.STRICT if safe == "strict" else nsfw.MODERATE
        if entry.nsfw is not None and entry.nsfw >= bound and actions["nsfw"] != ALLOW:
            out.append(_finding("nsfw", actions["nsfw"], "open_nsfw", f"p={entry.nsfw:.3f} >= {bound:.2f}"))
        threshold = self._tox.threshold if self._tox is not None else toxicity.THRESHOLD
        if entry.toxicity is not None and entry.toxicity >= threshold and actions["toxicity"] != ALLOW:
            evidence = f"p={entry.toxicity:.3f} >= {threshold:.2f}"
            out.append(_finding("toxicity", actions["toxicity"], "profanity_check", evidence))
        spans = [s for v in entry.pii.values() for s in v]
        if spans and actions["pii"] != ALLOW:
            counts = Counter(s.entity for s in spans)
            evidence = ", ".join(f"{e}×{n}" if n > 1 else e for e, n in sorted(counts.items()))
            out.append(_finding("pii", "redact" if actions["pii"] == BLOCK else FLAG, "presidio", evidence))
        return out

    def screen(
        self,
        hits: Hits,
        items: tuple[Item, ...],
        caller: str | None,
        safe: str | None,
        count: Callable[[str, str], None],
    ) -> tuple[Hits, tuple[Item, ...], dict[str, list[Finding]]]:
        """The hits kept (never more), their items (PII redacted under ``block``), and findings by id."""
        with self._lock:
            if not self._entries:
                return hits, items, {}
            kept = {item.id: self._entries[row] for item in items if (row := self._rows.get(item.id)) is not None}
        if not kept:
            return hits, items, {}
        actions = self.actions(caller, safe)
        keep: list[int] = []
        out_items: list[Item] = []
        marked: dict[str, list[Finding]] = {}
        for j, item in enumerate(items):
            entry = kept.get(item.id)
            found = self.findings(entry, actions, safe) if entry is not None else []
            for f in found:
                count(f["category"], f["action"])
            if any(f["action"] == BLOCK for f in found):
                count(next(f["category"] for f in found if f["action"] == BLOCK), "dropped_hit")
                continue
            if entry is not None and any(f["action"] == "redact" for f in found):
                item = redact_item(item, entry)
            if found:
                marked[item.id] = found
            keep.append(j)
            out_items.append(item)
        if len(keep) == len(items):
            return hits, tuple(out_items), marked
        return hits.take(keep), tuple(out_items), marked

    def entry(self, item_id: str) -> Entry | None:
        """What is kept of an item (None: nothing worth keeping was found in it)."""
        with self._lock:
            row = self._rows.get(item_id)
            return self._entries.get(row) if row is not None else None

    def item_status(self, item_id: str, safe: str | None = None) -> dict[str, Any] | None:
        """The stored figures of an item (``content``) and the findings the deployment's policy makes."""
        with self._lock:
            row = self._rows.get(item_id)
            entry = self._entries.get(row) if row is not None else None
        if entry is None:
            return None
        content = entry.to_dict()
        del content["id"]
        if entry.pii:
            content["pii"] = {k: [s.entity for s in v] for k, v in entry.pii.items()}  # not the text itself
        found = self.findings(entry, self.actions(None, safe), safe)
        return {"content": content, "findings": found}

    def describe(self) -> dict[str, Any]:
        with self._lock:
            n = len(self._entries)
            nsfw_rows = sum(1 for e in self._entries.values() if e.nsfw_status is not None)
        return {"status": dict(self.status), "items_kept": n, "images_scored": nsfw_rows}


def redact_item(item: Item, entry: Entry) -> Item:
    """``item`` with the personal data of its title and text replaced by ``<ENTITY>`` (Presidio's anonymizer)."""
    title, text = item.title, item.text
    if title and entry.pii.get("title"):
        title = pii.redact(title, entry.pii["title"])
    if text and entry.pii.get("text"):
        text = pii.redact(text, entry.pii["text"])
    return replace(item, title=title, text=text) if (title, text) != (item.title, item.text) else item


def _finding(category: str, action: str, rule: str, evidence: str) -> Finding:
    return {"category": category, "action": action, "rule": rule, "evidence": evidence}


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None
