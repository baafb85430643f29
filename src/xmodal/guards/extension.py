"""The guards as one extension: the query guard before a search, the document guard at ingest, and the hits
guard after a search (quarantined items dropped, flagged ones annotated). Decisions are logged with their
reasons, counted by category and action (``/metrics``), and given in ``explain``.

State: the findings of each flagged item, by row, in ``<index>/guards/documents.json`` (written at a
checkpoint when changed, with the store sequence it reflects; a missing or unreadable file is rebuilt from
the store by the engine's catch-up).
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from PIL import Image as PILImage

from ..errors import GuardBlocked, XmodalError
from ..extension import EngineView, Mode, current_query_base
from ..media import MediaStore
from ..media_loaders import media_loader
from ..records import Hits, Item, Query
from ..store.base import StoredItem
from ..store.files import write_json
from . import policy as policies
from . import worker as scan_worker
from .check import Decision, Guard
from .image_text import ImageReader, ImageText
from .policy import ALLOW, BLOCK, FLAG
from .provenance.guard import ProvenanceGuard
from .results import ResultGuard, item_texts
from .rules import Finding
from .worker import Scan, ScanWorker, to_findings

log = logging.getLogger(__name__)
STATE = "documents.json"
STATE_FORMAT = 1


def item_text(item: Item) -> str:
    """The text of an item the document guard reads: title, text and string attribute values."""
    parts = [item.title, item.text]
    parts += [v for v in item.attributes.values() if isinstance(v, str)]
    return "\n".join(p for p in parts if p)


class GuardsExtension:
    """Query, document and hits guards under a policy per deployment and per API key."""

    name = "guards"
    MODES: ClassVar[Mapping[str, str]] = {}

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flagged: dict[int, tuple[str, list[dict[str, str]]]] = {}  # row -> (item id, findings)
        self._dirty = False
        self._counts: Counter[tuple[str, str]] = Counter()
        self._folder = Path(".")
        self._view: EngineView | None = None
        self.guard = Guard(policies.Policy())
        self.results = ResultGuard(self.guard.policy)  # the result guard (:mod:`.results`)
        self.provenance = ProvenanceGuard(self.guard.policy)  # watermarks and C2PA (:mod:`.provenance`)
        self._reader = ImageReader()
        self._worker: ScanWorker | None = None  # the scan of large adds in another process (:mod:`.worker`)
        self._worker_for: tuple[Guard, ResultGuard] | None = None  # the models it must match
        self._worker_failed = False
        self._scans: list[Scan] = []  # chunks sent to it, not yet taken by on_put (oldest first)
        self._skip, self._backoff = 0, 0  # chunks not sent after the worker fell behind (a busy machine)
        self.scanned_by: Counter[str] = Counter()  # items scanned by the "worker" / in this "process"

    # -- the Extension protocol -------------------------------------------------------------------
    def open(self, view: EngineView, folder: Path) -> int:
        seq = self._open_documents(view, folder)  # (their models are loaded once per process: xmodal.loaded)
        self.results = ResultGuard(self.guard.policy)
        self.provenance = ProvenanceGuard(self.guard.policy)
        seq = min(seq, self.results.load_state(folder), self.provenance.load_state(folder))
        self.results.rejudge(view.item_texts)
        return seq

    def _open_documents(self, view: EngineView, folder: Path) -> int:
        self._view, self._folder = view, folder
        self.guard = Guard(policies.load(folder))
        try:
            data = json.loads((folder / STATE).read_text(encoding="utf-8"))
            if data.get("format") != STATE_FORMAT:
                raise ValueError(f"format {data.get('format')!r}")
            self._flagged = {int(r): (str(v["id"]), list(v["findings"])) for r, v in data["rows"].items()}
            return int(data["seq"])
        except FileNotFoundError:
            return 0
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("guards: %s unreadable (%s); every item is scanned again", folder / STATE, exc)
            self._flagged = {}
            return 0

    def modes(self) -> Mapping[str, Mode]:
        return {}

    def ahead(self, items: Sequence[Item], size: int) -> None:
        """A chunk of an add of ``size`` items, before it is encoded: from :data:`.worker.START_AT` items on,
        its texts are sent to the scan worker (started for the first such add), which scans them while the
        engine encodes and commits them; ``on_put`` takes the results."""
        if size < scan_worker.START_AT or self._worker_failed or not items:
            return
        if self._skip > 0:  # it fell behind lately: its late answers would be dropped, their CPU time wasted
            self._skip -= 1
            return
        with self._lock:
            worker = self._scan_worker()
        if worker is not None and worker.forked and not worker.ready():
            worker.wait_ready(scan_worker.FORK_READY_S)  # a fork is up at once: it takes the add's first chunk too
        if worker is None or not worker.ready() or worker.busy():  # starting, or behind: on_put scans
            return
        docs = [(i.id, item_text(i)) for i in items]
        scan = worker.submit(docs, ["\n".join(t.values()) for i in items if (t := item_texts(i))])
        if scan is not None:
            with self._lock:
                self._scans = [*self._scans[-3:], scan]  # one not taken (its chunk rejected) is let go

    def _scan_worker(self) -> ScanWorker | None:
        """The running worker for the current models, started when there is none (under ``_lock``)."""
        models = (self.guard, self.results)
        if self._worker is not None and (self._worker.closed or self._worker_for != models):
            self._worker.close()
            self._worker = None
        if self._worker is not None and self._worker.failed:
            self._give_up()
            return None
        if self._worker is None:
            try:
                self._worker = ScanWorker(
                    self.guard.policy,
                    (self.guard.classifier_status, self.results.status["toxicity"]),
                    models=(self.guard, self.results),
                )
            except (OSError, ValueError) as exc:
                log.warning("guards: no scan worker (%s); large adds are scanned in the process", exc)
                self._worker_failed = True
                return None
            self._worker_for = models
        return self._worker

    def _give_up(self) -> None:
        """The worker failed: closed, and every later scan runs in the process (under ``_lock``)."""
        self._worker_failed = True
        self._scans = []
        if self._worker is not None:
            self._worker.close()
            self._worker = None

    def _scanned(self, stored: Sequence[StoredItem], texts: list[str]) -> tuple[list[list[Finding]], dict[str, float]]:
        """Each stored item's document findings, and the toxicity of the texts the worker scanned: from the
        worker's scan of their chunk for the texts it scanned, the rest scanned here (the same results)."""
        keys = [(s.item.id, t) for s, t in zip(stored, texts, strict=True)]
        with self._lock:
            scan = next((c for c in self._scans if any(k in c.docs for k in keys)), None)
            if scan is not None:
                self._scans.remove(scan)
        got = scan.result() if scan is not None else None
        if scan is not None and scan.failed():
            with self._lock:
                self._give_up()
        elif scan is not None:  # behind: send 1, 2, 4 … 16 chunks fewer; on time: every chunk again
            self._backoff = 0 if got is not None else min(max(1, 2 * self._backoff), 16)
            self._skip = self._backoff
        if scan is None or got is None:
            self.scanned_by["process"] += len(texts)
            return self.guard.document_findings_many(texts), {}
        found, probs = got
        positions = [scan.docs.get(k) for k in keys]
        rest = [t for t, at in zip(texts, positions, strict=True) if at is None]
        scanned_here = iter(self.guard.document_findings_many(rest) if rest else [])
        out = [to_findings(found[at]) if at is not None else next(scanned_here) for at in positions]
        self.scanned_by["process"] += len(rest)
        self.scanned_by["worker"] += len(texts) - len(rest)
        return out, ({t: probs[i] for t, i in scan.tox.items()} if probs is not None else {})

    def on_put(self, stored: Sequence[StoredItem]) -> None:
        found: dict[int, tuple[str, list[dict[str, str]]]] = {}
        clean: list[int] = []
        texts = [item_text(s.item) for s in stored]
        if self._scans:
            scanned, toxicity = self._scanned(stored, texts)
        else:
            scanned, toxicity = self.guard.document_findings_many(texts), {}
            self.scanned_by["process"] += len(texts)
        for entry, findings in zip(stored, scanned, strict=True):
            if findings:
                found[entry.row] = (entry.item.id, [f.to_dict() for f in findings])
                decisions = self.guard.decide(findings, None, document=True)
                log.info(
                    "guards: item %r %s: %s", entry.item.id, _verb(decisions), "; ".join(d.reason for d in decisions)
                )
                self._count(decisions[:1])
            else:
                clean.append(entry.row)
        with self._lock:
            self._dirty = True  # the sequence reflected moved: saved even with nothing flagged (no replay on open)
            for row in clean:
                self._flagged.pop(row, None)
            if found:
                self._flagged.update(found)
        media = self._view.media if self._view is not None else MediaStore(self._folder)
        self.results.on_put(stored, media, toxicity)
        self.provenance.on_put(stored, media)

    def on_delete(self, rows: Sequence[int]) -> None:
        self.results.on_delete(rows)
        self.provenance.on_delete(rows)
        with self._lock:
            for row in rows:
                if self._flagged.pop(row, None) is not None:
                    self._dirty = True

    def checkpoint(self) -> None:
        if self._view is not None:
            self.results.save_state(self._folder, self._view.applied_seq())
            self.provenance.save_state(self._folder, self._view.applied_seq())
        with self._lock:
            if not self._dirty or self._view is None:
                return
            data = {
                "format": STATE_FORMAT,
                "seq": self._view.applied_seq(),
                "rows": {str(r): {"id": i, "findings": f} for r, (i, f) in sorted(self._flagged.items())},
            }
            write_json(self._folder / STATE, data)  # a full disk: no partial file left behind
            self._dirty = False

    def close(self) -> None:
        with self._lock:
            worker, self._worker, self._scans = self._worker, None, []
        if worker is not None:
            worker.close()
        self.checkpoint()

    # -- the Screen protocol (what the engine asks before and after a search) ---------------------
    def screen_query(self, query: Query, caller: str | None) -> tuple[Query, dict[str, Any]]:
        """The query with its text cleaned, and what the guards decided; :class:`GuardBlocked` when the
        caller's policy blocks a category found in its text or in the text rendered in its image."""
        notes: dict[str, Any] = {}
        decisions: list[Decision] = []
        if query.text:
            checked = self.guard.check_query(query.text, caller)
            decisions += checked.decisions
            notes = {"query": checked.action, "classifier": checked.classifier}
            if checked.text != query.text and checked.text.strip():
                query = replace(query, text=checked.text)
        if query.image is not None and self.guard.policy.query_image_ocr:
            read = self._image_text(query)
            notes["image_text"] = {"status": read.status, "ms": read.ms}
            if read.text:
                decisions += self.guard.check_image_text(read.text, caller)
            notes.setdefault("classifier", self.guard.classifier_status)
        if not notes:
            return query, {}
        self._count(decisions)
        notes["query"] = _action(decisions)
        if decisions:
            notes["decisions"] = [d.to_dict() for d in decisions]
            log.info(
                "guards: query %s for %s: %s",
                _verb(decisions),
                caller or "the deployment",
                "; ".join(f"{d.category}/{d.rule}" for d in decisions),
            )
        blocking = next((d for d in decisions if d.action == BLOCK), None)
        if blocking is not None:
            raise GuardBlocked.of(blocking.category, blocking.reason)
        return query, notes

    def _image_text(self, query: Query) -> ImageText:
        """The text rendered in the query's image (``not checked`` when it cannot be loaded: the search then
        says why)."""
        if query.image is None:
            return ImageText("not checked: no image", "", 0.0)
        try:
            loaded = media_loader("image").load(query.image, current_query_base(), item="query")
        except XmodalError as exc:
            return ImageText(f"not checked: {exc}", "", 0.0)
        if not isinstance(loaded.content, PILImage.Image):
            return ImageText("not checked: not an image", "", 0.0)
        return self._reader.read(loaded.content, loaded.data)

    def screen_hits(
        self, hits: Hits, items: tuple[Item, ...], caller: str | None, safe: str | None = None
    ) -> tuple[Hits, tuple[Item, ...], dict[str, list[dict[str, str]]]]:
        """The hits the document guard and the result guard (:mod:`.results`, under the query's ``safe`` level)
        keep, and the findings of the flagged ones by id. Never adds a hit."""
        hits, items, marked = self._screen_documents(hits, items, caller)
        hits, items, found = self.results.screen(hits, items, caller, safe, self._count_one)
        hits, items, shown = self.provenance.screen(hits, items, caller, self._count_one)
        for item_id, findings in [*found.items(), *shown.items()]:
            marked = {**marked, item_id: [*marked.get(item_id, []), *findings]}
        return hits, items, marked

    def why_withheld(self, item: Item, caller: str | None, safe: str | None = None) -> dict[str, str] | None:
        """The finding for which the caller's policy (at the ``safe`` level) leaves ``item`` out — quarantined
        (``document_injection``), a sensitive image or toxic text (the result guard), an AI-generated image
        (provenance) — or None when it would be shown (:mod:`xmodal.screening` asks after a screen dropped it)."""
        if self.guard.policy.actions(caller).get("document_injection", ALLOW) == BLOCK:
            with self._lock:
                flagged = next((f for i, f in self._flagged.values() if i == item.id), None)
            if flagged:
                rule, evidence = flagged[0]["rule"], flagged[0]["evidence"]
                return {"category": "document_injection", "action": BLOCK, "rule": rule, "evidence": evidence}
        entry = self.results.entry(item.id)
        if entry is not None:
            found = self.results.findings(entry, self.results.actions(caller, safe), safe)
            blocking = next((f for f in found if f["action"] == BLOCK), None)
            if blocking is not None:
                return blocking
        reading = self.provenance.reading(item.id)
        if reading is not None:
            found = self.provenance.findings(reading, self.guard.policy.actions(caller))
            return next((f for f in found if f["action"] == BLOCK), None)
        return None

    def _count_one(self, category: str, action: str) -> None:
        with self._lock:
            self._counts[(category, action)] += 1

    def _screen_documents(
        self, hits: Hits, items: tuple[Item, ...], caller: str | None
    ) -> tuple[Hits, tuple[Item, ...], dict[str, list[dict[str, str]]]]:
        """The hits without the quarantined items (``document_injection`` blocked for ``caller``), and the
        findings of the flagged ones by id. Never adds a hit."""
        if not self._flagged or not items:
            return hits, items, {}
        action = self.guard.policy.actions(caller).get("document_injection", ALLOW)
        if action == ALLOW:
            return hits, items, {}
        with self._lock:
            flagged = {i: f for i, f in self._flagged.values()}
        marked = {item.id: flagged[item.id] for item in items if item.id in flagged}
        if not marked:
            return hits, items, {}
        if action == BLOCK:
            keep = [j for j, item in enumerate(items) if item.id not in marked]
            with self._lock:
                self._counts[("document_injection", "quarantined_hit")] += len(items) - len(keep)
            return hits.take(keep), tuple(items[j] for j in keep), {}
        return hits, items, marked

    def item_status(self, item_id: str) -> dict[str, Any] | None:
        """What the document guard found (:meth:`_document_status`) with, for an item the result guard flags
        under the deployment's policy (or could not check), ``content`` (NSFW score, toxicity, PII entity types)
        and its findings; None for an item nothing was found in (the item's view then has no ``guard``)."""
        status = self._with_content(self._document_status(item_id), item_id)
        shown = self.provenance.item_status(item_id)  # an image item's watermark and C2PA reading
        if shown is None:
            return status
        out: dict[str, Any] = dict(status) if status is not None else {}
        out.setdefault("status", "flagged" if shown["findings"] else "checked")
        out["findings"] = [*out.get("findings", []), *shown["findings"]]
        out["provenance"] = shown["provenance"]
        return out

    def _with_content(self, status: dict[str, Any] | None, item_id: str) -> dict[str, Any] | None:
        found = self.results.item_status(item_id)
        unchecked = found is not None and str(found["content"].get("nsfw_status", "")).startswith("not checked")
        if found is None or not (found["findings"] or unchecked):
            return status
        out: dict[str, Any] = dict(status) if status is not None else {}
        out.setdefault("status", "flagged" if found["findings"] else "not checked")
        out["findings"] = [*out.get("findings", []), *found["findings"]]
        out["content"] = found["content"]
        return out

    def _document_status(self, item_id: str) -> dict[str, Any] | None:
        """``{"status": "flagged"|"quarantined", "findings": [...]}`` for an item the document guard flagged
        (under the deployment's policy), else None."""
        row = self._view.find_row(item_id) if self._view is not None else None
        with self._lock:
            entry = self._flagged.get(row) if row is not None else None
        if entry is None or entry[0] != item_id:
            return None
        action = self.guard.policy.default.get("document_injection", ALLOW)
        status = {BLOCK: "quarantined", ALLOW: "allowed"}.get(action, "flagged")
        return {"status": status, "findings": entry[1]}

    def describe(self) -> dict[str, Any]:
        """The policy, the classifier's status, flagged item count and the decisions counted so far."""
        with self._lock:
            flagged = len(self._flagged)
            counts = sorted(self._counts.items())
        action = self.guard.policy.default.get("document_injection", ALLOW)
        return {
            "policy": self.guard.policy.to_dict(),
            "classifier": self.guard.classifier_status,
            "documents": {"quarantined" if action == BLOCK else "flagged": flagged},
            "decisions": [{"category": c, "action": a, "count": n} for (c, a), n in counts],
            "results": self.results.describe(),
            "provenance": self.provenance.describe(),
        }

    def counts(self) -> dict[tuple[str, str], int]:
        """Decisions so far by (category, action)."""
        with self._lock:
            return dict(self._counts)

    def _count(self, decisions: Sequence[Decision]) -> None:
        with self._lock:
            for d in decisions:
                self._counts[(d.category, d.action)] += 1


def _action(decisions: Sequence[Decision]) -> str:
    actions = {d.action for d in decisions}
    return BLOCK if BLOCK in actions else FLAG if FLAG in actions else ALLOW


def _verb(decisions: Sequence[Decision]) -> str:
    actions = {d.action for d in decisions}
    return "blocked" if BLOCK in actions else "flagged" if "flag" in actions else "allowed"
