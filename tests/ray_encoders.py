"""A test encoder for the distributed add's Ray workers (importable by them: ``tests.ray_encoders``): the
hashing encoder, except that an item whose text asks for it kills the worker process or raises."""

from __future__ import annotations

import os
import re
from pathlib import Path

from xmodal.encoders import HashingEncoder, Purpose
from xmodal.encoders.base import Vectors
from xmodal.errors import ConfigError

_MARK = re.compile(r"(die-once|fail-while):(\S+)")


class FaultyEncoder(HashingEncoder):
    """``die-once:PATH`` in a text kills the process the first time (PATH does not exist yet: it is made);
    ``die-always`` kills it every time; ``fail-while:PATH`` raises a ConfigError while PATH exists."""

    name = "tests.ray_encoders:FaultyEncoder"

    def _encode_texts(self, texts: list[str], purpose: Purpose) -> Vectors:
        for text in texts:
            if "die-always" in text:
                os._exit(1)
            for kind, where in _MARK.findall(text):
                marker = Path(where)
                if kind == "die-once" and not marker.exists():
                    marker.touch()
                    os._exit(1)
                if kind == "fail-while" and marker.exists():
                    raise ConfigError(f"told to fail while {marker} exists")
        return super()._encode_texts(texts, purpose)
