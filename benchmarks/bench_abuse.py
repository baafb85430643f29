"""Abuse at the default limits: anonymous clients send the costliest valid requests while keyed clients search.

Run:  python benchmarks/bench_abuse.py --seconds 20
      (options: --idle-seconds 20 --items 3000 --encoder offline --clients 4 --normal-rate 5 --abusers 16
      --abuser-addresses 1 --filter-values 10000)

One server process (``python -m xmodal.serve``, uvicorn, one worker) on 127.0.0.1 with the default
``ServeConfig`` (rate 200 tokens/s, burst 400 per key or client address; per anonymous address 0.1
CPU-seconds per second and 2 searches at once, all anonymous addresses together 0.1 and 1; 429s held back
1 s; 25 MP, 20 MiB bodies; MCP on)
and ``OPENBLAS_NUM_THREADS=1``, as docs/serving.md advises. The index: ``--items`` WordNet synsets as text
items, encoded with the offline encoder (MiniLM int8 text, EfficientNet-Lite0 images: ~3 s per 1,000 items
on two cores) or ``--encoder hashing``; built once and cached under ``benchmarks/out/``, copied afresh for
each run (the searches log impressions into it).

**Normal clients** (``--clients``): each has an API key of its own (its own rate-limit bucket) and sends
typical text searches (a WordNet lemma, ``k = 10``, impression logged, as the page does), paced at
``--normal-rate`` per second. Their latency is measured twice: **idle** (alone, ``--idle-seconds``) and
**under abuse** (the same clients, while the abusers run for ``--seconds``).

**Abusive clients** (``--abusers``, in a process of their own so their client work does not delay the
normal clients' event loop): anonymous, from 127.0.0.1 (``--abuser-addresses N`` spreads them over
127.0.0.1 … 127.0.0.N, each address a bucket of its own, as a botnet would), each repeating one of:

- ``png``: a single-colour PNG just under ``max_pixels`` (4999², ~80 KB), with the long text and k = 1,000;
- ``jpeg``: the same as a JPEG;
- ``text``: the long text, k = 1,000: WordNet glosses, as many characters (up to 4,096, the limit) as the
  default guards let through (longer ones they block as a likely injection, a cheap 422; the length is found
  before the abuse starts, with a key, and reported as ``long_text_chars``);
- ``filters``: the same with long filters: membership lists of ``--filter-values`` values on both
  attributes (``pos``, ``lexname``; the real values among them, so most items match). Filters are flat
  (no nesting in the filter language) and may name only attributes the index has (others: 422);
- ``deep_json``: not valid, for comparison: a body nested 100,000 levels deep (a 400);
- ``mcp_init``: a JSON-RPC ``initialize`` POST on ``/mcp``;
- ``mcp_search``: a ``tools/call`` of ``search`` on ``/mcp`` with the long text and k = 100.

They ignore ``Retry-After`` and send again at once. Reported: normal p50/p99 idle and under abuse and their
ratio, and for the slowest 1% of each phase the search's own time in the server (``took_ms``: the rest of
their latency went to HTTP, the event loop, a worker thread, the impression), each abusive kind's status codes, the server's RSS (sampled every 0.2 s) and peak (``VmHWM``), its
CPU seconds per phase, against the stated targets: peak RSS under 1 GB and the normal p99 under abuse at
most 3× idle. The server's child processes count as the server: its media worker (anonymous query images,
``xmodal.serve.media_worker``) adds its RSS to each sample and its ``VmHWM`` to the peak (a sum of peaks:
an upper bound), and its CPU to the server's. The clients share the machine with the server. Prints one JSON
object.

``--probe`` loads ``benchmarks/abuse_probe/sitecustomize.py`` into the server (and its media worker) and adds,
for the abuse phase (``probe``): each server thread's CPU seconds (``anonymous``: the thread anonymous searches
run on; ``workers``: keyed searches and the rest; ``main``: the event loop), the children's, and the anonymous
admission's counts: CPU charged to anonymous accounts, searches run and the share of the phase one was running
(``anonymous_busy``), refusals by reason (``one_cpu``: an address in debt, ``all_cpu``: all together in debt,
``*_running``: searches at their bound), turn polls, and the waits of anonymous searches behind keyed ones.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # docs/serving.md: set before serving (the server inherits it)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import multiprocessing as mp  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
from PIL import Image  # noqa: E402
from serverutil import cpu_seconds, encoded, memory_mb, percentile, png, wordnet  # noqa: E402

from xmodal import Engine  # noqa: E402
from xmodal.serve import ServeConfig  # noqa: E402
from xmodal.serve.policy import MAX_K, MAX_QUERY_TEXT, search_cost  # noqa: E402
from xmodal.serve.testing import free_port, spawn_server  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
PROBE = Path(__file__).resolve().parent / "abuse_probe"
RSS_BOUND_MB = 1024.0
P99_RATIO_BOUND = 3.0
KINDS = ("png", "jpeg", "text", "filters", "mcp_init", "mcp_search", "deep_json")
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "abuse", "version": "1"}},
}


def tokens(chars: int) -> dict[str, float]:
    """What the rate limiter charges each kind of search (a request's 1 on arrival included)."""
    side = math.isqrt(ServeConfig().max_pixels - 1)
    image = round(search_cost("x" * chars, side * side, MAX_K), 1)
    text = round(search_cost("x" * chars, 0, MAX_K), 1)
    mcp = round(search_cost("x" * chars, 0, 100), 1)  # MCP asks for k = 100 (its most)
    return {"png": image, "jpeg": image, "text": text, "filters": text, "mcp_init": 1.0, "mcp_search": mcp}


def normal_keys(clients: int) -> list[str]:
    return [f"normal-client-key-{n:02d}" for n in range(clients)]


def cached_index(n_items: int, encoder: str) -> tuple[Path, float | None]:
    """The cached index of ``n_items`` WordNet items (built now if missing: then its build time in seconds)."""
    path = OUT / f"abuse-index-{encoder}-{n_items}"
    if (path / "ready").exists():
        return path, None
    shutil.rmtree(path, ignore_errors=True)
    items, _ = wordnet(n_items, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with Engine.open(path, encoder=encoder, index="exact") as engine:
        engine.add(items)
    (path / "ready").write_text(f"{len(items)} items\n")
    return path, time.perf_counter() - t0


def long_text(glosses: list[str], chars: int = MAX_QUERY_TEXT) -> str:
    """Exactly ``chars`` characters of real words (the lexical index does real work)."""
    text = " ".join(glosses)
    while len(text) < chars:
        text += " " + text
    return text[:chars]


def accepted_chars(url: str, key: str, glosses: list[str], step: int = 64) -> int:
    """The longest prefix of :func:`long_text` (a multiple of ``step`` characters) the server answers 200 for
    (the guards block long texts as a likely injection: a blocked search is a cheap 422, not abuse)."""
    low, high = 0, MAX_QUERY_TEXT // step  # in steps: low is accepted (the empty text is never sent)
    with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=120) as client:
        while low < high:
            mid = (low + high + 1) // 2
            body = {"text": long_text(glosses, mid * step), "k": MAX_K, "log": False}
            if client.post("/search", json=body).status_code == 200:
                low = mid
            else:
                high = mid - 1
    return low * step


def payloads(glosses: list[str], filter_values: int, chars: int = MAX_QUERY_TEXT) -> dict[str, dict[str, Any]]:
    """Each abusive kind's request, encoded once: ``path`` and httpx keyword arguments."""
    config = ServeConfig()
    side = math.isqrt(config.max_pixels - 1)  # just under max_pixels
    colour = Image.new("RGB", (side, side), (30, 120, 200))
    text = long_text(glosses, chars)
    form = {"text": text, "k": str(MAX_K)}
    filters: dict[str, Any] = {  # the real values (WordNet's pos is "noun", "verb"...: most items match) first
        "pos": ["noun", "verb", "adj", "adv", *(f"pos-{i}" for i in range(filter_values))],
        "lexname": [f"noun.{w}" for w in ("artifact", "act", "person", "plant", "animal")]
        + [f"lexname-{i}" for i in range(filter_values)],
    }
    search = {"text": text, "k": MAX_K}
    deep = '{"text": "a", "filters": ' + "[" * 100_000 + "]" * 100_000 + "}"
    call = {"name": "search", "arguments": {"text": text, "k": 100}}
    mcp_search = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": call}
    json_headers = {"Content-Type": "application/json"}
    return {
        "png": {"files": {"image": ("q.png", png(side), "image/png")}, "data": form},
        "jpeg": {"files": {"image": ("q.jpg", encoded(colour, "JPEG"), "image/jpeg")}, "data": form},
        "text": {"content": json.dumps(search).encode(), "headers": json_headers},
        "filters": {"content": json.dumps({**search, "filters": filters}).encode(), "headers": json_headers},
        "mcp_init": {"path": "/mcp", "content": json.dumps(INIT).encode(), "headers": MCP_HEADERS},
        "mcp_search": {"path": "/mcp", "content": json.dumps(mcp_search).encode(), "headers": MCP_HEADERS},
        "deep_json": {"content": deep.encode(), "headers": json_headers},
    }


def payload_sizes(requests: dict[str, dict[str, Any]]) -> dict[str, int]:
    sizes = {}
    for kind, spec in requests.items():
        files = spec.get("files")
        sizes[kind] = len(files["image"][1]) if files else len(spec["content"])
    return sizes


def abuse_process(url: str, args: dict[str, Any], ready: Any, go: Any, results: Any) -> None:
    """The abusive clients, in a process of their own: build the payloads, say ready, wait for go, attack."""
    requests = payloads(args["glosses"], args["filter_values"], args["chars"])
    ready.set()
    go.wait()
    cpu = time.process_time()
    out = asyncio.run(attack(url, requests, args["kinds"], args["abusers"], args["addresses"], args["seconds"]))
    client_cpu = round(time.process_time() - cpu, 2)
    results.put({**out, "client_cpu_s": client_cpu, "payload_bytes": payload_sizes(requests)})


async def attack(
    url: str, requests: dict[str, dict[str, Any]], kinds: tuple[str, ...], abusers: int, addresses: int, seconds: float
) -> dict[str, Any]:
    codes: dict[str, dict[str, int]] = {kind: {} for kind in kinds}
    clients = [
        httpx.AsyncClient(
            base_url=url,
            timeout=120,
            transport=httpx.AsyncHTTPTransport(local_address=f"127.0.0.{a + 1}"),
        )
        for a in range(max(1, addresses))
    ]
    stop = time.perf_counter() + seconds

    async def worker(n: int) -> None:
        kind = kinds[n % len(kinds)]
        spec = dict(requests[kind])
        path = spec.pop("path", "/search")
        client = clients[n % len(clients)]
        while time.perf_counter() < stop:
            try:
                r = await client.post(path, **spec)
                code = str(r.status_code)
            except httpx.HTTPError as exc:
                code = type(exc).__name__
            codes[kind][code] = codes[kind].get(code, 0) + 1

    start = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(abusers)))
    wall = time.perf_counter() - start
    for client in clients:
        await client.aclose()
    total: dict[str, int] = {}
    for per_kind in codes.values():
        for code, count in per_kind.items():
            total[code] = total.get(code, 0) + count
    return {"wall_s": round(wall, 2), "codes": codes, "total": total}


async def normal_clients(url: str, keys: list[str], queries: list[str], rate: float, seconds: float) -> dict[str, Any]:
    """Keyed clients sending typical text searches, each paced at ``rate`` per second; latencies in ms. For the
    slowest 1% (``tail``), how much of the latency the search itself took in the server (its ``took_ms``: the
    engine's search, from the guards to the hits' items) and how much went elsewhere (HTTP, the event loop,
    waiting for a worker thread, the impression log, the client's own loop)."""
    latencies: list[float] = []
    took: list[float] = []
    codes: dict[str, int] = {}
    stop = time.perf_counter() + seconds

    async def client_loop(n: int, key: str) -> None:
        async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": key}, timeout=120) as client:
            i = n
            next_at = time.perf_counter() + n / (rate * len(keys))  # spread the clients' starts
            while next_at < stop:
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
                t0 = time.perf_counter()
                server_ms = math.nan
                try:
                    r = await client.post("/search", json={"text": queries[i % len(queries)], "k": 10})
                    code = str(r.status_code)
                    if r.status_code == 200:
                        server_ms = float(r.json()["took_ms"])
                except httpx.HTTPError as exc:
                    code = type(exc).__name__
                latencies.append((time.perf_counter() - t0) * 1000)
                took.append(server_ms)
                codes[code] = codes.get(code, 0) + 1
                i += len(keys)
                next_at = max(next_at + 1 / rate, time.perf_counter())

    await asyncio.gather(*(client_loop(n, key) for n, key in enumerate(keys)))
    p99 = percentile(latencies, 0.99)
    tail = sorted((lat, t) for lat, t in zip(latencies, took, strict=True) if lat >= p99)
    return {
        "requests": len(latencies),
        "codes": codes,
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(p99, 2),
        "max_ms": round(max(latencies), 2),
        "search_took_p50_ms": round(statistics.median([t for t in took if not math.isnan(t)] or [math.nan]), 2),
        "tail": [{"latency_ms": round(lat, 1), "search_took_ms": round(t, 1)} for lat, t in tail],
    }


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (the media worker; a tesseract or ffmpeg while one runs)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(c) for c in task.read_text().split()]
        except OSError:
            continue
    return found


def tree_mb(pid: int, key: str = "VmRSS") -> float:
    """:func:`memory_mb` of the server and its live children, summed."""
    return memory_mb(pid, key) + sum(memory_mb(child, key) for child in children(pid))


def tree_cpu(pid: int) -> float:
    """CPU seconds of the server, its finished children (waited for) and its live ones."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    waited = (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
    live = 0.0
    for child in children(pid):
        try:
            live += cpu_seconds(child)
        except OSError:
            continue
    return cpu_seconds(pid) + waited + live


class Sampler:
    """The server's RSS (its children's added) every ``period`` seconds, in a thread; the worker's peak."""

    def __init__(self, pid: int, period: float = 0.2) -> None:
        self.pid, self.period = pid, period
        self.samples: list[float] = [tree_mb(pid)]
        self.child_hwm: dict[int, float] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(self.period):
            self.samples.append(tree_mb(self.pid))
            for child in children(self.pid):
                self.child_hwm[child] = max(self.child_hwm.get(child, 0.0), memory_mb(child, "VmHWM"))

    def children_peak(self) -> float:
        """The largest ``VmHWM`` a child of the server reached (0: none ran)."""
        return round(max(self.child_hwm.values(), default=0.0), 1)

    def mark(self) -> int:
        return len(self.samples)

    def peak(self, start: int = 0, end: int | None = None) -> float:
        return round(max(self.samples[start:end] or [0.0]), 1)

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def costs(url: str, requests: dict[str, dict[str, Any]], pid: int, chars: int, repeat: int = 3) -> dict[str, Any]:
    """Each kind sent ``repeat`` times in a row on an idle server, with a key of its own (a bucket of its own):
    the server's CPU seconds and the latency per request, beside the tokens it is charged."""
    out = {}
    for kind, spec in requests.items():
        spec = dict(spec)
        path = spec.pop("path", "/search")
        headers = {**spec.pop("headers", {}), "X-API-Key": probe_key(kind)}
        with httpx.Client(base_url=url, timeout=120) as client:
            cpu0, t0, codes = tree_cpu(pid), time.perf_counter(), []
            for _ in range(repeat):
                codes.append(client.post(path, headers=headers, **spec).status_code)
            wall, cpu = time.perf_counter() - t0, tree_cpu(pid) - cpu0
        out[kind] = {
            "codes": sorted(set(codes)),
            "server_cpu_ms": round(cpu * 1000 / repeat, 1),
            "latency_ms": round(wall * 1000 / repeat, 1),
            "tokens": tokens(chars).get(kind),
        }
    return out


def probe_key(kind: str) -> str:
    return f"probe-key-{kind.replace('_', '-')}"


def warm_up(url: str, key: str, queries: list[str]) -> None:
    """Load the models and the code paths once (first text, first image, first MCP call)."""
    with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=120) as client:
        for q in queries[:20]:
            client.post("/search", json={"text": q, "k": 10})
        client.post("/search", files={"image": ("w.png", png(300), "image/png")}, data={"k": "10"})
        client.post("/mcp", json=INIT, headers=MCP_HEADERS)


def run(index: Path, args: argparse.Namespace, queries: list[str], glosses: list[str], log: Path) -> dict[str, Any]:
    keys = normal_keys(args.clients)
    env = {"XMODAL_API_KEYS": ",".join(f"{k}:read" for k in keys + [probe_key(kind) for kind in KINDS])}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    ctx = mp.get_context("spawn")
    ready, go, results = ctx.Event(), ctx.Event(), ctx.Queue()
    attack_args = {
        "glosses": glosses,
        "filter_values": args.filter_values,
        "abusers": args.abusers,
        "kinds": tuple(args.kinds.split(",")),
        "addresses": args.abuser_addresses,
        "seconds": args.seconds,
    }
    probe = log.parent / "bench_abuse-probe.jsonl" if args.probe else None
    if probe is not None:
        probe.unlink(missing_ok=True)
        env["XMODAL_ABUSE_PROBE"] = str(probe)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROBE), os.environ.get("PYTHONPATH")) if p)
    abusers = None
    config = None
    if args.rate is not None or args.burst is not None:  # exploring other limits; the default run has no config
        config = log.parent / "bench_abuse-serve.toml"
        settings = {"rate": args.rate, "burst": args.burst}
        config.write_text("".join(f"{k} = {v!r}\n" for k, v in settings.items() if v is not None))
    proc = spawn_server(index, port, config=config, encoder=args.encoder, env=env, log=log)
    sampler = Sampler(proc.pid)
    try:
        warm_up(url, keys[0], queries)
        chars = accepted_chars(url, probe_key("text"), glosses)
        abusers = ctx.Process(
            target=abuse_process, args=(url, {**attack_args, "chars": chars}, ready, go, results), daemon=True
        )
        abusers.start()
        cost = costs(url, payloads(glosses, args.filter_values, chars), proc.pid, chars) if args.costs else None
        rss_warm = tree_mb(proc.pid)
        cpu0 = tree_cpu(proc.pid)
        idle = asyncio.run(normal_clients(url, keys, queries, args.normal_rate, args.idle_seconds))
        cpu1 = tree_cpu(proc.pid)
        hwm_idle = tree_mb(proc.pid, "VmHWM")
        if not ready.wait(120):
            raise RuntimeError("the abusive clients did not get ready")
        mark = sampler.mark()
        window = [time.time()]
        go.set()
        loaded = asyncio.run(normal_clients(url, keys, queries, args.normal_rate, args.seconds))
        window.append(time.time())
        attack = results.get(timeout=args.seconds + 300)
        cpu2 = tree_cpu(proc.pid)
        server_hwm, worker_hwm = memory_mb(proc.pid, "VmHWM"), sampler.children_peak()
        hwm = server_hwm + worker_hwm
        rss_end = tree_mb(proc.pid)
    finally:
        sampler.stop()
        proc.terminate()
        exit_code = proc.wait(60)
        if abusers is not None:
            abusers.join(30)
    ratio = loaded["p99_ms"] / idle["p99_ms"]
    probed = {"probe": probe_summary(probe, proc.pid, window[0], window[1])} if probe is not None else {}
    return {
        "long_text_chars": chars,
        "cost_per_request_idle": cost,
        "normal": {
            "idle": idle,
            "under_abuse": loaded,
            "p50_ratio": round(loaded["p50_ms"] / idle["p50_ms"], 2),
            "p99_ratio": round(ratio, 2),
        },
        "abusive": attack,
        "server": {
            "rss_mb": {
                "after_warm_up": round(rss_warm, 1),
                "peak_idle_sampled": sampler.peak(0, mark),
                "peak_under_abuse_sampled": sampler.peak(mark),
                "end": round(rss_end, 1),
            },
            "vm_hwm_mb": {
                "after_idle": round(hwm_idle, 1),
                "end": round(hwm, 1),
                "server": round(server_hwm, 1),
                "children": worker_hwm,
            },
            "cpu_s": {"idle": round(cpu1 - cpu0, 2), "under_abuse": round(cpu2 - cpu1, 2)},
            "graceful_exit_code": exit_code,
        },
        "targets": {
            "peak_rss_bound_mb": RSS_BOUND_MB,
            "peak_rss_mb": round(hwm, 1),
            "peak_rss_ok": hwm < RSS_BOUND_MB,
            "p99_ratio_bound": P99_RATIO_BOUND,
            "p99_ratio": round(ratio, 2),
            "p99_ratio_ok": ratio <= P99_RATIO_BOUND,
        },
        **probed,
    }


def probe_summary(path: Path, pid: int, start: float, end: float) -> dict[str, Any]:
    """What ``abuse_probe`` recorded between ``start`` and ``end`` (the abuse phase, wall-clock times): the
    differences of its samples nearest those times, for the server (``pid``) and its children together."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def nearest(of: list[dict[str, Any]], t: float) -> dict[str, Any]:
        return min(of, key=lambda r: abs(r["t"] - t))

    def delta(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
        return {k: round(v - a.get(k, 0.0), 2) for k, v in sorted(b.items()) if v - a.get(k, 0.0) >= 0.005}

    server = [r for r in rows if r["pid"] == pid]
    a, b = nearest(server, start), nearest(server, end)
    seconds = b["t"] - a["t"]
    children = 0.0
    for child in {r["pid"] for r in rows} - {pid}:
        own = [r for r in rows if r["pid"] == child and start - 1 <= r["t"] <= end + 1]
        if own:
            children += sum(delta(own[0]["threads"], own[-1]["threads"]).values())
    return {
        "seconds": round(seconds, 2),
        "server_thread_cpu_s": delta(a["threads"], b["threads"]),
        "children_cpu_s": round(children, 2),
        "anonymous_charged_cpu_s": round(b["charged_s"] - a["charged_s"], 2),
        "anonymous_searches": b["runs"] - a["runs"],
        "anonymous_busy": round((b["run_wall_s"] - a["run_wall_s"]) / seconds, 2) if seconds > 0 else None,
        "refused": {k: v - a["refused"].get(k, 0) for k, v in sorted(b["refused"].items())},
        "turn_polls": b["turn_polls"] - a["turn_polls"],
        "gate_waits": b["gate_waits"] - a["gate_waits"],
        "gate_wait_s": round(b["gate_wait_s"] - a["gate_wait_s"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="abuse phase length")
    parser.add_argument("--idle-seconds", type=float, default=20.0, help="idle phase length")
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--encoder", default="offline", help="offline (real models) or hashing")
    parser.add_argument("--clients", type=int, default=4, help="normal clients, one API key each")
    parser.add_argument("--normal-rate", type=float, default=5.0, help="searches per second per normal client")
    parser.add_argument("--abusers", type=int, default=16, help="abusive clients (spread over the kinds)")
    parser.add_argument("--abuser-addresses", type=int, default=1, help="source addresses 127.0.0.1..N")
    parser.add_argument("--kinds", default=",".join(KINDS), help="abusive kinds to send, comma-separated")
    parser.add_argument("--rate", type=float, help="override the default rate (tokens/s per key or address)")
    parser.add_argument("--burst", type=int, help="override the default burst")
    parser.add_argument("--no-costs", dest="costs", action="store_false", help="skip the per-kind cost phase")
    parser.add_argument("--probe", action="store_true", help="count where the server's CPU goes (see the doc)")
    parser.add_argument("--filter-values", type=int, default=10_000, help="values per membership list")
    args = parser.parse_args()
    unknown = sorted(set(args.kinds.split(",")) - set(KINDS))
    if unknown:
        parser.error(f"--kinds: unknown {unknown}; choose from {', '.join(KINDS)}")
    items, queries = wordnet(args.items, 200)
    glosses = [item.text or "" for item in items[:200]]
    index, build_s = cached_index(args.items, args.encoder)
    with tempfile.TemporaryDirectory(prefix="xmodal-bench-abuse-") as tmp:
        copy = Path(tmp) / "idx"
        shutil.copytree(index, copy)
        result: dict[str, Any] = {
            "benchmark": "abuse",
            "data": "wordnet",
            "items": len(items),
            "encoder": args.encoder,
            "index_build_s": round(build_s, 2) if build_s is not None else "cached",
            "limits": "ServeConfig defaults"
            if args.rate is None and args.burst is None
            else {"rate": args.rate or ServeConfig.rate, "burst": args.burst or ServeConfig.burst},
            "cpus": os.cpu_count(),
            "load_average_before": os.getloadavg(),
            "seconds": args.seconds,
            "idle_seconds": args.idle_seconds,
            "normal_clients": args.clients,
            "normal_rate_per_client": args.normal_rate,
            "abusers": args.abusers,
            "abuser_addresses": args.abuser_addresses,
            "kinds": args.kinds.split(","),
        }
        log = OUT / "bench_abuse-server.log"
        log.unlink(missing_ok=True)
        result.update(run(copy, args, queries, glosses, log))
        errors = [line for line in log.read_text(errors="replace").splitlines() if '"level": "error"' in line]
        result["server_errors"] = {"count": len(errors), "log": str(log), "first": [e[:300] for e in errors[:3]]}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
