"""Bridges from ImageNet-1k class probabilities into a text embedding space.

A label-embedding projection in the spirit of ConSE (Norouzi et al., "Zero-Shot Learning by Convex
Combination of Semantic Embeddings", ICLR 2014): an image's vector is the probability-weighted mean of
the text vectors of its top-k classes, renormalised. What a class's text vector is decides which
queries reach the image:

- ``labels`` (the first bridge): the class phrase alone, "a photo of a tabby cat".
- ``wordnet`` (the default): the ImageNet classes are WordNet noun synsets, so a class is also its
  gloss and every hypernym above it, each weighted by ``decay ** distance`` ("tabby" → "domestic cat",
  "cat", "feline", "carnivore", "mammal", "animal"...): a query as generic as "an animal" or "food"
  then meets every image whose classes sit under that synset. The synsets come from
  ``data/imagenet_wordnet.json`` (made from WordNet 3.0 by ``scripts/gen_imagenet_wordnet.py``).

Class vectors are centred over the 1000 classes (removing what every class text shares) and
renormalised. The embedded texts are cached as ``.npy`` in the encoder cache, keyed by the text model
and the texts themselves; the recipe's weights are applied on load, so they cost nothing to change.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import ConfigError
from ..store.files import write_atomic
from .base import Vectors, normalize
from .efficientnet import CLASSES, label_names, label_phrase
from .onnxcache import versioned

BRIDGES = ("wordnet", "labels")
WORDNET_FILE = "data/imagenet_wordnet.json"
WORDNET_FORMAT = "wn1"  # bump when the WordNet recipe's texts or arithmetic change


class Recipe(Protocol):
    """How a bridge turns class texts into the [1000, d] class table."""

    def texts(self) -> list[str]:
        """Every text to embed (rows of the raw table)."""
        ...

    def combine(self, raw: np.ndarray) -> np.ndarray:
        """The [1000, d] class vectors (before centring) from the embedded texts."""
        ...

    def tag(self) -> str:
        """A short name of the recipe and its parameters (part of the encoder's identity)."""
        ...


class LabelRecipe:
    """One phrase per class: "a photo of a tabby cat"."""

    def texts(self) -> list[str]:
        return [label_phrase(n) for n in label_names()]

    def combine(self, raw: np.ndarray) -> np.ndarray:
        return raw

    def tag(self) -> str:
        return "labels"


@dataclass(frozen=True, slots=True)
class Synset:
    lemmas: tuple[str, ...]
    gloss: str
    depth: int


@dataclass(frozen=True, slots=True)
class ClassSynsets:
    """The WordNet synsets of the ImageNet-1k classes: each class's synset and its hypernyms at their distance."""

    synsets: dict[str, Synset]
    classes: tuple[tuple[str, tuple[tuple[str, int], ...]], ...]
    digest: str


def _wordnet_bytes() -> bytes:
    return (resources.files(__package__ or "xmodal.encoders") / WORDNET_FILE).read_bytes()


@cache
def class_synsets_digest() -> str:
    """The digest of the bundled ``data/imagenet_wordnet.json`` (:attr:`ClassSynsets.digest`), without parsing
    it (an index's encoder identity names it: every open asks for it, and only an image encoding needs the
    synsets)."""
    return hashlib.sha256(_wordnet_bytes()).hexdigest()[:12]


@cache
def class_synsets() -> ClassSynsets:
    """The bundled ``data/imagenet_wordnet.json``, read once."""
    raw = _wordnet_bytes()
    data: dict[str, Any] = json.loads(raw)
    synsets = {o: Synset(tuple(s["lemmas"]), str(s["gloss"]), int(s["depth"])) for o, s in data["synsets"].items()}
    classes = tuple((str(c["synset"]), tuple((str(o), int(d)) for o, d in c["ancestors"])) for c in data["classes"])
    if len(classes) != CLASSES:
        raise ConfigError(f"{WORDNET_FILE} has {len(classes)} classes, expected {CLASSES}")
    return ClassSynsets(synsets, classes, hashlib.sha256(raw).hexdigest()[:12])


def _lemma_text(synset: Synset, most: int = 3) -> str:
    return ", ".join(synset.lemmas[:most])


@dataclass(frozen=True, slots=True)
class WordNetRecipe:
    """A class is ``name + gloss_weight·gloss + hypernym_weight·Σ decay^d·hypernym`` (each part unit length).

    ``name`` is the class phrase of the ``labels`` bridge, ``gloss`` "tabby, tabby cat: a cat with a grey
    or tawny coat…", a hypernym its first lemmas ("domestic cat, house cat, Felis domesticus"); hypernyms
    less than ``min_depth`` below the root ("entity", "physical entity", "object"...) are left out.
    """

    # chosen on the tune half of benchmarks/bench_bridge.py (clip-art categories; docs/benchmarks.md)
    gloss_weight: float = 0.5
    hypernym_weight: float = 1.0
    decay: float = 0.9
    min_depth: int = 3

    def _offsets(self) -> list[str]:
        wn = class_synsets()
        return sorted({o for c, ups in wn.classes for o in (c, *(u for u, _ in ups))})

    def texts(self) -> list[str]:
        wn = class_synsets()
        names = LabelRecipe().texts()
        glosses = [f"{_lemma_text(wn.synsets[c])}: {wn.synsets[c].gloss}" for c, _ in wn.classes]
        return [*names, *glosses, *(_lemma_text(wn.synsets[o]) for o in self._offsets())]

    def combine(self, raw: np.ndarray) -> np.ndarray:
        wn = class_synsets()
        names, glosses, lemmas = raw[:CLASSES], raw[CLASSES : 2 * CLASSES], raw[2 * CLASSES :]
        row = {o: i for i, o in enumerate(self._offsets())}
        weights = np.zeros((CLASSES, len(row)), dtype=np.float32)
        for i, (_, ups) in enumerate(wn.classes):
            for offset, distance in ups:
                if wn.synsets[offset].depth >= self.min_depth:
                    weights[i, row[offset]] = self.decay**distance
        hypernyms = normalize(weights @ lemmas)
        combined: np.ndarray = (
            normalize(names) + self.gloss_weight * normalize(glosses) + self.hypernym_weight * hypernyms
        )
        return combined

    def tag(self) -> str:
        parts = (self.gloss_weight, self.hypernym_weight, self.decay, self.min_depth)
        return f"wordnet-{WORDNET_FORMAT}-{class_synsets_digest()}-" + "-".join(f"{p:g}" for p in parts)


#: the temperature each bridge mixes at unless told (the WordNet bridge's chosen with its recipe)
TEMPERATURES = {"wordnet": 4.0, "labels": 1.0}


def recipe(bridge: str) -> LabelRecipe | WordNetRecipe:
    if bridge == "wordnet":
        return WordNetRecipe()
    if bridge == "labels":
        return LabelRecipe()
    raise ConfigError(f"bridge must be one of {', '.join(BRIDGES)}, got {bridge!r} (the default is wordnet)")


class ClassBridge:
    """Maps class probabilities to the text space: Σ p_i^(1/T) · class_i over the top-k classes, renormalised.

    ``temperature`` T sharpens (< 1) or flattens (> 1) the network's probabilities before mixing.
    """

    def __init__(
        self,
        embed: Callable[[list[str]], Vectors],
        key: str,
        recipe: Recipe,
        top_k: int = 10,
        temperature: float = 1.0,
        cache: Path | None = None,
    ) -> None:
        if not 1 <= top_k <= CLASSES:
            raise ConfigError(f"top_k must be between 1 and {CLASSES}, got {top_k}")
        if not 0.05 <= temperature <= 20:
            raise ConfigError(f"temperature must be between 0.05 and 20, got {temperature}")
        self.embed = embed
        self.key = key
        self.recipe = recipe
        self.top_k = top_k
        self.temperature = temperature
        self.cache = cache
        self._table: np.ndarray | None = None
        self._lock = threading.Lock()

    def table(self) -> np.ndarray:
        """The [1000, d] class vectors, centred and renormalised.

        Centring removes the direction every class text shares (the template, "a photo of", the
        hypernyms near the root), which otherwise pulls every image towards the same texts.
        """
        if self._table is None:
            with self._lock:
                if self._table is None:
                    combined = self.recipe.combine(self._load_or_embed())
                    self._table = normalize(combined - combined.mean(axis=0, keepdims=True))
        return self._table

    def _load_or_embed(self) -> np.ndarray:
        texts = self.recipe.texts()
        digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:12]
        path = versioned(self.cache, f"labels-{self.key}-{digest}", ".npy")
        if path.is_file():
            with contextlib.suppress(OSError, ValueError):
                table = np.load(path, allow_pickle=False)
                if table.shape[0] == len(texts):
                    return np.asarray(table, dtype=np.float32)
        table = np.asarray(self.embed(texts), dtype=np.float32)

        def write(tmp: str) -> None:
            with open(tmp, "wb") as handle:
                np.save(handle, table, allow_pickle=False)

        with contextlib.suppress(OSError):  # a read-only cache only costs the recomputation
            write_atomic(path, write)
        return table

    def weights(self, probabilities: np.ndarray) -> np.ndarray:
        """[n, 1000] mixing weights: the top-k probabilities at temperature T (the others 0)."""
        probs = np.asarray(probabilities, dtype=np.float64)
        if self.temperature != 1.0:
            probs = np.power(np.maximum(probs, 1e-30), 1.0 / self.temperature)
        out = np.zeros_like(probs)
        k = self.top_k
        top = np.argpartition(-probs, k - 1, axis=1)[:, :k] if k < CLASSES else None
        if top is None:
            out[:] = probs
        else:
            np.put_along_axis(out, top, np.take_along_axis(probs, top, axis=1), axis=1)
        return out.astype(np.float32)

    def vectors(self, probabilities: np.ndarray) -> Vectors:
        """The renormalised weighted mean of the class vectors, per row."""
        return normalize(self.weights(probabilities) @ self.table())
