"""A search by sound is charged by its length (issue 14: it was charged only the base cost), over REST and MCP:
tokens per second of sound, and for an anonymous caller the CPU of the ffprobe and ffmpeg processes too."""

from __future__ import annotations

import asyncio
import base64
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("resemblyzer", reason="needs the audio extra (pip install --no-deps resemblyzer aisfx)")
pytest.importorskip("librosa", reason="needs the audio extra (librosa)")
mcp = pytest.importorskip("mcp")

import httpx  # noqa: E402

from xmodal import Engine, Item  # noqa: E402
from xmodal.serve import ApiKey, ServeConfig, create_app  # noqa: E402
from xmodal.serve.app import served_by  # noqa: E402
from xmodal.serve.policy import SOUND_PROBE_CPU, TOKENS_PER_SOUND_SECOND, Limits  # noqa: E402
from xmodal.serve.testing import serve_in_thread  # noqa: E402

KEYS = ("sound-reader-0001", "sound-reader-0002")


def tone(path: Path, seconds: float, hertz: int = 440) -> bytes:
    if shutil.which("sox") is None or shutil.which("ffprobe") is None:
        pytest.skip("needs sox and ffmpeg (apt-get install sox ffmpeg)")
    cmd = ["sox", "-n", "-r", "16000", "-b", "16", str(path), "synth", str(seconds), "sine", str(hertz)]
    subprocess.run(cmd, check=True, timeout=60)
    return path.read_bytes()


@pytest.fixture(scope="module")
def sounds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("sounds")
    return {"long": tone(folder / "long.wav", 40), "short": tone(folder / "short.wav", 2, 660)}


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory, sounds: dict[str, bytes]) -> Path:
    path = tmp_path_factory.mktemp("sound-index") / "idx"
    folder = path.parent
    (folder / "a.wav").write_bytes(sounds["short"])
    tone(folder / "b.wav", 3, 220)
    with Engine.open(path, encoder="audio", encoder_options={"base": "hashing"}, index="exact", extensions=[]) as e:
        assert not e.add([Item.create(n, title=n, media={"audio": str(folder / f"{n}.wav")}) for n in "ab"]).rejected
    return path


@contextmanager
def server(index: Path, **settings: Any) -> Iterator[tuple[str, Limits]]:
    keys = tuple(ApiKey(key, frozenset({"read"}), rate=0.001, burst=100) for key in KEYS)
    with Engine.open(index) as engine:
        app = create_app(engine, ServeConfig(log_requests=False, refusal_delay=0, keys=keys, **settings))
        with serve_in_thread(app) as url:
            yield url, served_by(app).limits


def test_a_rest_sound_search_is_charged_by_its_length(index: Path, sounds: dict[str, bytes]) -> None:
    assert 1 + TOKENS_PER_SOUND_SECOND * 40 > 100 / 2  # two 40 s searches cannot fit a burst of 100
    with server(index) as (url, _):

        def search(key: str, sound: bytes) -> httpx.Response:
            files = {"audio": ("q.wav", sound, "audio/wav")}
            return httpx.post(f"{url}/search", headers={"X-API-Key": key}, files=files, data={"k": "1"}, timeout=120)

        codes = [search(KEYS[0], sounds["long"]).status_code for _ in range(2)]
        assert codes == [200, 429]  # 81 tokens the first time, then 19 left
        short = [search(KEYS[1], sounds["short"]).status_code for _ in range(4)]
        assert short == [200] * 4  # 5 tokens each
        as_json = {"audio_base64": base64.b64encode(sounds["long"]).decode(), "k": 1}
        refused = httpx.post(f"{url}/search", headers={"X-API-Key": KEYS[1]}, json=as_json, timeout=120)
        assert refused.status_code == 429  # 80 tokens left, 81 asked: a base64 sound is charged the same


def test_an_anonymous_mcp_sound_search_is_charged_tokens_and_child_process_cpu(
    index: Path, sounds: dict[str, bytes]
) -> None:
    sound = base64.b64encode(sounds["long"]).decode()

    async def calls(url: str) -> list[Any]:
        async with mcp.Client(f"{url}/mcp") as client:
            return [await client.call_tool("search", {"audio_base64": sound, "k": 1}) for _ in range(2)]

    with server(index, rate=0.001, burst=100, anonymous_cpu=1e-6, anonymous_cpu_burst=10.0) as (url, limits):
        first, second = asyncio.run(calls(url))
        assert not first.is_error, first
        assert second.is_error and "rate limit exceeded" in str(second.content)
        spent = 10.0 - limits.admission.balance("127.0.0.1")
        assert spent >= SOUND_PROBE_CPU  # the ffprobe and ffmpeg processes, beside the thread's own CPU
