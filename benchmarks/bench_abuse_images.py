"""Anonymous large-image searches against a real server: CPU and memory per request, and what the rate limit lets in.

Run:  python benchmarks/bench_abuse_images.py [--requests 64] [--concurrency 32] [--side 4990]

The image is the costliest cheap upload: a single-colour PNG of ``--side``² pixels (4990² is just under the
default ``max_pixels`` of 25 MP; the file is ~80 KB). One server process (``python -m xmodal.serve``, uvicorn,
one worker, the hashing encoder, so the figures are the image handling's) on 127.0.0.1 per phase; the clients
run in this process.

Phases:

1. **unlimited**: rate limit lifted (``rate = burst = 10^9``): every request is decoded and searched, so the
   server's CPU seconds per request and its peak RSS (``VmHWM``) show what one such upload costs.
2. **default**: the default limits: how many of the same requests are answered 200 and how many 429.

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from serverutil import cpu_seconds, memory_mb, png

from xmodal import Engine, Item
from xmodal.encoders import HashingEncoder
from xmodal.serve.testing import free_port, spawn_server


async def attack(url: str, image: bytes, requests: int, concurrency: int) -> dict[str, Any]:
    gate = asyncio.Semaphore(concurrency)
    codes: dict[str, int] = {}
    latencies: list[float] = []

    async with httpx.AsyncClient(base_url=url, timeout=300, limits=httpx.Limits(max_connections=concurrency)) as c:

        async def one() -> None:
            async with gate:
                t0 = time.perf_counter()
                try:
                    r = await c.post(
                        "/search", files={"image": ("q.png", image, "image/png")}, data={"k": "10", "log": "false"}
                    )
                    key = str(r.status_code)
                except httpx.HTTPError as exc:
                    key = type(exc).__name__
                latencies.append(time.perf_counter() - t0)
                codes[key] = codes.get(key, 0) + 1

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(requests)))
        wall = time.perf_counter() - start
    ms = sorted(v * 1000 for v in latencies)
    return {
        "codes": codes,
        "wall_s": round(wall, 2),
        "p50_ms": round(ms[len(ms) // 2]),
        "max_ms": round(ms[-1]),
    }


def phase(index: Path, config_text: str, image: bytes, args: argparse.Namespace) -> dict[str, Any]:
    config = index.parent / "serve.toml"
    config.write_text(config_text + "log_requests = false\nmcp = false\n")
    port = free_port()
    proc = spawn_server(index, port, config=config)
    try:
        pid = proc.pid
        httpx.post(f"http://127.0.0.1:{port}/search", json={"text": "warm up", "log": False}, timeout=60)
        rss0, cpu0 = memory_mb(pid, "VmRSS"), cpu_seconds(pid)
        out = asyncio.run(attack(f"http://127.0.0.1:{port}", image, args.requests, args.concurrency))
        cpu = cpu_seconds(pid) - cpu0
        answered = out["codes"].get("200", 0)
        out.update(
            server_cpu_s=round(cpu, 2),
            cpu_s_per_200=round(cpu / answered, 3) if answered else None,
            rss_start_mb=round(rss0),
            rss_peak_mb=round(memory_mb(pid, "VmHWM")),
        )
        return out
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--side", type=int, default=4990)
    args = parser.parse_args()
    image = png(args.side)
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(tmp) / "idx"
        with Engine.open(index, encoder=HashingEncoder(), index="exact") as engine:
            engine.add([Item.create(f"i{n}", title=f"item {n}", image=png(64 + n)) for n in range(20)])
        report = {
            "image": {"side": args.side, "megapixels": round(args.side**2 / 1e6, 1), "png_bytes": len(image)},
            "requests": args.requests,
            "concurrency": args.concurrency,
            "cpus": os.cpu_count(),
            "unlimited": phase(index, "rate = 1e9\nburst = 1000000000\n", image, args),
            "default": phase(index, "", image, args),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
