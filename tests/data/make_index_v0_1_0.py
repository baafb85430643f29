"""Builds tests/data/index-v0.1.0: an index written by xmodal 0.1.0 (commit 37ae63c), hashing encoder,
with items (text, image, image+text), feedback (impressions and clicks), a trained generative model,
the learned pipeline's lexical index and policy. Run with PYTHONPATH pointing at that release's src."""

import io
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

import xmodal
from xmodal import Engine, Item, Query
from xmodal.encoders import HashingEncoder
from xmodal.genret.build import train_engine
from xmodal.genret.config import TrainConfig

out = Path(sys.argv[1])
shutil.rmtree(out, ignore_errors=True)
rng = np.random.default_rng(0)


def png(color):
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), color).save(buf, "PNG")
    return buf.getvalue()


colors = {"red": (200, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 200)}
items = []
for i in range(30):
    c = list(colors)[i % 3]
    items.append(
        Item.create(
            f"t{i}",
            title=f"{c} cotton shirt {i}",
            text=f"a soft shirt number {i}",
            attributes={"color": c, "price": float(i)},
        )
    )
for i in range(6):
    c = list(colors)[i % 3]
    items.append(Item.create(f"p{i}", title=f"{c} mug {i}", image=png(colors[c]), attributes={"color": c}))
    items.append(Item.create(f"i{i}", image=png(colors[c])))
with Engine.open(out, encoder=HashingEncoder(), index="exact") as engine:
    report = engine.add(items)
    assert not report.rejected, report.rejected
    for q, pick in [("red cotton shirt", 0), ("blue mug", 0), ("green shirt", 1)] * 3:
        result = engine.search(Query(text=q, k=5), log=True)
        engine.feedback(result.query_id, result.hits.ids[pick], "click", position=pick + 1)
    engine.delete(["t29"])
    train_engine(engine, config=TrainConfig(epochs=2, min_steps=20), progress=False)
    print(engine.search(Query(text="red cotton shirt", k=3, mode="generative")).hits.ids.tolist())
print(xmodal.__version__, sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()))
