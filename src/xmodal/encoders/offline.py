"""The embedded default encoder: all-MiniLM-L6-v2 for text, EfficientNet-Lite0 bridged into it for images.

Everything it loads ships inside registry packages, so it works with no network. Nothing loads at
construction: the text model loads with the first text to encode, the image model with the first
image (a text query never loads the image model), and :meth:`OfflineEncoder.config` (with the
identity of the weights, see :mod:`.identity`) loads neither. One instance can be shared by threads.
The model is symmetric: every purpose (query, document, classification, clustering) gets the same vector.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from PIL import Image

from ..errors import MissingDependency
from . import identity
from .base import BaseEncoder, Purpose, Vectors
from .bridge import TEMPERATURES, ClassBridge, recipe
from .efficientnet import EXPORT_TAGS, WEIGHT_FILES, EfficientNetLite0
from .minilm import DIM, MiniLMText, export_tags, weight_files

# an index made before the bridge option had the labels bridge (its config records neither bridge nor temperature)
identity.LEGACY_OPTIONS["offline"] = {"bridge": "labels"}


class OfflineEncoder(BaseEncoder):
    """Text and images in one 384-d space, with no download.

    Options: ``dim`` (Matryoshka-style truncation), ``text_backend`` (``"int8"``, dynamically
    quantised ONNX, the fastest; ``"onnx"``, the int8-weight ONNX twin computed in fp32, needing no
    export; ``"torch"``, sentence-transformers fp32; see :mod:`.minilm`), ``bridge`` (how class
    probabilities become text-space vectors: ``"wordnet"``, each class with its WordNet gloss and hypernyms,
    the default; ``"labels"``, the class phrase alone, the first bridge), ``top_k`` (ImageNet classes
    mixed into an image's vector) and ``temperature`` (applied to the class probabilities first; default 4
    for ``wordnet``, 1 for ``labels``); see
    :mod:`.bridge`. ``threads`` and ``cache_dir`` (where the ONNX exports are kept; default
    ``$XMODAL_CACHE`` or ``~/.cache/xmodal``) do not change the vectors and are not part of
    :meth:`config`.
    """

    name = "offline"
    native_dim = DIM
    modalities = frozenset({"text", "image"})
    vector_kinds = {"text": ("text",), "image": ("image",), "combined": ("text", "image")}

    def __init__(
        self,
        dim: int | None = None,
        text_backend: str = "int8",
        bridge: str = "wordnet",
        top_k: int = 10,
        temperature: float | None = None,
        threads: int | None = None,
        cache_dir: str | Path | None = None,
    ) -> None:
        super().__init__(dim)
        for module in ("onnxruntime", "tokenizers"):  # checked now (not imported): the models load lazily
            if importlib.util.find_spec(module) is None:
                raise MissingDependency(module, "models")
        cache = Path(cache_dir) if cache_dir is not None else None
        self.cache = cache
        self._identity: dict[str, Any] | None = None
        self.text = MiniLMText(text_backend, threads, cache=cache)
        self.image = EfficientNetLite0(cache, threads)
        self.bridge_name = bridge
        self.bridge = ClassBridge(
            self.text.encode,
            key=f"minilm-{text_backend}",
            recipe=recipe(bridge),
            top_k=top_k,
            temperature=TEMPERATURES.get(bridge, 1.0) if temperature is None else temperature,
            cache=cache,
        )

    def prefetch(self) -> None:
        """Load the text model now (the engine calls this in the background when it opens: most queries
        are text); the image model still loads with the first image."""
        self.text.load()

    def _encode_texts(self, texts: list[str], purpose: Purpose) -> Vectors:
        return self.text.encode(texts)

    def _encode_images(self, images: list[Image.Image], purpose: Purpose) -> Vectors:
        return self.bridge.vectors(self.image.probabilities(images))

    def image_features(self, images: list[Image.Image]) -> Vectors:
        """EfficientNet's own 1280-d pooled features (L2-normalised), for image→image similarity."""
        return self.image.features(images)

    def identity(self) -> dict[str, Any]:
        """Model name, weight package versions and weight fingerprint; computed once, without loading a model."""
        if self._identity is None:
            backend = self.text.backend
            files = {**weight_files(backend), **WEIGHT_FILES}
            tags = {**export_tags(backend), **EXPORT_TAGS, **self._bridge_tags()}
            model = f"all-MiniLM-L6-v2/{backend} + EfficientNet-Lite0"
            self._identity = identity.of_files(model, files, tags, self.cache)
        return self._identity

    def _legacy(self) -> bool:
        """The first bridge with its only settings: its indexes record neither ``bridge`` nor ``temperature``."""
        return self.bridge_name == "labels" and self.bridge.temperature == 1.0

    def _bridge_tags(self) -> dict[str, str]:
        return {} if self._legacy() else {"image-bridge": self.bridge.recipe.tag()}

    def config(self) -> dict[str, Any]:
        bridge = {} if self._legacy() else {"bridge": self.bridge_name, "temperature": self.bridge.temperature}
        return {
            "name": self.name,
            "dim": self.dim,
            "text_backend": self.text.backend,
            **bridge,
            "top_k": self.bridge.top_k,
            identity.IDENTITY: self.identity(),
        }
