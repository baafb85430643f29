"""An acknowledged write survives kill -9 of the writing process at any moment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from xmodal import Engine

WRITER = textwrap.dedent(
    """
    import sys
    from xmodal import Engine, Item
    from xmodal.encoders import HashingEncoder
    engine = Engine.open(sys.argv[1], encoder=HashingEncoder(), index="exact")
    i = 0
    while True:
        batch = [Item.create(f"k{i + j}", title=f"durable item {i + j}", attributes={"n": i + j}) for j in range(7)]
        engine.add(batch)
        print(" ".join(item.id for item in batch), flush=True)  # acknowledged only after add returned
        i += 7
    """
)


def test_kill_minus_nine_loses_no_acknowledged_write(tmp_path: Path) -> None:
    path = tmp_path / "idx"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    acked: list[str] = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while len(acked) < 700 and time.monotonic() < deadline:
        acked.extend(proc.stdout.readline().split())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(acked) >= 700, "the writer did not make progress"
    with Engine.open(path) as engine:
        missing = [i for i in acked if i not in engine]
        assert not missing
        assert len(engine) >= len(acked)
        # the derived index was rebuilt from the store: the last acknowledged item is searchable
        last = acked[-1]
        assert last in engine.search(f"durable item {last[1:]}", k=5).hits.ids.tolist()
