"""``hf``: a ``transformers`` dual encoder (CLIP, SigLIP, any model with ``get_text_features`` and
``get_image_features``) from a local folder, or a hub name already in the local cache.

Texts are tokenised by the model's tokenizer (SigLIP pads to the maximum length, as it was trained) and
images prepared by its image processor; the vectors are the model's projected features, L2-normalised.
The model is symmetric: every purpose gets the same vector. Options: ``model`` (folder or name), ``dim``
(Matryoshka truncation, renormalised), and, not recorded: ``device`` (``auto``: CUDA in fp16 when
present, else CPU) and ``batch_size`` (32).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from ...errors import ConfigError
from .. import identity
from ..base import BaseEncoder, Purpose, Vectors, check_dim
from ._common import positive, require, torch_device
from ._local import model_folder


class HFEncoder(BaseEncoder):
    """Text and image vectors of a ``transformers`` CLIP-style model."""

    name = "hf"
    modalities = frozenset({"text", "image"})
    vector_kinds = {"text": ("text",), "image": ("image",), "combined": ("text", "image")}

    def __init__(self, model: str, dim: int | None = None, *, device: str = "auto", batch_size: int = 32) -> None:
        transformers = require("transformers", "transformers", "hf")
        self.torch = require("torch", "torch", "hf")
        self.model_name = str(model)
        self.folder = model_folder(model, self.name)
        self.device, self.dtype = torch_device(device)
        self.batch_size = positive(batch_size, "batch_size", self.name)
        self.model = transformers.AutoModel.from_pretrained(str(self.folder), local_files_only=True)
        if not all(callable(getattr(self.model, m, None)) for m in ("get_text_features", "get_image_features")):
            raise ConfigError(
                f"encoder 'hf': model {self.model_name!r} ({type(self.model).__name__}) has no text and image "
                "feature methods; use a CLIP or SigLIP model, or the sentence-transformers encoder for a text model"
            )
        self.model = self.model.to(self.device, self.dtype).eval()
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(self.folder), local_files_only=True)
        self.processor = transformers.AutoImageProcessor.from_pretrained(str(self.folder), local_files_only=True)
        self.padding: bool | str = "max_length" if "siglip" in str(self.model.config.model_type) else True
        self.native_dim = _projection_dim(self.model.config)
        super().__init__(check_dim(dim, self.native_dim, self.name))
        self._identity: dict[str, Any] | None = None

    def _features(self, method: str, inputs: dict[str, Any]) -> Vectors:
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        with self.torch.inference_mode():
            out = getattr(self.model, method)(**inputs)
        tensor = out if isinstance(out, self.torch.Tensor) else out.pooler_output  # transformers 5: an output object
        return np.asarray(tensor.float().cpu().numpy(), dtype=np.float32)

    def _batches(self, items: list[Any]) -> list[list[Any]]:
        return [items[i : i + self.batch_size] for i in range(0, len(items), self.batch_size)]

    def _encode_texts(self, texts: list[str], purpose: Purpose) -> Vectors:
        parts = [
            self._features(
                "get_text_features",
                dict(self.tokenizer(batch, padding=self.padding, truncation=True, return_tensors="pt")),
            )
            for batch in self._batches(texts)
        ]
        return np.concatenate(parts)

    def _encode_images(self, images: list[Image.Image], purpose: Purpose) -> Vectors:
        parts = [
            self._features(
                "get_image_features", dict(self.processor([im.convert("RGB") for im in batch], return_tensors="pt"))
            )
            for batch in self._batches(images)
        ]
        return np.concatenate(parts)

    def config(self) -> dict[str, Any]:
        if self._identity is None:
            self._identity = identity.of_directory(f"transformers {self.model_name}", self.folder)
        return {"name": self.name, "model": self.model_name, "dim": self.dim, identity.IDENTITY: self._identity}


def _projection_dim(config: Any) -> int:
    """The size of the joint space: CLIP's ``projection_dim``, SigLIP's text hidden size."""
    for value in (
        getattr(config, "projection_dim", None),
        getattr(getattr(config, "text_config", None), "hidden_size", None),
    ):
        if isinstance(value, int) and value > 0:
            return value
    raise ConfigError("encoder 'hf': the model's config names no projection_dim; use a CLIP or SigLIP model")
