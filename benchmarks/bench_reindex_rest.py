"""Searches served over HTTP while ``POST /admin/reindex`` re-embeds the index on the server's own background
thread: errors (target 0) and the p50 during the build against the idle p50 of the same run (target ≤ 2).

Run:  python benchmarks/bench_reindex_rest.py --items 20000
      (options: --queries 200 --from-dim 64 --to-dim 128 --batch 256 --share 0.25)

The index: ``--items`` text items with the hashing encoder (``dim=--from-dim``), exact local index, no
extensions, served by a real uvicorn server on 127.0.0.1 (xmodal.serve.testing.serve_in_thread). One client
searches (dense, k = 10) back to back: ``--queries`` idle, then for as long as the build of
``{"action": "start", "encoder": "hashing", "encoder_options": {"dim": --to-dim}}`` runs (polled with
``status``), then through ``switch``. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))

import httpx  # noqa: E402

from xmodal import Engine, Item  # noqa: E402
from xmodal.serve import ApiKey, ServeConfig, create_app  # noqa: E402
from xmodal.serve.testing import serve_in_thread  # noqa: E402

WORDS = "red green blue black white apple car tree cat boat house river stone cloud bird lamp chair road".split()
ADMIN = {"Authorization": "Bearer bench-admin-key"}


def build(path: Path, n: int, dim: int) -> None:
    with Engine.open(path, encoder="hashing", encoder_options={"dim": dim}, index="exact", extensions=[]) as engine:
        for first in range(0, n, 5000):
            engine.add(
                Item.create(f"i{i}", title=" ".join(WORDS[(i * p) % len(WORDS)] for p in (1, 3, 7)) + f" {i}")
                for i in range(first, min(n, first + 5000))
            )


class Client:
    def __init__(self, url: str) -> None:
        self.url, self.http, self.errors, self.i = url, httpx.Client(timeout=60), [], 0

    def search(self) -> float:
        self.i += 1
        text = f"{WORDS[self.i % len(WORDS)]} {WORDS[(self.i * 5) % len(WORDS)]}"
        start = time.perf_counter()
        answer = self.http.post(f"{self.url}/search", json={"text": text, "k": 10, "mode": "dense"}, headers=ADMIN)
        took = (time.perf_counter() - start) * 1000
        if answer.status_code != 200 or not answer.json()["hits"]:
            self.errors.append(f"{answer.status_code} {answer.text[:200]}")
        return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--from-dim", type=int, default=64)
    parser.add_argument("--to-dim", type=int, default=128)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--share", type=float, default=0.25)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "idx"
        build(folder, args.items, args.from_dim)
        engine = Engine.open(folder, index="exact")
        keys = (ApiKey("bench-admin-key", frozenset({"admin"})),)
        config = ServeConfig(keys=keys, rate=1e6, burst=1_000_000, log_requests=False)
        app = create_app(engine, config)
        try:
            with serve_in_thread(app) as url:
                client = Client(url)
                idle = [client.search() for _ in range(args.queries)]
                start_body = {"action": "start", "encoder": "hashing", "batch": args.batch, "share": args.share,
                              "encoder_options": {"dim": args.to_dim}}  # fmt: skip
                began = time.perf_counter()
                answer = client.http.post(f"{url}/admin/reindex", json=start_body, headers=ADMIN)
                assert answer.status_code == 200, answer.text
                during: list[float] = []
                done = threading.Event()

                def poll() -> None:
                    with httpx.Client(timeout=60) as http:
                        while True:
                            status = http.post(f"{url}/admin/reindex", json={"action": "status"}, headers=ADMIN).json()
                            if status["state"] == "ready" and not status["running"]:
                                break
                            time.sleep(0.5)
                    done.set()

                poller = threading.Thread(target=poll, daemon=True)
                poller.start()
                while not done.is_set():
                    during.append(client.search())
                build_s = time.perf_counter() - began
                switch = client.http.post(f"{url}/admin/reindex", json={"action": "switch"}, headers=ADMIN).json()
                after = [client.search() for _ in range(args.queries)]
                info = client.http.get(f"{url}/info", headers=ADMIN).json()
        finally:
            app.state.xmodal.default.engine.close()
            engine.close()
    idle_p50, during_p50 = statistics.median(idle), statistics.median(during)
    print(json.dumps({
        "items": args.items, "idle_searches": len(idle), "idle_p50_ms": round(idle_p50, 2),
        "during_searches": len(during), "during_p50_ms": round(during_p50, 2),
        "during_p95_ms": round(statistics.quantiles(during, n=20)[18], 2) if len(during) > 20 else None,
        "p50_ratio": round(during_p50 / idle_p50, 2), "errors": len(client.errors), "first_errors": client.errors[:3],
        "build_s": round(build_s, 1), "items_per_s": round(args.items / build_s, 1),
        "switch_s": switch.get("seconds"), "reopened": switch.get("reopened"),
        "after_p50_ms": round(statistics.median(after), 2), "dim_after": info["dim"],
    }))  # fmt: skip


if __name__ == "__main__":
    main()
