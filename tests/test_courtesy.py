"""Background work (an anonymous caller's search) steps aside for foreground work (a keyed caller's search)
between its stages: xmodal.courtesy, the points in the search path and the guards, and the server's
Admission marking anonymous searches background and keyed ones foreground."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from xmodal import Engine, Item
from xmodal.courtesy import Gate, step_aside
from xmodal.encoders import HashingEncoder
from xmodal.serve import ServeConfig
from xmodal.serve.admission import Admission


def _in_thread(fn: object) -> tuple[threading.Thread, threading.Event, list[float]]:
    """``fn()`` on a thread of its own; the event is set (and the time noted) when it returns."""
    done, when = threading.Event(), []

    def run() -> None:
        fn()  # type: ignore[operator]
        when.append(time.monotonic())
        done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, done, when


def test_background_work_waits_at_a_point_while_foreground_work_runs() -> None:
    gate = Gate(max_wait_s=30)

    def background() -> None:
        with gate.background():
            step_aside()

    with gate.foreground():
        thread, done, when = _in_thread(background)
        assert not done.wait(0.3)  # held at the point while the foreground block runs
        released = time.monotonic()
    assert done.wait(5)
    assert when[0] >= released and gate.waits == 1 and gate.running == 0
    thread.join()


def test_unmarked_work_and_work_with_no_foreground_pass_at_once() -> None:
    gate = Gate(max_wait_s=30)
    with gate.foreground():
        start = time.monotonic()
        step_aside()  # not background: no gate in this context
        assert time.monotonic() - start < 0.1
    with gate.background():
        start = time.monotonic()
        step_aside()  # background, but nothing runs in the foreground
        assert time.monotonic() - start < 0.1
    assert gate.waits == 0


def test_the_wait_at_one_point_is_bounded() -> None:
    gate = Gate(max_wait_s=0.2)
    with gate.foreground(), gate.background():
        start = time.monotonic()
        step_aside()
        waited = time.monotonic() - start
    assert 0.15 < waited < 2.0 and gate.waits == 1


def test_overlapping_foreground_blocks_release_background_work_only_when_all_end() -> None:
    gate = Gate(max_wait_s=30)

    def background() -> None:
        with gate.background():
            step_aside()

    first, second = gate.foreground(), gate.foreground()
    first.__enter__()
    second.__enter__()
    thread, done, _ = _in_thread(background)
    first.__exit__(None, None, None)
    assert not done.wait(0.3) and gate.running == 1
    second.__exit__(None, None, None)
    assert done.wait(5)
    thread.join()


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    eng = Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact")
    eng.add([Item.create(f"i{n}", title=f"red bicycle number {n}", text="a bicycle for the road") for n in range(20)])
    return eng


@pytest.mark.parametrize("mode", ["dense", None])
def test_a_background_search_waits_between_its_stages_for_a_foreground_one(engine: Engine, mode: str | None) -> None:
    """The search path (and the guards, in the default mode) step aside: a search marked background does not
    finish while a foreground block runs, and finishes once it ends."""
    gate = Gate(max_wait_s=30)
    results: list[int] = []

    def background() -> None:
        with gate.background():
            results.append(len(engine.search("a red bicycle for the road, please", k=5, mode=mode).hits))

    try:
        with gate.foreground():
            thread, done, _ = _in_thread(background)
            assert not done.wait(0.5)
            assert gate.waits >= 1
        assert done.wait(30)
        thread.join()
        assert results == [5]
        unmarked = engine.search("a red bicycle for the road, please", k=5, mode=mode)  # not background: as before
        assert len(unmarked.hits) == 5
    finally:
        engine.close()


def test_the_guards_step_aside_between_their_passes(engine: Engine) -> None:
    """The query guard's passes are points of their own: a background search held in the foreground's shadow
    waits more than once before it is through the guards (the search path's first point, then the guards')."""
    from xmodal import courtesy

    calls: list[str] = []
    original = courtesy.Gate.wait

    def counting(self: Gate) -> bool:
        calls.append("wait")
        return original(self)

    gate = Gate(max_wait_s=0.05)
    try:
        courtesy.Gate.wait = counting  # type: ignore[method-assign]
        with gate.foreground(), gate.background():
            engine.search("a red bicycle for the road, please", k=5)  # the default mode: the guards run
    finally:
        courtesy.Gate.wait = original  # type: ignore[method-assign]
        engine.close()
    # the search path's points (before and after the guards, after encoding, after retrieval) and the guards' two
    assert len(calls) >= 6 and gate.waits == len(calls)


def test_admission_runs_anonymous_work_as_background_and_keyed_blocks_as_foreground() -> None:
    admission = Admission(ServeConfig())
    admission.gate.max_wait_s = 30
    with admission.foreground(keyed=True):
        assert admission.gate.running == 1
        with admission.foreground(keyed=False):  # an anonymous caller's block is no foreground work
            assert admission.gate.running == 1
        thread, done, _ = _in_thread(lambda: admission.run("10.0.0.1", step_aside))
        assert not done.wait(0.3)  # the anonymous search waits at its point
    assert done.wait(5) and admission.gate.running == 0
    thread.join()


# -- every keyed search is foreground: REST and MCP, one search or a batch ---------------------------------------


def _principals() -> dict[str, object]:
    from xmodal.serve import ApiKey
    from xmodal.serve.auth import Principal

    return {
        "keyed": Principal(ApiKey("reader-key-0001", frozenset({"read"}), "reader"), "127.0.0.1"),
        "anonymous": Principal(None, "10.0.0.7"),
        "none": None,  # no caller known (MCP over stdio)
    }


def test_the_limits_layer_runs_a_keyed_callers_work_as_foreground() -> None:
    """``Limits.work`` / ``work_async`` (what REST's batch and every MCP tool run their searches through): keyed work
    counts as foreground while it runs; an anonymous caller's does not (it is background), nor work of no known
    caller."""
    import asyncio

    from xmodal.serve.policy import Limits

    limits = Limits(ServeConfig())
    gate = limits.admission.gate

    def running() -> int:
        return gate.running

    try:
        for name, principal in _principals().items():
            expected = 1 if name == "keyed" else 0
            for image in (False, True):
                assert limits.work(principal, running, image=image) == expected, (name, image)  # type: ignore[arg-type]
                got = asyncio.run(limits.work_async(principal, running, image=image))  # type: ignore[arg-type]
                assert got == expected, (name, image)
        assert gate.running == 0
    finally:
        limits.close()


def test_mcp_keyed_searches_and_batches_are_foreground(engine: Engine) -> None:
    """Through the MCP tools: while a keyed caller's ``search``, ``search_many`` or ``similar_items`` runs in the
    engine, the gate counts it (anonymous searches wait at their next point); an anonymous caller's does not count."""
    mcp = pytest.importorskip("mcp")
    import asyncio

    from xmodal.serve.mcp import build_mcp
    from xmodal.serve.policy import Limits, current_caller

    limits = Limits(ServeConfig())
    seen: dict[str, list[int]] = {}
    real = {name: getattr(engine, name) for name in ("search", "search_many", "similar")}

    def observed(name: str) -> object:
        def call(*args: object, **kwargs: object) -> object:
            seen.setdefault(name, []).append(limits.admission.gate.running)
            return real[name](*args, **kwargs)

        return call

    for name in real:
        setattr(engine, name, observed(name))

    async def calls(principal: object) -> None:
        token = current_caller.set(principal)  # type: ignore[arg-type]
        try:
            async with mcp.Client(build_mcp(engine, limits=limits)) as client:
                for tool, args in (
                    ("search", {"text": "red bicycle", "k": 3}),
                    ("search_many", {"queries": [{"text": "red bicycle", "k": 2}, {"text": "road", "k": 2}]}),
                    ("similar_items", {"id": "i1", "k": 2}),
                ):
                    result = await client.call_tool(tool, args)
                    assert not result.is_error, result
        finally:
            current_caller.reset(token)

    try:
        asyncio.run(calls(_principals()["keyed"]))
        assert seen == {"search": [1], "search_many": [1], "similar": [1]}
        seen.clear()
        asyncio.run(calls(_principals()["anonymous"]))
        assert seen == {"search": [0], "search_many": [0], "similar": [0]}
    finally:
        limits.close()
        engine.close()
