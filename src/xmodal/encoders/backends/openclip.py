"""``open_clip``: an OpenCLIP or SigLIP model by architecture and pretrained tag, or a local checkpoint.

Options: ``model`` (an architecture of ``open_clip.list_models()``, e.g. ``ViT-B-32`` or
``ViT-B-16-SigLIP``), ``pretrained`` (a tag such as ``laion2b_s34b_b79k``: read from the library's cache,
where a network once put it) or ``checkpoint`` (a local ``.safetensors``/``.bin`` file), ``model_config``
(a JSON file registering an architecture through open_clip's model-config API, for one of your own),
``dim`` (Matryoshka truncation, renormalised), and, not recorded: ``device`` (``auto``: CUDA in fp16 when
present, else CPU in fp32) and ``batch_size`` (32). The model is symmetric: every purpose gets the same
vector. Nothing is downloaded while an index is open: ``HF_HUB_OFFLINE`` is set around the load.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ...errors import ConfigError
from .. import identity
from ..base import BaseEncoder, Purpose, Vectors, check_dim
from ._common import positive, require, torch_device


class OpenCLIPEncoder(BaseEncoder):
    """Text and image vectors of an OpenCLIP model."""

    name = "open_clip"
    modalities = frozenset({"text", "image"})
    vector_kinds = {"text": ("text",), "image": ("image",), "combined": ("text", "image")}

    def __init__(
        self,
        model: str,
        pretrained: str | None = None,
        checkpoint: str | None = None,
        model_config: str | None = None,
        dim: int | None = None,
        *,
        device: str = "auto",
        batch_size: int = 32,
    ) -> None:
        self.open_clip = require("open_clip", "open_clip_torch", "openclip")
        self.torch = require("torch", "torch", "openclip")
        self.model_name, self.pretrained = str(model), pretrained
        self.checkpoint = _file(checkpoint, "checkpoint") if checkpoint else None
        self.model_config = _file(model_config, "model_config") if model_config else None
        if self.model_config is not None:
            self.open_clip.add_model_config(self.model_config)
        if self.model_name not in self.open_clip.list_models():
            raise ConfigError(
                f"encoder 'open_clip': unknown architecture {self.model_name!r}; use one of open_clip.list_models() "
                "(e.g. ViT-B-32, ViT-B-16-SigLIP) or register yours with "
                "--encoder-option model_config=/path/to/config.json"
            )
        if pretrained and checkpoint:
            raise ConfigError(
                "encoder 'open_clip': give --encoder-option pretrained=TAG or "
                "--encoder-option checkpoint=FILE, not both"
            )
        self.device, dtype = torch_device(device)
        self.batch_size = positive(batch_size, "batch_size", self.name)
        self.model, self.preprocess = self._load(dtype)
        self.tokenizer = self.open_clip.get_tokenizer(self.model_name)
        self.native_dim = int(self.open_clip.get_model_config(self.model_name)["embed_dim"])
        super().__init__(check_dim(dim, self.native_dim, self.name))
        self.dtype = dtype
        self._identity: dict[str, Any] | None = None

    def _load(self, dtype: Any) -> tuple[Any, Any]:
        source = str(self.checkpoint) if self.checkpoint is not None else self.pretrained
        if not source:
            raise ConfigError(
                f"encoder 'open_clip': no weights for {self.model_name}: give --encoder-option pretrained=TAG (one of "
                f"{', '.join(self.open_clip.list_pretrained_tags_by_model(self.model_name)) or 'none listed'}) "
                "or --encoder-option checkpoint=/path/to/weights.safetensors"
            )
        precision = "fp16" if self.device.startswith("cuda") else "fp32"
        try:
            with _offline():
                model, _, preprocess = self.open_clip.create_model_and_transforms(
                    self.model_name, pretrained=source, device=self.device, precision=precision
                )
        except Exception as exc:  # the library raises several kinds for weights it cannot reach
            if self.checkpoint is not None:
                raise ConfigError(
                    f"encoder 'open_clip': cannot load --encoder-option checkpoint={self.checkpoint}: {exc}"
                ) from None
            raise ConfigError(
                f"encoder 'open_clip': no weights for {self.model_name}/{self.pretrained} on this machine ({exc}); "
                "give a local file with --encoder-option checkpoint=/path/to/open_clip_model.safetensors, "
                "or download it once "
                'where a network exists (python -c "import open_clip; open_clip.create_model_and_transforms('
                f"'{self.model_name}', pretrained='{self.pretrained}')\"), after which it is read from the cache"
            ) from None
        return model.eval(), preprocess

    def _batches(self, items: list[Any]) -> list[list[Any]]:
        return [items[i : i + self.batch_size] for i in range(0, len(items), self.batch_size)]

    def _encode_texts(self, texts: list[str], purpose: Purpose) -> Vectors:
        out = []
        with self.torch.inference_mode():
            for batch in self._batches(texts):
                out.append(self.model.encode_text(self.tokenizer(batch).to(self.device)).float().cpu().numpy())
        return np.concatenate(out).astype(np.float32)

    def _encode_images(self, images: list[Image.Image], purpose: Purpose) -> Vectors:
        out = []
        with self.torch.inference_mode():
            for batch in self._batches(images):
                pixels = self.torch.stack([self.preprocess(im.convert("RGB")) for im in batch]).to(
                    self.device, self.dtype
                )
                out.append(self.model.encode_image(pixels).float().cpu().numpy())
        return np.concatenate(out).astype(np.float32)

    def config(self) -> dict[str, Any]:
        if self._identity is None:
            model = f"open_clip {self.model_name}"
            if self.checkpoint is not None:
                digest, _ = identity.path_digest(self.checkpoint)
                self._identity = {
                    "model": model,
                    "packages": {},
                    "fingerprint": identity.fingerprint({"weights": digest}),
                }
            else:
                self._identity = identity.of_parameters(model, {"pretrained": self.pretrained})
        return {
            "name": self.name,
            "model": self.model_name,
            "pretrained": self.pretrained,
            "checkpoint": str(self.checkpoint) if self.checkpoint else None,
            "model_config": str(self.model_config) if self.model_config else None,
            "dim": self.dim,
            identity.IDENTITY: self._identity,
        }


def _file(path: str, setting: str) -> Path:
    file = Path(os.path.expanduser(path))
    if not file.is_file():
        raise ConfigError(f"encoder 'open_clip': option {setting}={path!r} is not a file; give the path of one")
    return file.resolve()


@contextmanager
def _offline() -> Iterator[None]:
    """No download while loading: the hub reads its cache only."""
    old = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    hub: Any = None
    try:
        import huggingface_hub.constants as hub  # it reads the variable once, when imported
    except ImportError:
        pass
    was = getattr(hub, "HF_HUB_OFFLINE", None)
    if hub is not None:
        hub.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        if hub is not None:
            hub.HF_HUB_OFFLINE = was
        if old is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old
