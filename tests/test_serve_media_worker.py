"""Anonymous callers' query images are decoded in a worker process at the lowest CPU priority (issue 13: the
normal clients' tail under abuse), with the same results as in the server's own process, the worker's CPU
charged to the caller, and a worker that died replaced. Against a real server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi")
mcp = pytest.importorskip("mcp")

import httpx  # noqa: E402
from PIL import Image  # noqa: E402

from xmodal import Engine, Item  # noqa: E402
from xmodal.encoders import HashingEncoder  # noqa: E402
from xmodal.errors import ImageError  # noqa: E402
from xmodal.imaging import decode_image  # noqa: E402
from xmodal.serve import ApiKey, ServeConfig, create_app  # noqa: E402
from xmodal.serve.app import served_by  # noqa: E402
from xmodal.serve.auth import Principal  # noqa: E402
from xmodal.serve.limits import RateLimited  # noqa: E402
from xmodal.serve.media_worker import MediaWorker  # noqa: E402
from xmodal.serve.policy import Limits  # noqa: E402
from xmodal.serve.testing import serve_in_thread  # noqa: E402

READER = "worker-reader-0001"


def photo(width: int, height: int, seed: int = 7, fmt: str = "PNG") -> bytes:
    """A noisy picture (its reduced copy differs from a resize of it), large enough to be reduced."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(height // 8, width // 8, 3), dtype=np.uint8)
    image = Image.fromarray(pixels).resize((width, height), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("worker") / "idx"
    with Engine.open(path, encoder=HashingEncoder(), index="exact") as engine:
        engine.add(
            [
                Item.create(f"p{i}", title=f"picture {i}", text="a picture", image=photo(64, 48, seed=i))
                for i in range(6)
            ]
        )
    return path


@contextmanager
def server(index: Path, **settings: Any) -> Iterator[tuple[str, Limits]]:
    with Engine.open(index) as engine:
        keys = (ApiKey(READER, frozenset({"read"})),)
        app = create_app(engine, ServeConfig(log_requests=False, refusal_delay=0, keys=keys, **settings))
        with serve_in_thread(app) as url:
            yield url, served_by(app).limits


def hits(response: httpx.Response) -> list[tuple[str, float]]:
    assert response.status_code == 200, response.text
    return [(hit["id"], round(hit["score"], 6)) for hit in response.json()["hits"]]


def test_anonymous_image_searches_use_the_worker_with_the_same_hits_keyed_ones_do_not(index: Path) -> None:
    image = photo(1500, 1100)
    form = {"data": {"k": "5", "log": "false", "mode": "dense"}, "files": {"image": ("q.png", image, "image/png")}}
    with server(index) as (url, limits):
        keyed = hits(httpx.post(f"{url}/search", headers={"X-API-Key": READER}, timeout=60, **form))
        assert limits.media_worker.starts == 0 and limits.media_worker.pid is None  # a key's image: in process
        anonymous = hits(httpx.post(f"{url}/search", timeout=60, **form))
        assert limits.media_worker.starts == 1 and limits.media_worker.pid is not None
        assert anonymous == keyed and len(anonymous) == 5
        mixed = {**form, "data": {**form["data"], "text": "picture", "mode": "learned"}}
        assert hits(httpx.post(f"{url}/search", timeout=60, **mixed)) == hits(
            httpx.post(f"{url}/search", headers={"X-API-Key": READER}, timeout=60, **mixed)
        )


def test_anonymous_mcp_image_searches_use_the_worker_too(index: Path) -> None:
    image = base64.b64encode(photo(1200, 1300, seed=3)).decode()

    async def call(url: str) -> Any:
        async with mcp.Client(f"{url}/mcp") as client:
            return await client.call_tool("search", {"image_base64": image, "k": 3, "mode": "dense"})

    with server(index) as (url, limits):
        result = asyncio.run(call(url))
        assert not result.is_error, result
        assert limits.media_worker.starts == 1
        found = [hit["data"]["id"] for hit in result.structured_content["hits"]]
        form = {"data": {"k": "3", "mode": "dense", "log": "false"}}
        rest = httpx.post(
            f"{url}/search",
            headers={"X-API-Key": READER},
            files={"image": ("q.png", photo(1200, 1300, seed=3), "image/png")},
            timeout=60,
            **form,
        )
        assert found == [hit_id for hit_id, _ in hits(rest)]


def test_a_dead_worker_is_replaced(index: Path) -> None:
    form = {"data": {"k": "3", "log": "false"}, "files": {"image": ("q.png", photo(800, 600), "image/png")}}
    with server(index) as (url, limits):
        first = hits(httpx.post(f"{url}/search", timeout=60, **form))
        pid = limits.media_worker.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        assert hits(httpx.post(f"{url}/search", timeout=60, **form)) == first
        assert limits.media_worker.starts == 2 and limits.media_worker.pid not in (None, pid)
    assert limits.media_worker.pid is None  # stopped with the server


def test_the_worker_gives_the_pixels_of_the_servers_own_decode_at_the_lowest_priority() -> None:
    worker = MediaWorker()
    try:
        for data, side in (
            (photo(2100, 1100), 1100 // 2),
            (photo(1900, 2600, fmt="JPEG"), 950),
            (photo(300, 200), 200),
        ):
            reduced, cpu = worker.reduce_image(data)
            expected = decode_image(data, item="query", min_side=512)
            got = decode_image(reduced, item="query", min_side=512)
            assert got.size == expected.size and min(got.size) == side
            assert np.array_equal(np.asarray(got), np.asarray(expected))
            assert cpu > 0
        pid = worker.pid
        assert pid is not None
        policy = os.sched_getscheduler(pid)
        assert policy == os.SCHED_IDLE or os.getpriority(os.PRIO_PROCESS, pid) == 19
    finally:
        worker.close()
    assert worker.pid is None


def test_an_image_the_worker_refuses_gets_the_same_error_and_its_cpu_is_charged() -> None:
    limits = Limits(ServeConfig(anonymous_cpu=0.001, anonymous_cpu_burst=1.0))
    anonymous = Principal(None, "10.0.0.9")
    truncated = photo(2000, 1500)[:-5000]
    try:
        with pytest.raises(ImageError) as in_process:
            decode_image(truncated, item="query", min_side=512)
        with pytest.raises(ImageError) as in_worker:
            limits.search_image(anonymous, truncated)
        assert str(in_worker.value) == str(in_process.value) and in_worker.value.field == "image"
        spent = 1.0 - limits.admission.balance("10.0.0.9")
        assert spent > 0.005  # the worker decoded most of a 3 MP picture before it found the end missing
        big = photo(3000, 2000)
        assert limits.search_image(Principal(None, "10.0.0.9"), big) != big
        assert 1.0 - limits.admission.balance("10.0.0.9") > spent
    finally:
        limits.close()


def test_a_worker_too_slow_is_stopped_and_the_caller_told_to_retry() -> None:
    worker = MediaWorker(timeout_s=0.001)
    try:
        with pytest.raises(RateLimited, match="took over"):
            worker.reduce_image(photo(3000, 3000))
        assert worker.pid is None and worker.starts == 1
        worker.timeout_s = 30.0
        reduced, _ = worker.reduce_image(photo(600, 600))
        assert worker.starts == 2 and Image.open(io.BytesIO(reduced)).size == (600, 600)
    finally:
        worker.close()


def test_anonymous_batch_searches_decode_their_images_in_the_worker(index: Path) -> None:
    image = base64.b64encode(photo(1400, 1000, seed=5)).decode()
    queries = [{"text": "picture", "k": 3}, {"image_base64": image, "k": 3, "mode": "dense"}]

    async def call(url: str) -> Any:
        async with mcp.Client(f"{url}/mcp") as client:
            return await client.call_tool("search_many", {"queries": queries})

    with server(index) as (url, limits):
        keyed = httpx.post(f"{url}/search/batch", json={"queries": queries}, headers={"X-API-Key": READER}, timeout=60)
        assert keyed.status_code == 200, keyed.text
        assert limits.media_worker.starts == 0
        anonymous = httpx.post(f"{url}/search/batch", json={"queries": queries}, timeout=60)
        assert anonymous.status_code == 200, anonymous.text
        assert limits.media_worker.starts == 1
        ids = [[(h["id"], round(h["score"], 6)) for h in r["hits"]] for r in keyed.json()["results"]]
        assert [[(h["id"], round(h["score"], 6)) for h in r["hits"]] for r in anonymous.json()["results"]] == ids
        result = asyncio.run(call(url))
        assert not result.is_error, result
        found = [[h["data"]["id"] for h in r["hits"]] for r in result.structured_content["results"]]
        assert found == [[hit_id for hit_id, _ in hits] for hits in ids]
        assert limits.media_worker.starts == 1  # the same worker, still running
        truncated = base64.b64encode(photo(1400, 1000)[:-3000]).decode()
        bad = httpx.post(f"{url}/search/batch", json={"queries": [queries[0], {"image_base64": truncated}]}, timeout=60)
        assert bad.status_code == 422 and bad.json()["field"] == "queries[1].image", bad.text
