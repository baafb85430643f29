"""Encoders: the interface, the registry, and the bundled backends.

``hashing`` is the deterministic test encoder; ``offline`` (the default) is all-MiniLM-L6-v2 for
text plus EfficientNet-Lite0 bridged into the text space for images; ``caller`` makes no vectors (an
index of the caller's own); ``audio`` adds an ``audio`` kind to another encoder (:mod:`.audio`). Heavy
backends are imported only when first created; the model backends
(``http-embeddings``, ``sentence-transformers``, ``hf``, ``open_clip``, ``bedrock-nova``) live in
:mod:`xmodal.encoders.backends`.
"""

from __future__ import annotations

from typing import Any

from .base import (
    BaseEncoder,
    Content,
    Encoder,
    Purpose,
    SegmentVector,
    available_encoders,
    create_encoder,
    default_kinds,
    kinds_of,
    normalize,
    register_encoder,
    truncate,
)
from .caller import CallerEncoder
from .hashing import HashingEncoder


def _offline(**options: Any) -> Encoder:
    from .offline import OfflineEncoder

    return OfflineEncoder(**options)


register_encoder("hashing", HashingEncoder)
register_encoder("caller", CallerEncoder)
register_encoder("offline", _offline)
# The model backends (xmodal.encoders.backends), imported only when an index names them.
_BACKENDS = "xmodal.encoders.backends"
register_encoder("http-embeddings", f"{_BACKENDS}.http_embeddings:HttpEmbeddingsEncoder")
register_encoder("sentence-transformers", f"{_BACKENDS}.sentence_transformer:SentenceTransformerEncoder")
register_encoder("hf", f"{_BACKENDS}.hf:HFEncoder")
register_encoder("bedrock-nova", f"{_BACKENDS}.bedrock_nova:BedrockNovaEncoder")
register_encoder("open_clip", f"{_BACKENDS}.openclip:OpenCLIPEncoder")
# Another encoder plus an ``audio`` kind from an offline audio model (aiSFX or Resemblyzer).
register_encoder("audio", "xmodal.encoders.audio:AudioEncoder")

__all__ = [
    "BaseEncoder",
    "CallerEncoder",
    "Content",
    "Encoder",
    "HashingEncoder",
    "Purpose",
    "SegmentVector",
    "available_encoders",
    "create_encoder",
    "default_kinds",
    "kinds_of",
    "normalize",
    "register_encoder",
    "truncate",
]
