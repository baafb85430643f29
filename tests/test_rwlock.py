"""The engine's readers–writer lock: readers overlap, writers are alone, nesting works."""

from __future__ import annotations

import threading
import time

import pytest

from xmodal import Engine
from xmodal.rwlock import RWLock

from .conftest import text_items


def test_readers_overlap_and_writers_exclude_them() -> None:
    lock, inside, peak, events = RWLock(), [0], [0], []
    guard = threading.Lock()

    def reader() -> None:
        with lock.read():
            with guard:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            time.sleep(0.05)
            with guard:
                inside[0] -= 1

    def writer() -> None:
        with lock:
            events.append(("write", inside[0]))

    threads = [threading.Thread(target=reader) for _ in range(4)] + [threading.Thread(target=writer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert peak[0] >= 2, "readers never ran at the same time"
    assert events == [("write", 0)], "a writer ran while readers were inside"


def test_nesting_rules() -> None:
    lock = RWLock()
    with lock, lock, lock.read():  # the writer may re-enter and read
        pass
    with lock.read(), lock.read():
        with pytest.raises(RuntimeError, match="deadlock"):
            lock.acquire()
    with pytest.raises(RuntimeError):
        lock.release()


def test_searches_run_while_another_search_holds_the_read_lock(engine: Engine) -> None:
    engine.add(text_items(20))
    with engine.attribute_table():  # holds the engine's read lock (writes wait) while the block runs
        done = threading.Event()
        threading.Thread(target=lambda: (engine.search("item 3"), done.set())).start()
        assert done.wait(5), "a search waited for another reader"
