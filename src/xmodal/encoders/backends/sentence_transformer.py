"""``sentence-transformers``: any SentenceTransformer (a local folder, or a hub name in the local cache).

Text models, and CLIP models packaged for sentence-transformers (their ``modalities`` include
``image``). Queries and documents go through the library's ``encode_query``/``encode_document`` (the
model's ``query``/``document`` prompts, when it has them); classification and clustering use the prompt
of that name when the model has one, else the document one. Options: ``model`` (folder or name),
``dim`` (Matryoshka truncation, renormalised), and, not recorded: ``device`` (``auto``: CUDA in fp16
when present, else CPU) and ``batch_size`` (32).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from .. import identity
from ..base import BaseEncoder, Purpose, Vectors, check_dim
from ._common import positive, require, torch_device
from ._local import model_folder

_PROMPT_OF = {Purpose.CLASSIFICATION: "classification", Purpose.CLUSTERING: "clustering"}


class SentenceTransformerEncoder(BaseEncoder):
    """A SentenceTransformer's vectors, with purposes mapped onto its prompts."""

    name = "sentence-transformers"

    def __init__(self, model: str, dim: int | None = None, *, device: str = "auto", batch_size: int = 32) -> None:
        st = require("sentence_transformers", "sentence-transformers", "st")
        self.model_name = str(model)
        self.folder = model_folder(model, self.name)
        self.device, dtype = torch_device(device)
        self.batch_size = positive(batch_size, "batch_size", self.name)
        self.model = st.SentenceTransformer(str(self.folder), device=self.device, local_files_only=True)
        if dtype is not None and self.device.startswith("cuda"):
            self.model.half()
        self.modalities = frozenset(m for m in map(str, self.model.modalities) if m in ("text", "image"))
        dimension = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.native_dim = int(dimension() or 0)
        super().__init__(check_dim(dim, self.native_dim, self.name))
        self._identity: dict[str, Any] | None = None

    def _run(self, inputs: list[Any], purpose: Purpose) -> Vectors:
        options: dict[str, Any] = {"batch_size": self.batch_size, "convert_to_numpy": True, "show_progress_bar": False}
        if purpose == Purpose.QUERY:
            out = self.model.encode_query(inputs, **options)
        elif _PROMPT_OF.get(purpose) in (self.model.prompts or {}):
            out = self.model.encode(inputs, prompt_name=_PROMPT_OF[purpose], **options)
        else:
            out = self.model.encode_document(inputs, **options)
        return np.asarray(out, dtype=np.float32)

    def _encode_texts(self, texts: list[str], purpose: Purpose) -> Vectors:
        return self._run(list(texts), purpose)

    def _encode_images(self, images: list[Image.Image], purpose: Purpose) -> Vectors:
        if "image" not in self.modalities:
            return super()._encode_images(images, purpose)
        return self._run(list(images), purpose)

    def config(self) -> dict[str, Any]:
        if self._identity is None:
            self._identity = identity.of_directory(f"sentence-transformers {self.model_name}", self.folder)
        return {"name": self.name, "model": self.model_name, "dim": self.dim, identity.IDENTITY: self._identity}
