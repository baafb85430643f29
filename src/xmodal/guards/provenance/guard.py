"""The provenance guard: at ingest each image is read once — its C2PA manifest validated (:mod:`.manifests`)
and, with the policy setting ``watermark_check = true``, its invisible watermark tested (:mod:`.watermark`;
off by default: seven decoder runs of ~12 GMAC each, 1-3 s an image on one core) — and the reading kept by
row. Hits are then screened from the stored readings alone under the caller's policy: ``ai_generated`` (the
manifest claims a generative model made it) and ``provenance`` (a watermark found, or a manifest carried:
shown with its issuer and validity). ``ai_generated = "block"`` is the filter that leaves AI-generated items
out.

A check that cannot run (the watermark models missing or corrupt, the C2PA SDK absent, a manifest that
cannot be parsed, an image that cannot be decoded) is recorded as ``not checked: <why>`` for that item and
logged; ingest goes on and nothing is dropped.

State: ``<index>/guards/provenance.json`` — the reading of each image item by row, written at a checkpoint
when changed; a missing or unreadable file makes the engine replay every item (the catch-up).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...imaging import decode_image
from ...media import Media
from ...records import Hits, Item
from ...store.base import StoredItem
from ...store.files import write_json
from ..classifier import ModelError
from ..policy import ALLOW, BLOCK, Policy
from . import manifests, watermark
from .manifests import NOT_CHECKED, ManifestReading

log = logging.getLogger(__name__)
STATE = "provenance.json"
STATE_FORMAT = 1
CATEGORIES = ("ai_generated", "provenance")
WATERMARK_OFF = "off (policy setting watermark_check = false)"

Finding = dict[str, str]


@dataclass(frozen=True)
class Reading:
    """An image item's provenance: its watermark test and its C2PA manifest."""

    id: str
    watermark: Mapping[str, Any]  # Detection.to_dict() with "status": "checked", or {"status": "not checked: …"}
    c2pa: ManifestReading

    @property
    def ai_generated(self) -> bool:
        return bool(self.c2pa.ai_generated)

    @property
    def watermarked(self) -> bool:
        return bool(self.watermark.get("detected"))

    @property
    def has_manifest(self) -> bool:
        return self.c2pa.status in ("trusted", "valid", "invalid")

    @property
    def status(self) -> str:
        ran = [str(s) for s in (self.watermark["status"], self.c2pa.status) if s != WATERMARK_OFF]
        unchecked = [s for s in ran if s.startswith(NOT_CHECKED)]
        return NOT_CHECKED if len(unchecked) == len(ran) else "partly checked" if unchecked else "checked"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "ai_generated": self.ai_generated,
            "watermark": dict(self.watermark),
            "c2pa": self.c2pa.to_dict(),
        }

    @classmethod
    def of(cls, item_id: str, data: Mapping[str, Any]) -> Reading:
        return cls(item_id, dict(data["watermark"]), ManifestReading.of(data["c2pa"]))


def _image_bytes(ref: Any, store: Media) -> bytes:
    if isinstance(ref, str) and ref.startswith("media/"):
        return store.path(ref).read_bytes()
    if isinstance(ref, (str, Path)):
        return Path(ref).read_bytes()
    if isinstance(ref, bytes):
        return ref
    raise TypeError(f"an image reference of type {type(ref).__name__}")


class ProvenanceGuard:
    """Reads at ingest, screens hits at query time; thread-safe."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._lock = threading.Lock()
        self._readings: dict[int, Reading] = {}
        self._rows: dict[str, int] = {}
        self._dirty = False
        self.payloads = (policy.watermark_payload,)
        self._model: watermark.RivaGan | None = None
        self._tried = False
        self.status: dict[str, str] = {
            "watermark": "not loaded yet" if policy.watermark_check else WATERMARK_OFF,
            "c2pa": manifests.available() or "checked",
        }
        self._anchors: str | None = None
        if policy.c2pa_trust_anchors:
            try:
                self._anchors = Path(policy.c2pa_trust_anchors).read_text(encoding="utf-8")
            except OSError as exc:
                log.warning(
                    "guards: C2PA trust anchors %s unreadable (%s); no signer is trusted",
                    policy.c2pa_trust_anchors,
                    exc,
                )

    def _watermark_model(self) -> watermark.RivaGan | None:
        if not self._tried:
            folder = Path(self.policy.watermark_models) if self.policy.watermark_models else None
            try:
                self._model, self.status["watermark"] = watermark.shared(folder), "checked"
            except ModelError as exc:
                log.warning("guards: watermarks are not checked (%s); search and ingest go on", exc)
                self.status["watermark"] = f"{NOT_CHECKED}: {exc}"
            self._tried = True
        return self._model

    # -- one image -----------------------------------------------------------------------------------------
    def read(self, item_id: str, data: bytes) -> Reading:
        """The reading of one image's bytes; never raises for what the bytes hold."""
        c2pa = manifests.read(data, trust_anchors=self._anchors)
        if c2pa.status.startswith(NOT_CHECKED):
            log.warning("guards: item %r: C2PA %s", item_id, c2pa.status)
        return Reading(item_id, self._watermark(item_id, data), c2pa)

    def _watermark(self, item_id: str, data: bytes) -> dict[str, Any]:
        if not self.policy.watermark_check:
            return {"status": WATERMARK_OFF}
        model = self._watermark_model()
        if model is None:
            return {"status": self.status["watermark"]}
        try:
            image = decode_image(data, item=item_id, min_side=watermark.WORK_SIDE)
            found = model.detect(image, self.payloads)
        except Exception as exc:  # noqa: BLE001 - an undecodable or tiny image is "not checked", never fatal
            log.warning("guards: item %r: watermark not checked (%s)", item_id, exc)
            return {"status": f"{NOT_CHECKED}: {exc}"}
        return {"status": "checked", **found.to_dict()}

    # -- state ---------------------------------------------------------------------------------------------
    def load_state(self, folder: Path) -> int:
        try:
            data = json.loads((folder / STATE).read_text(encoding="utf-8"))
            if data.get("format") != STATE_FORMAT:
                raise ValueError(f"format {data.get('format')!r}")
            readings = {int(r): Reading.of(str(v["id"]), v) for r, v in data["rows"].items()}
        except FileNotFoundError:
            return 0
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("guards: %s unreadable (%s); every image is read again", folder / STATE, exc)
            return 0
        with self._lock:
            self._readings = readings
            self._rows = {r.id: row for row, r in readings.items()}
        return int(data["seq"])

    def save_state(self, folder: Path, seq: int) -> None:
        with self._lock:
            if not self._dirty:
                return
            data = {
                "format": STATE_FORMAT,
                "seq": seq,
                "rows": {str(r): {"id": x.id, **x.to_dict()} for r, x in sorted(self._readings.items())},
            }
            self._dirty = False
        try:
            write_json(folder / STATE, data)
        except BaseException:  # a full disk: written at the next checkpoint
            with self._lock:
                self._dirty = True
            raise

    # -- ingest --------------------------------------------------------------------------------------------
    def on_put(self, stored: Sequence[StoredItem], media: Media) -> None:
        """Read each image item once (nothing at all when the policy turns provenance checks off)."""
        if not self.policy.provenance_checks:
            return
        store = media
        readings: dict[int, Reading | None] = {}
        for s in stored:
            ref = s.item.media.get("image")
            if ref is None:
                readings[s.row] = None
                continue
            try:
                data = _image_bytes(ref, store)
            except Exception as exc:  # noqa: BLE001 - a missing file: the reading says "not checked"
                why = {"status": f"{NOT_CHECKED}: the image cannot be read ({exc})"}
                log.warning("guards: item %r: provenance not checked (%s)", s.item.id, exc)
                readings[s.row] = Reading(s.item.id, why, ManifestReading(str(why["status"])))
                continue
            readings[s.row] = self.read(s.item.id, data)
        with self._lock:
            self._dirty = True
            for row, reading in readings.items():
                old = self._readings.pop(row, None)
                if old is not None:
                    self._rows.pop(old.id, None)
                if reading is not None:
                    self._readings[row], self._rows[reading.id] = reading, row

    def on_delete(self, rows: Sequence[int]) -> None:
        with self._lock:
            self._dirty = True
            for row in rows:
                reading = self._readings.pop(row, None)
                if reading is not None:
                    self._rows.pop(reading.id, None)

    # -- query time ----------------------------------------------------------------------------------------
    def findings(self, reading: Reading, actions: Mapping[str, str]) -> list[Finding]:
        out: list[Finding] = []
        c2pa = reading.c2pa
        signer = f"signed by {c2pa.issuer or c2pa.common_name or 'an unnamed signer'} ({c2pa.status}"
        signer += ", tampered)" if c2pa.tampered else ")"
        if reading.ai_generated and actions.get("ai_generated", ALLOW) != ALLOW:
            kinds = ", ".join(s.rsplit("/", 1)[-1] for s in c2pa.source_types if s in manifests.AI_SOURCE_TYPES)
            out.append(_finding("ai_generated", actions["ai_generated"], "c2pa", f"{kinds}; {signer}"))
        action = actions.get("provenance", ALLOW)
        if action != ALLOW and (reading.watermarked or reading.has_manifest):
            parts = []
            if reading.watermarked:
                w = reading.watermark
                parts.append(f"watermark {w['payload']} p={w['p_value']:.2g} ({w['transform']})")
            if reading.has_manifest:
                parts.append(f"c2pa {signer}")
            out.append(_finding("provenance", action, "watermark+c2pa", "; ".join(parts)))
        return out

    def screen(
        self, hits: Hits, items: tuple[Item, ...], caller: str | None, count: Callable[[str, str], None]
    ) -> tuple[Hits, tuple[Item, ...], dict[str, list[Finding]]]:
        """The hits kept (never more) and the findings of the ones shown, by id."""
        with self._lock:
            if not self._readings:
                return hits, items, {}
            kept = {item.id: self._readings[row] for item in items if (row := self._rows.get(item.id)) is not None}
        if not kept:
            return hits, items, {}
        actions = self.policy.actions(caller)
        keep: list[int] = []
        marked: dict[str, list[Finding]] = {}
        for j, item in enumerate(items):
            reading = kept.get(item.id)
            found = self.findings(reading, actions) if reading is not None else []
            for f in found:
                count(f["category"], f["action"])
            if any(f["action"] == BLOCK for f in found):
                count(next(f["category"] for f in found if f["action"] == BLOCK), "dropped_hit")
                continue
            if found:
                marked[item.id] = found
            keep.append(j)
        if len(keep) == len(items):
            return hits, items, marked
        return hits.take(keep), tuple(items[j] for j in keep), marked

    def reading(self, item_id: str) -> Reading | None:
        with self._lock:
            row = self._rows.get(item_id)
            return self._readings.get(row) if row is not None else None

    def item_status(self, item_id: str) -> dict[str, Any] | None:
        """The stored reading of an image item and the findings the deployment's policy makes; None for an item
        without an image, or one read with nothing to say (no watermark, no manifest, every check done)."""
        reading = self.reading(item_id)
        if reading is None or not (reading.watermarked or reading.has_manifest or reading.status != "checked"):
            return None
        return {"provenance": reading.to_dict(), "findings": self.findings(reading, self.policy.default)}

    def describe(self) -> dict[str, Any]:
        with self._lock:
            readings = list(self._readings.values())
        return {
            "status": dict(self.status),
            "images_read": len(readings),
            "watermarked": sum(r.watermarked for r in readings),
            "with_manifest": sum(r.has_manifest for r in readings),
            "ai_generated": sum(r.ai_generated for r in readings),
        }


def _finding(category: str, action: str, rule: str, evidence: str) -> Finding:
    return {"category": category, "action": action, "rule": rule, "evidence": evidence}
