"""Seeded data for the ML-task tests: topic texts (each topic its own words) and real photos with copies."""

from __future__ import annotations

import functools
import io

import numpy as np
from PIL import Image

from xmodal import Item

TOPICS = {
    "sport": "football match goal team player score league coach stadium referee",
    "food": "bread cheese soup recipe oven bake flavour butter garlic pepper",
    "space": "planet orbit rocket star galaxy telescope astronaut comet moon launch",
}


def topic_items(per_topic: int = 20, seed: int = 0, label: str = "topic") -> list[Item]:
    """``per_topic`` texts of eight words drawn from each topic's vocabulary, labelled by ``label``."""
    rng = np.random.default_rng(seed)
    out = []
    for topic, vocab in TOPICS.items():
        words = vocab.split()
        for i in range(per_topic):
            text = " ".join(rng.choice(words, 8).tolist())
            out.append(Item.create(f"{topic}{i}", title=f"{topic} note {i}", text=text, attributes={label: topic}))
    return out


@functools.lru_cache(maxsize=1)
def photos() -> dict[str, Image.Image]:
    """Real photos that ship with scikit-image (loaded offline; once: callers only read them)."""
    from skimage import data

    names = ["astronaut", "coffee", "chelsea", "rocket", "camera", "moon", "page", "horse"]
    out = {}
    for name in names:
        array = np.asarray(getattr(data, name)())
        if array.dtype == bool:
            array = array.astype(np.uint8) * 255
        image = Image.fromarray(array).convert("RGB")
        image.thumbnail((256, 256))  # smaller is faster, and still a photo
        out[name] = image
    return out


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def copies(image: Image.Image) -> dict[str, bytes]:
    """Half size; JPEG at quality 50; 10% cropped off (5% each side) and re-encoded."""
    w, h = image.size
    jpeg = io.BytesIO()
    image.save(jpeg, "JPEG", quality=50)
    dx, dy = w // 20, h // 20
    return {
        "resized": png(image.resize((w // 2, h // 2))),
        "jpeg": jpeg.getvalue(),
        "cropped": png(image.crop((dx, dy, w - dx, h - dy))),
    }


def spirograph(big: int, small: int, pen: float, side: int = 200) -> Image.Image:
    """A grey hypotrochoid on white: the curve a pen ``pen`` from the centre of a circle of radius ``small``
    draws as the circle rolls inside one of radius ``big`` (fine lines that cross everywhere)."""
    from PIL import ImageDraw

    image = Image.new("RGB", (side, side), "white")
    turns = small // np.gcd(big, small)
    t = np.linspace(0, 2 * np.pi * turns, 4000)
    k = big - small
    x = k * np.cos(t) + pen * np.cos(k / small * t)
    y = k * np.sin(t) - pen * np.sin(k / small * t)
    scale = (side / 2 - 4) / (k + pen)
    points = list(zip((side / 2 + scale * x).tolist(), (side / 2 + scale * y).tolist(), strict=True))
    ImageDraw.Draw(image).line(points, fill=(90, 90, 90), width=1)
    return image
