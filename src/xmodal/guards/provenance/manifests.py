"""C2PA manifests with ``c2pa-python`` (the c2pa-rs SDK), fully offline: read and validate the manifest an image
carries, and sign the images the service hands out.

A reading says whether the image carries a manifest and, if so, whether it validates: ``trusted`` (signature
and hashes valid, signer under a configured trust anchor), ``valid`` (signature and hashes valid, signer not on
a trust list), ``invalid`` (``tampered`` when a hash no longer matches the bytes, e.g.
``assertion.dataHash.mismatch``), or ``not checked: <why>`` (the SDK is not installed, or the manifest cannot
be parsed — a malformed or hostile one). It names the signer (issuer and common name), the claim generator,
and whether the manifest claims AI generation (an action's ``digitalSourceType`` of
:data:`AI_SOURCE_TYPES`). Remote manifests and OCSP are never fetched.

A pixel re-encode drops the manifest; the watermark (:mod:`.watermark`) survives it, so exports carry both.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import ConfigError

log = logging.getLogger(__name__)
EXTRA = "pip install 'xmodal[guards-provenance]'"
NOT_CHECKED = "not checked"
IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
#: digital source types that mean "made by a generative model"
AI_SOURCE_TYPES = frozenset(
    IPTC + name for name in ("trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia", "compositeSynthetic")
)
#: failure codes that say the bytes changed after signing
TAMPER_CODES = ("assertion.dataHash.mismatch", "assertion.boxesHash.mismatch", "assertion.bmffHash.mismatch")
#: failure codes about trust alone (the signature itself is sound)
TRUST_CODES = ("signingCredential.untrusted", "signingCredential.ocsp.skipped")
MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif", "TIFF": "image/tiff"}


@dataclass(frozen=True)
class ManifestReading:
    """What an image's C2PA manifest says, and whether it holds."""

    status: str  # "none" | "trusted" | "valid" | "invalid" | "not checked: <why>"
    issuer: str | None = None
    common_name: str | None = None
    generator: str | None = None
    ai_generated: bool | None = None
    source_types: tuple[str, ...] = ()
    failures: tuple[str, ...] = ()
    tampered: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status}
        if self.status in ("none",) or self.status.startswith(NOT_CHECKED):
            return out
        out.update(
            issuer=self.issuer,
            common_name=self.common_name,
            generator=self.generator,
            ai_generated=bool(self.ai_generated),
            tampered=self.tampered,
        )
        if self.source_types:
            out["digital_source_types"] = list(self.source_types)
        if self.failures:
            out["failures"] = list(self.failures)
        return out

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> ManifestReading:
        return cls(
            str(data["status"]),
            data.get("issuer"),
            data.get("common_name"),
            data.get("generator"),
            data.get("ai_generated"),
            tuple(data.get("digital_source_types", ())),
            tuple(data.get("failures", ())),
            bool(data.get("tampered", False)),
        )


def _settings(trust_anchors: str | None, signing: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "version": 1,
        "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
        "builder": {"thumbnail": {"enabled": False}},  # the export is the picture: no second copy inside it
    }
    if trust_anchors:
        out["trust"] = {"trust_anchors": trust_anchors}
    return out


def _context(trust_anchors: str | None) -> Any:
    import c2pa

    return c2pa.Context.from_dict(_settings(trust_anchors))


def available() -> str | None:
    """None when the SDK loads, else why not."""
    try:
        import c2pa  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - a missing package or a native library that will not load
        return f"not available: {exc.__class__.__name__}: {exc} ({EXTRA})"
    return None


def read(data: bytes, mime: str | None = None, trust_anchors: str | None = None) -> ManifestReading:
    """The reading of the manifest in ``data`` (an image's bytes); never raises for what the bytes hold."""
    missing = available()
    if missing is not None:
        return ManifestReading(f"{NOT_CHECKED}: {missing}")
    import c2pa

    mime = mime or _sniff(data)
    try:
        with c2pa.Reader(mime, io.BytesIO(data), None, _context(trust_anchors)) as reader:
            state = reader.get_validation_state()
            manifest = reader.get_active_manifest()
            results = reader.get_validation_results()
    except c2pa.C2paError as exc:
        text = str(exc)
        if "ManifestNotFound" in type(exc).__name__ or "ManifestNotFound" in text or "JUMBF" in text:
            return ManifestReading("none")
        if "NotSupported" in type(exc).__name__ or "NotSupported" in text:
            return ManifestReading("none")  # a format C2PA does not cover carries no manifest
        return ManifestReading(f"{NOT_CHECKED}: the manifest cannot be read ({_clip(text)})")
    except Exception as exc:  # noqa: BLE001 - a hostile manifest must never stop an ingest
        return ManifestReading(
            f"{NOT_CHECKED}: the manifest cannot be read ({exc.__class__.__name__}: {_clip(str(exc))})"
        )
    return _reading(state, manifest, results)


def _reading(state: str | None, manifest: Any, results: Any) -> ManifestReading:
    if not isinstance(manifest, Mapping):
        return ManifestReading(f"{NOT_CHECKED}: the manifest store has no active manifest")
    failures = tuple(
        str(f.get("code"))
        for f in ((results or {}).get("activeManifest") or {}).get("failure", [])
        if isinstance(f, Mapping)
    )
    tampered = any(code in TAMPER_CODES or code.endswith(".mismatch") for code in failures)
    status = {"Trusted": "trusted", "Valid": "valid"}.get(str(state), "invalid")
    if status != "invalid" and any(code not in TRUST_CODES for code in failures):
        status = "invalid"
    signature = manifest.get("signature_info") or {}
    sources: list[str] = []
    for assertion in manifest.get("assertions") or []:
        if not isinstance(assertion, Mapping) or not str(assertion.get("label", "")).startswith("c2pa.actions"):
            continue
        for action in (assertion.get("data") or {}).get("actions") or []:
            if isinstance(action, Mapping) and isinstance(action.get("digitalSourceType"), str):
                sources.append(action["digitalSourceType"])
    generators = manifest.get("claim_generator_info") or []
    generator = manifest.get("claim_generator")
    if not generator and generators and isinstance(generators[0], Mapping):
        generator = " ".join(str(generators[0].get(k, "")) for k in ("name", "version")).strip()
    return ManifestReading(
        status,
        _str(signature.get("issuer")),
        _str(signature.get("common_name")),
        _str(generator),
        any(s in AI_SOURCE_TYPES for s in sources),
        tuple(dict.fromkeys(sources)),
        failures,
        tampered,
    )


def _str(value: Any) -> str | None:
    return str(value) if value else None


def _clip(text: str, n: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _sniff(data: bytes) -> str:
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return "application/octet-stream"


# -- signing -----------------------------------------------------------------------------------------------
ALGS = ("es256", "es384", "es512", "ps256", "ps384", "ps512", "ed25519")


class ManifestSigner:
    """Signs images with a configured certificate chain (PEM, leaf first) and private key (PEM)."""

    def __init__(self, cert: Path, key: Path, alg: str = "es256", trust_anchors: str | None = None) -> None:
        missing = available()
        if missing is not None:
            raise ConfigError(f"C2PA signing is configured but {missing}")
        import c2pa

        if alg.lower() not in ALGS:
            raise ConfigError(f"c2pa_alg {alg!r} is not a signing algorithm; use one of {', '.join(ALGS)}")
        try:
            chain, private = cert.read_bytes(), key.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"C2PA signing: cannot read the certificate or key ({exc}); fix c2pa_cert/c2pa_key"
            ) from None
        try:
            self._signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(alg.lower(), chain, private, None))
        except Exception as exc:  # noqa: BLE001 - the SDK's own errors for a bad key or certificate
            raise ConfigError(
                f"C2PA signing: the certificate or key is not usable ({exc}); fix c2pa_cert/c2pa_key"
            ) from None
        self._trust_anchors = trust_anchors
        self.issuer = cert.name

    def sign(
        self, data: bytes, mime: str, *, title: str, ai_generated: bool = False, payload: int | None = None
    ) -> bytes:
        """``data`` (an image of type ``mime``) with a signed manifest: created by xmodal, its digital source
        type (AI-generated or not, as the item's own reading said), watermarked with ``payload`` when given."""
        import c2pa

        source = IPTC + ("trainedAlgorithmicMedia" if ai_generated else "digitalCreation")
        actions: list[dict[str, Any]] = [{"action": "c2pa.created", "digitalSourceType": source}]
        assertions: list[dict[str, Any]] = []
        if payload is not None:
            actions.append({"action": "c2pa.watermarked"})
            assertions.append(
                {
                    "label": "c2pa.soft-binding",
                    "data": {"alg": "org.xmodal.rivagan", "blocks": [{"scope": {}, "value": f"{payload:08x}"}]},
                }
            )
        manifest = {
            "claim_generator_info": [{"name": "xmodal"}],
            "title": title,
            "format": mime,
            "assertions": [{"label": "c2pa.actions", "data": {"actions": actions}}, *assertions],
        }
        out = io.BytesIO()
        with c2pa.Builder(json.dumps(manifest), _context(self._trust_anchors)) as builder:
            builder.sign(self._signer, mime, io.BytesIO(data), out)
        return out.getvalue()
