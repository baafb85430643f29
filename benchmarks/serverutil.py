"""Helpers shared by the benchmarks that start a real server: the WordNet catalog, a server process's
memory and CPU from ``/proc``, percentiles and test images. Imported by the ``bench_*.py`` scripts, which
run as ``python benchmarks/bench_x.py`` (so this folder is on ``sys.path``)."""

from __future__ import annotations

import io
import os
from pathlib import Path

from PIL import Image

from xmodal import Item
from xmodal.samples import read_synsets


def wordnet(n_items: int, n_queries: int) -> tuple[list[Item], list[str]]:
    """WordNet synsets (Debian ``wordnet-base``) as text items (lemma as title, gloss as text, part of speech
    and lexicographer file as attributes), and queries: lemma names of every 10th synset, left out of the items."""
    items, queries = [], []
    for i, s in enumerate(read_synsets()):
        if i % 10 == 9 and len(queries) < n_queries:
            queries.append(s.lemmas[0].replace("_", " "))
        elif len(items) < n_items:
            items.append(
                Item.create(
                    f"wn-{s.pos}{s.offset}",
                    title=s.lemmas[0].replace("_", " "),
                    text=s.gloss,
                    attributes={"pos": s.pos, "lexname": s.lexname},
                )
            )
        if len(items) >= n_items and len(queries) >= n_queries:
            break
    return items, queries


def memory_mb(pid: int, key: str = "VmRSS") -> float:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) of a process, in MB; 0 once it is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0.0
    for line in lines:
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0–1) of ``values``, nearest rank below."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def png(side: int) -> bytes:
    """A single-colour RGB PNG of ``side``² pixels (4990² is ~80 KB: the cheapest upload of the most pixels)."""
    return encoded(Image.new("RGB", (side, side), (30, 120, 200)), "PNG")


def encoded(image: Image.Image, fmt: str) -> bytes:
    """``image`` saved in ``fmt`` (``PNG``, ``JPEG`` …), as bytes."""
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()
