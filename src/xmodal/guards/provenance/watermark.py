"""Invisible watermarks: RivaGAN's encoder and decoder as shipped (ONNX) in ``invisible-watermark``, run with
onnxruntime alone (the package's own wrapper imports torch; nothing of it is imported here).

A watermark is a 32-bit payload. It is embedded at a working size (:data:`WORK_SIDE` on the long side, the
scale RivaGAN was trained at): the encoder's change to the downscaled picture is scaled back up and added to
the full-size image, so a large image keeps its detail and a detector reads it again at the working size.
The change is scaled per image to a PSNR floor (:data:`PSNR_FLOOR` dB against the original; :func:`strength`):
textured photos take a stronger mark than RivaGAN's own unseen, flat pictures a weaker one. A payload may be
a codeword of :mod:`.watermark_code` (fewer message bits, protected by an error-correcting code, decoded from
the outputs' log-odds, :func:`log_odds`); detection against known payloads treats it as any 32 bits.

Detection is a test, not a yes/no: the decoder's 32 bits are compared with each payload the deployment knows,
under every inverse transform tried (:data:`TRANSFORMS`: none, the two flips, the three quarter turns and
colour inversion; each costs one decoder run, about 12 GMAC at the working size). ``p_value`` is the binomial
tail P(X >= matches) for X ~ Binomial(32, 1/2) (the chance that an unmarked image agrees with a payload on
that many bits), multiplied by the number of tries (transforms x payloads, Bonferroni) and capped at 1;
``confidence`` is 1 - p_value. An image counts as watermarked when the p-value is at most :data:`ALPHA` (the
false-positive rate on unmarked real images is measured in ``benchmarks/bench_watermark.py``).

The model files are found in the installed ``imwatermark`` package (``importlib.resources``), or in the folder
the policy's ``watermark_models`` names. A missing package or a corrupt file is :class:`ModelError`: the
caller records "not checked" for the item, and ingest goes on.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ... import loaded
from ..classifier import ModelError

EXTRA = "pip install --no-deps 'invisible-watermark==0.2.0' (its ONNX files; see pyproject.toml, guards-provenance)"
BITS = 32
WORK_SIDE = 256  # the long side RivaGAN reads and writes at
MIN_SIDE = 32  # a shorter side below this (after scaling to the working size) is too small to carry bits
#: the payload xmodal's exports carry unless the policy sets ``watermark_payload`` ("xmod" in ASCII)
DEFAULT_PAYLOAD = 0x786D6F64
#: an image is watermarked at or below this corrected p-value
ALPHA = 1e-4
FILES = ("rivagan_encoder.onnx", "rivagan_decoder.onnx")
#: the decoder's outputs are logits (unbounded); a bit reads 1 above this (0.52 in the package's own wrapper)
THRESHOLD = 0.5
#: the default embedding strength: the encoder's change is scaled to this PSNR (dB) against the original
PSNR_FLOOR = 40.0
MIN_GAIN, MAX_GAIN = 0.5, 4.0  # the range that scaling searches

Array = np.ndarray[Any, np.dtype[Any]]

#: (name, undo): what the image may have undergone, and the function that undoes it on an H x W x 3 array
_UNDO: dict[str, Callable[[Array], Array]] = {
    "identity": lambda a: a,
    "hflip": lambda a: a[:, ::-1],
    "vflip": lambda a: a[::-1],
    "rot90": lambda a: np.rot90(a, -1),
    "rot180": lambda a: np.rot90(a, 2),
    "rot270": lambda a: np.rot90(a, 1),
    "invert": lambda a: 255 - a,
}
TRANSFORMS: tuple[str, ...] = tuple(_UNDO)


def bits_of(payload: int) -> Array:
    """The 32 bits of ``payload``, most significant first, as 0/1 floats."""
    if not 0 <= payload < 2**BITS:
        raise ValueError(f"a watermark payload is a 32-bit unsigned integer, got {payload!r}")
    return np.array([(payload >> (BITS - 1 - i)) & 1 for i in range(BITS)], dtype=np.float32)


def log_odds(scores: Array) -> Array:
    """The decoder's 32 outputs as log-odds that each bit is 1 (centred on :data:`THRESHOLD`)."""
    return np.asarray(scores, dtype=np.float64) - THRESHOLD


def payload_of(bits: Array) -> int:
    return int("".join("1" if b else "0" for b in np.asarray(bits).astype(bool)), 2)


def binomial_tail(matches: int, n: int = BITS) -> float:
    """P(X >= matches) for X ~ Binomial(n, 1/2)."""
    return float(sum(math.comb(n, k) for k in range(max(matches, 0), n + 1)) / float(2**n))


@dataclass(frozen=True)
class Detection:
    """One image's watermark test."""

    payload: int | None  # the known payload it matches best (None: no payload given)
    decoded: int  # the 32 bits read under the best transform
    matches: int  # bits of ``decoded`` equal to ``payload``
    transform: str  # the inverse transform that read them best
    p_value: float  # corrected for the number of tries
    tries: int

    @property
    def confidence(self) -> float:
        return 1.0 - self.p_value

    @property
    def detected(self) -> bool:
        return self.payload is not None and self.p_value <= ALPHA

    def to_dict(self) -> dict[str, Any]:
        return {
            "detected": self.detected,
            "confidence": round(self.confidence, 9),
            "p_value": float(f"{self.p_value:.3g}"),
            "payload": None if self.payload is None else f"{self.payload:08x}",
            "decoded": f"{self.decoded:08x}",
            "bits_matched": self.matches,
            "transform": self.transform,
            "tries": self.tries,
        }


def bundled_models() -> Path:
    """The folder of the ONNX files inside the installed ``imwatermark`` package; :class:`ModelError` when the
    package is not installed."""
    try:
        return Path(str(resources.files("imwatermark")))
    except ModuleNotFoundError:
        raise ModelError(f"not available: the invisible-watermark package is not installed ({EXTRA})") from None


def working_size(size: tuple[int, int]) -> tuple[int, int]:
    w, h = size
    scale = WORK_SIDE / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def psnr(original: Array, marked: Array) -> float:
    """Peak signal-to-noise ratio of ``marked`` against ``original`` (8-bit scale), in dB."""
    mse = float(np.mean((np.asarray(marked, np.float64) - np.asarray(original, np.float64)) ** 2))
    return 10.0 * math.log10(255.0**2 / max(mse, 1e-12))


def _apply(original: Array, residual: Array, gain: float) -> Array:
    return np.clip(np.rint(original + gain * residual), 0, 255).astype(np.uint8)


def strength(original: Array, residual: Array, floor: float) -> float:
    """The largest gain in [:data:`MIN_GAIN`, :data:`MAX_GAIN`] (to 1/64) with PSNR >= ``floor`` dB after
    rounding and clipping; :data:`MIN_GAIN` when even that falls below the floor."""
    lo, hi = MIN_GAIN, MAX_GAIN
    if psnr(original, _apply(original, residual, hi)) >= floor:
        return hi
    if psnr(original, _apply(original, residual, lo)) < floor:
        return lo
    while hi - lo > 1 / 64:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if psnr(original, _apply(original, residual, mid)) >= floor else (lo, mid)
    return lo


def _frames(arrays: Sequence[Array]) -> Array:
    """H x W x 3 uint8 BGR arrays of one shape → RivaGAN's (batch, 3, 1, H, W) input in [-1, 1]."""
    stack = np.stack(arrays).astype(np.float32) / 127.5 - 1.0
    return np.ascontiguousarray(stack.transpose(0, 3, 1, 2)[:, :, None])


def _conv3d_as_2d(path: Path) -> str | bytes:
    """The model at ``path`` with each 3-D convolution whose kernel is one frame deep (all of RivaGAN's: it
    reads one frame) run as a 2-D convolution between a squeeze and an unsqueeze of the frame axis: the same
    weights and arithmetic (outputs equal to ~1e-6 relative), but onnxruntime's blocked 2-D kernels run it
    ~1.8x faster on a CPU. Needs the ``onnx`` package (the ``models`` extra); without it, the file as shipped.
    A file ``onnx`` cannot parse is passed on as is, for onnxruntime to refuse."""
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        return str(path)
    try:
        model = onnx.load(str(path))
    except Exception:  # noqa: BLE001 - onnx raises its own untyped errors for a bad file
        return str(path)
    graph = model.graph
    weights = {init.name: init for init in graph.initializer}
    nodes: list[Any] = []
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        kernel = list(attrs.get("kernel_shape", []))
        weight = weights.get(node.input[1]) if node.op_type == "Conv" and len(node.input) > 1 else None
        if weight is None or len(kernel) != 3 or kernel[0] != 1 or list(attrs.get("strides", [1, 1, 1]))[0] != 1:
            nodes.append(node)
            continue
        array = numpy_helper.to_array(weight)
        if array.ndim == 5:
            weight.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(array[:, :, 0]), weight.name))
        pads = list(attrs.get("pads", [0] * 6))
        tag = f"_2d{len(nodes)}"
        nodes.append(helper.make_node("Squeeze", [node.input[0]], [node.input[0] + tag], axes=[2]))
        nodes.append(
            helper.make_node(
                "Conv",
                [node.input[0] + tag, *node.input[1:]],
                [node.output[0] + tag],
                kernel_shape=kernel[1:],
                pads=[pads[1], pads[2], pads[4], pads[5]],
                strides=list(attrs.get("strides", [1, 1, 1]))[1:],
                dilations=list(attrs.get("dilations", [1, 1, 1]))[1:],
                group=int(attrs.get("group", 1)),
            )
        )
        nodes.append(helper.make_node("Unsqueeze", [node.output[0] + tag], [node.output[0]], axes=[2]))
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]
    return bytes(model.SerializeToString())


class RivaGan:
    """The encoder and decoder sessions; thread-safe."""

    def __init__(self, folder: Path | None = None) -> None:
        folder = folder if folder is not None else bundled_models()
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ModelError(f"not available: {exc} (pip install onnxruntime)") from None
        sessions = []
        for name in FILES:
            path = folder / name
            if not path.is_file():
                raise ModelError(f"no watermark model file at {path} ({EXTRA})")
            try:
                options = ort.SessionOptions()
                options.intra_op_num_threads = 1  # ingest runs beside the encoder: one core
                model = _conv3d_as_2d(path)
                sessions.append(ort.InferenceSession(model, options, providers=["CPUExecutionProvider"]))
            except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own untyped errors for a bad file
                raise ModelError(f"watermark model {path} cannot be loaded ({exc.__class__.__name__}: {exc})") from None
        self._encoder, self._decoder = sessions
        if [i.name for i in self._decoder.get_inputs()] != ["frame"] or len(self._encoder.get_inputs()) != 2:
            raise ModelError(f"the watermark models in {folder} are not RivaGAN's (unexpected inputs)")
        self._lock = threading.Lock()

    # -- embedding -----------------------------------------------------------------------------------------
    def embed(
        self, image: Image.Image, payload: int = DEFAULT_PAYLOAD, *, psnr_floor: float | None = PSNR_FLOOR
    ) -> Image.Image:
        """``image`` (RGB) carrying ``payload``; :class:`ValueError` for an image too small to carry it.

        The encoder's change is scaled by the largest gain in [:data:`MIN_GAIN`, :data:`MAX_GAIN`] that keeps
        the marked image's PSNR against the original at or above ``psnr_floor`` dB (``None``: gain 1, RivaGAN
        as trained): a textured photo takes a strong mark unseen, a flat picture a weaker one."""
        image = image.convert("RGB")
        original = np.asarray(image, dtype=np.float32)
        residual = self.residual(image, payload)
        gain = 1.0 if psnr_floor is None else strength(original, residual, psnr_floor)
        return Image.fromarray(_apply(original, residual, gain), "RGB")

    def residual(self, image: Image.Image, payload: int) -> Array:
        """The encoder's change for ``payload`` (made at the working size, scaled up to ``image``'s), RGB float."""
        image = image.convert("RGB")
        small = image.resize(working_size(image.size), Image.Resampling.BICUBIC)
        if min(small.size) < MIN_SIDE:
            raise ValueError(f"the image ({image.width}x{image.height}) is too small to carry a watermark")
        bgr = np.asarray(small)[:, :, ::-1]
        with self._lock:
            (out,) = self._encoder.run(None, {"frame": _frames([bgr]), "data": bits_of(payload)[None]})
        marked = (np.clip(np.asarray(out)[0, :, 0], -1.0, 1.0).transpose(1, 2, 0) + 1.0) * 127.5
        residual = (marked - bgr.astype(np.float32))[:, :, ::-1]  # back to RGB
        if small.size != image.size:
            residual = np.stack(
                [
                    np.asarray(
                        Image.fromarray(np.ascontiguousarray(residual[:, :, c]), "F").resize(
                            image.size, Image.Resampling.BICUBIC
                        )
                    )
                    for c in range(3)
                ],
                axis=-1,
            )
        return np.asarray(residual, dtype=np.float32)

    # -- detection -----------------------------------------------------------------------------------------
    def read_bits(self, image: Image.Image, transforms: Sequence[str] = TRANSFORMS) -> dict[str, Array]:
        """The decoder's 32 outputs (logits: a bit is 1 above :data:`THRESHOLD`) under each inverse transform
        named (:data:`TRANSFORMS`)."""
        bgr = self.working_array(image)
        views = {name: np.ascontiguousarray(_UNDO[name](bgr)) for name in transforms}
        by_shape: dict[tuple[int, ...], list[str]] = {}
        for name, array in views.items():
            by_shape.setdefault(array.shape, []).append(name)
        out: dict[str, Array] = {}
        for names in by_shape.values():
            with self._lock:
                (probs,) = self._decoder.run(None, {"frame": _frames([views[n] for n in names])})
            for name, p in zip(names, np.asarray(probs), strict=True):
                out[name] = p
        return {name: out[name] for name in transforms}

    def working_array(self, image: Image.Image) -> Array:
        """``image`` at the working size, as the H x W x 3 BGR array the decoder reads."""
        image = image.convert("RGB")
        small = image.resize(working_size(image.size), Image.Resampling.BICUBIC)
        if min(small.size) < MIN_SIDE:
            raise ValueError(f"the image ({image.width}x{image.height}) is too small to carry a watermark")
        return np.asarray(small)[:, :, ::-1]

    def detect(self, image: Image.Image, payloads: Sequence[int] = (DEFAULT_PAYLOAD,)) -> Detection:
        """The best match of ``image`` with any of ``payloads`` under any transform, with its corrected
        p-value; :class:`ValueError` for an image too small to read."""
        return match(self.read_bits(image), payloads)


def match(read: dict[str, Array], payloads: Sequence[int]) -> Detection:
    """The best (transform, payload) of bits ``read`` by transform, as a :class:`Detection`."""
    tries = len(read) * max(len(payloads), 1)
    best: tuple[int, str, int | None, Array] | None = None
    for name, probs in read.items():
        bits = probs > THRESHOLD
        if not payloads:
            if best is None:
                best = (0, name, None, bits)
            continue
        for payload in payloads:
            matches = int((bits == bits_of(payload).astype(bool)).sum())
            if best is None or matches > best[0]:
                best = (matches, name, payload, bits)
    assert best is not None
    matches, name, found, bits = best
    p = min(1.0, binomial_tail(matches) * tries) if found is not None else 1.0
    return Detection(found, payload_of(bits), matches, name, p, tries)


def shared(folder: Path | None) -> RivaGan:
    """One model pair per folder per process."""
    return loaded.shared("rivagan", folder, lambda: RivaGan(folder))
