"""An index's settings: chosen when the folder is created, stored in it, checked on every later open.

``{"encoder": {...its config...}, "backend": "local", "index": "auto", "index_options": {},
"extensions": ["ltr", "genret", "guards"], "default_mode": "learned", "id": "<random hex>"}``, plus ``"media": [...]``
when the index allows media loaders named by dotted path (:func:`xmodal.media_loaders.allow_media`; names
given to a later open are added). An index written before ``backend``, ``extensions`` and ``default_mode`` were
settings gets today's defaults for them (what that version did),
recorded the first time it is opened for writing; so does its ``id`` (random, given once: the cursors an
index issues name it, see :mod:`xmodal.cursor`). The backend is resolved by name (:mod:`xmodal.backends`)
when the engine opens it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from .backends import DEFAULT_BACKEND
from .encoders import Encoder, create_encoder, identity
from .errors import ConfigError
from .extension import DEFAULT_EXTENSIONS, LEGACY_EXTENSIONS
from .modes import available_modes
from .store.base import Store

DEFAULT_ENCODER = "offline"
DEFAULT_INDEX = "auto"
#: The learned plan (strategies chosen by the bandit, fused, re-ranked once a ranker is trained). On both
#: judged sets of docs/benchmarks/ltr.md it scores at least the best single strategy.
DEFAULT_MODE = "learned"
DENSE = "dense"


def open_settings(
    store: Store,
    *,
    encoder: str | Encoder | None,
    dim: int | None,
    index: str | None,
    index_options: dict[str, Any] | None,
    extensions: Sequence[str] | None,
    default_mode: str | None,
    backend: str | None = None,
    media: Sequence[str] | None = None,
    encoder_options: Mapping[str, Any] | None = None,
) -> tuple[Encoder, dict[str, Any]]:
    """The index's encoder and settings: the stored ones (checked against any given) or new ones.

    ``encoder_options`` are the named encoder's constructor options (``--encoder-option k=v``): a new index records
    those its encoder's config keeps (never a secret such as an API key); an existing one takes options it
    does not record (a key, a device, a batch size) and refuses a recorded one given another value."""
    saved = store.get_meta("settings")
    given = dict(encoder_options or {})
    if given and isinstance(encoder, Encoder):
        raise ConfigError("encoder options are for an encoder named by string; configure an Encoder object yourself")
    if saved is None:
        enc = (
            encoder
            if isinstance(encoder, Encoder)
            else create_encoder(encoder or DEFAULT_ENCODER, **_with_dim(given, dim))
        )
        names = list(DEFAULT_EXTENSIONS if extensions is None else extensions)
        settings: dict[str, Any] = {
            "encoder": enc.config(),
            "backend": backend or DEFAULT_BACKEND,
            "index": index or DEFAULT_INDEX,
            "index_options": index_options or {},
            "extensions": names,
            "default_mode": default_mode or (DEFAULT_MODE if "ltr" in names else DENSE),
        }
    else:
        # an index saved without its extension list predates the guards: it keeps what it had then
        defaults = {"backend": DEFAULT_BACKEND, "extensions": list(LEGACY_EXTENSIONS), "default_mode": DEFAULT_MODE}
        settings = {**defaults, **dict(saved)}
        _check_given(settings, encoder, dim, index, extensions, backend)
        enc = encoder if isinstance(encoder, Encoder) else recreate_encoder(settings["encoder"], given)
        identity.check(settings["encoder"], enc.config())
        settings["encoder"] = enc.config()  # an index written before identities records its encoder's now
        if default_mode is not None:
            settings["default_mode"] = default_mode
    settings.setdefault("id", uuid.uuid4().hex)  # the index's identity (its cursors name it); kept for good
    check_mode(settings["default_mode"], settings["extensions"])
    allowed = _media_names(settings.get("media", []), "the index setting 'media'") + _media_names(media or [], "media")
    if allowed:
        settings["media"] = sorted(set(allowed))
    return enc, settings


def _media_names(names: object, where: str) -> list[str]:
    """Media loader dotted paths, each a non-empty string."""
    if (
        isinstance(names, str)
        or not isinstance(names, (list, tuple))
        or not all(isinstance(n, str) and n.strip() for n in names)
    ):
        raise ConfigError(f"{where} must be a list of media loader paths ('package.module:Loader'), got {names!r}")
    return [n.strip() for n in names]


def check_mode(mode: str, extensions: Sequence[str]) -> None:
    """Refuse a default mode that neither dense search nor an extension of the index provides."""
    known = available_modes(extensions)
    if mode not in known:
        raise ConfigError(f"default mode {mode!r} is not provided by this index; use one of {', '.join(known)}")


def _with_dim(options: dict[str, Any], dim: int | None) -> dict[str, Any]:
    if dim and options.get("dim", dim) != dim:
        raise ConfigError(f"--dim {dim} and the encoder option dim={options['dim']!r} disagree; give one of them")
    return {**options, "dim": dim} if dim else options


def recreate_encoder(config: dict[str, Any], given: Mapping[str, Any]) -> Encoder:
    """The index's encoder from its recorded config, plus the options given now that it does not record."""
    options = identity.options(config)
    changed = {key: value for key, value in given.items() if key in options and options[key] != value}
    if not changed:
        return create_encoder(config["name"], **{**options, **given})
    try:  # a value written another way that the encoder records the same (a URL it completes) is the same
        encoder = create_encoder(config["name"], **{**options, **given})
        recorded = identity.options(encoder.config())
    except ConfigError:
        encoder, recorded = None, {}
    for key, value in changed.items():
        if encoder is None or recorded.get(key) != options[key]:
            raise ConfigError(
                f"this index was created with the encoder option {key}={options[key]!r}, not {value!r}; "
                f"drop --encoder-option {key}=… or build a new index in another folder"
            )
    assert encoder is not None
    return encoder


def follow_encoder(config: dict[str, Any], given: Mapping[str, Any]) -> Encoder:
    """The encoder an index switched to (``config``) in a process opened with the old one's options ``given``:
    those the new config does not record are passed on (a key both take) where the new encoder accepts them."""
    recorded = identity.options(config)
    extra = {key: value for key, value in given.items() if key not in recorded}
    if extra:
        try:
            return recreate_encoder(config, extra)
        except (TypeError, ValueError):  # an option of the old encoder only
            pass
    return recreate_encoder(config, {})


def _check_given(
    saved: dict[str, Any],
    encoder: str | Encoder | None,
    dim: int | None,
    index: str | None,
    extensions: Sequence[str] | None,
    backend: str | None = None,
) -> None:
    given = {
        "backend": (backend, saved["backend"]),
        "encoder": (encoder if isinstance(encoder, str) else None, saved["encoder"]["name"]),
        "dim": (dim, saved["encoder"]["dim"]),
        "index": (index, saved["index"]),
        "extensions": (list(extensions) if extensions is not None else None, saved["extensions"]),
    }
    for what, (asked, have) in given.items():
        if asked is not None and asked != have:
            raise ConfigError(
                f"this index was created with {what} {have!r}, not {asked!r}; use a new folder to change it"
            )
