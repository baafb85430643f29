"""An encoder's optional ``prefetch()`` runs in the background when an engine opens (the first text search
of a process does not wait for the model), never on the caller's thread; close waits for it; a failing
prefetch leaves the error to the first encoding."""

from __future__ import annotations

import threading
from pathlib import Path

from xmodal import Engine, Item
from xmodal.encoders import HashingEncoder


class SlowToLoad(HashingEncoder):
    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.fail, self.threads = fail, []
        self.release, self.done = threading.Event(), threading.Event()

    def prefetch(self) -> None:
        self.threads.append(threading.current_thread())
        self.release.wait(10)  # a model still loading until the test lets it finish
        self.done.set()
        if self.fail:
            raise OSError("weights missing")


def test_prefetch_runs_in_the_background_and_close_waits_for_it(tmp_path: Path) -> None:
    encoder = SlowToLoad()
    engine = Engine.open(tmp_path / "idx", encoder=encoder, index="exact", extensions=[])
    assert not encoder.done.is_set()  # the open did not wait for the model
    assert encoder.threads and encoder.threads[0] is not threading.current_thread()
    threading.Timer(0.2, encoder.release.set).start()
    engine.close()
    assert encoder.done.is_set()  # nothing left loading past the engine


def test_a_failing_prefetch_does_not_fail_the_open(tmp_path: Path) -> None:
    encoder = SlowToLoad(fail=True)
    encoder.release.set()
    with Engine.open(tmp_path / "idx", encoder=encoder, index="exact", extensions=[]) as engine:
        assert engine.add([Item.create("a", title="lamp")]).added == ["a"]
    assert encoder.done.is_set()
