"""One limits layer for REST and MCP (issue 13, defects 2 and 4), against a real server on 127.0.0.1.

MCP over streamable HTTP is held to the REST limits: the rate limit (failed keys included), the pixel and
byte limits of an image, the length of query text and the bounds of k; a search is charged by its cost
(an image's megapixels, text length, k), and a large image is decoded at reduced size, a few at a time.
"""

from __future__ import annotations

import asyncio
import base64
import io
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
mcp = pytest.importorskip("mcp")

import httpx  # noqa: E402
from PIL import Image  # noqa: E402

from xmodal import Engine, Item, Query  # noqa: E402
from xmodal.encoders import HashingEncoder  # noqa: E402
from xmodal.serve import ApiKey, ServeConfig, create_app  # noqa: E402
from xmodal.serve.testing import serve_in_thread  # noqa: E402

READER = "limits-reader-0001"


def png(width: int, height: int, color: tuple[int, int, int] = (30, 120, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("limits") / "idx"
    with Engine.open(path, encoder=HashingEncoder(), index="exact") as engine:
        engine.add(
            [
                Item.create("lamp", title="Desk lamp", text="a warm desk lamp", image=png(40, 30, (200, 180, 40))),
                Item.create("sofa", title="Green sofa", text="three seat sofa", image=png(40, 30, (20, 160, 60))),
            ]
        )
    return path


@pytest.fixture
def serve(index: Path) -> Iterator[Callable[..., str]]:
    """``serve(**settings)``: the base URL of a real server with those settings (over the test's index)."""
    with Engine.open(index) as engine, ExitStack() as stack:

        def start(**settings: Any) -> str:
            app = create_app(engine, ServeConfig(log_requests=False, **settings))
            url: str = stack.enter_context(serve_in_thread(app))
            return url

        yield start


def mcp_calls(url: str, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    """The tool results of ``calls``, made in one MCP session over streamable HTTP by the SDK's client."""

    async def main() -> list[Any]:
        async with mcp.Client(f"{url}/mcp") as client:
            return [await client.call_tool(name, args) for name, args in calls]

    return asyncio.run(main())


def error_text(result: Any) -> str:
    assert result.is_error, result
    return str(result.content[0].text)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_mcp_refuses_what_rest_refuses_naming_the_field(serve: Callable[..., str]) -> None:
    from xmodal.serve.policy import MAX_QUERY_TEXT

    url = serve(max_pixels=1_000_000, max_image_bytes=200_000)
    too_many_pixels = png(1200, 1000)  # 1.2 MP, a small file
    noisy = Image.effect_noise((400, 400), 90).convert("RGB")
    buffer = io.BytesIO()
    noisy.save(buffer, format="PNG")
    too_many_bytes = buffer.getvalue()
    assert len(too_many_bytes) > 200_000
    long_text = "lamp " * (MAX_QUERY_TEXT // 5 + 1)
    at_limit = ("lamp " * MAX_QUERY_TEXT)[:MAX_QUERY_TEXT]
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"image_base64": b64(too_many_pixels)}, "image", "1,000,000"),
        ({"image_base64": b64(too_many_bytes)}, "image", "200,000"),
        ({"text": long_text}, "text", f"{MAX_QUERY_TEXT:,}"),
        ({"text": "lamp", "k": 1001}, "k", "1000"),
        ({"text": "lamp", "k": 0}, "k", "1000"),
    ]
    results = mcp_calls(url, [("search", args) for args, _, _ in cases] + [("search", {"text": at_limit, "k": 1000})])
    for (args, field, limit), result in zip(cases, results, strict=False):
        message = error_text(result)
        assert f"{field}:" in message and limit in message, message
        rest = httpx.post(f"{url}/search", json={"log": False, **args}, timeout=30)
        assert rest.status_code == 422 and rest.json()["field"] == field, rest.text
    assert not results[-1].is_error  # the largest text and k both adapters accept
    assert httpx.post(f"{url}/search", json={"text": at_limit, "k": 1000, "log": False}).status_code == 200


def test_mcp_failed_keys_are_rate_limited_like_rest(serve: Callable[..., str]) -> None:
    url = serve(keys=(ApiKey(READER, frozenset({"read"})),), open_reads=False, rate=0.001, burst=3)
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
    accept = {"Accept": "application/json, text/event-stream"}
    mcp_codes = [
        httpx.post(f"{url}/mcp", json=init, headers={**accept, "Authorization": f"Bearer guess-{i:04d}"})
        for i in range(5)
    ]
    assert [r.status_code for r in mcp_codes] == [401, 401, 401, 429, 429]
    assert int(mcp_codes[-1].headers["retry-after"]) >= 1 and "rate limit" in mcp_codes[-1].json()["error"]
    rest = httpx.post(f"{url}/search", json={"text": "x"}, headers={"Authorization": "Bearer guess-rest"})
    assert rest.status_code == 429  # one bucket per client address, whichever adapter it knocks on


def test_searches_are_charged_by_cost_on_both_adapters(serve: Callable[..., str]) -> None:
    # 60 tokens and next to no refill: a 5 MP image search costs 1 + 4 × 5 + 0.1 ≈ 21 tokens, a text search ~1.1
    url = serve(rate=0.001, burst=60)
    image = {"image_base64": b64(png(2500, 2000)), "k": 10}
    results = mcp_calls(url, [("search", image)] * 4)
    refused = [i for i, r in enumerate(results) if r.is_error]
    assert refused and refused[0] == 2, [r.content[0].text[:100] for r in results]
    message = error_text(results[2])
    assert "rate limit exceeded for anon:127.0.0.1" in message and "retry after" in message
    # the same client over REST draws on the same bucket: an image search no longer fits, a text search does
    refused_rest = httpx.post(f"{url}/search", json={"log": False, **image}, timeout=30)
    assert refused_rest.status_code == 429 and int(refused_rest.headers["retry-after"]) >= 1
    assert httpx.post(f"{url}/search", json={"text": "lamp", "log": False}).status_code == 200


def test_rest_image_searches_are_charged_by_megapixels(serve: Callable[..., str]) -> None:
    url = serve(rate=0.001, burst=60)
    files = {"image": ("big.png", png(2500, 2000), "image/png")}
    codes = [httpx.post(f"{url}/search", files=files, data={"log": "false"}, timeout=30).status_code for _ in range(4)]
    assert codes == [200, 200, 429, 429]  # 60 tokens buy two 5 MP searches, not sixty


def test_a_large_image_is_decoded_at_reduced_size_and_stored_unchanged(tmp_path: Path) -> None:
    from xmodal.imaging import DECODE_SIDE
    from xmodal.media_loaders import media_loader

    big_png = png(2600, 2100)
    loaded = media_loader("image").load(big_png)
    assert loaded.data == big_png  # what the media store keeps: the file as it came
    assert DECODE_SIDE <= min(loaded.content.size) < 2 * DECODE_SIDE and loaded.content.mode == "RGB"
    assert loaded.content.size == (2600 // 4, 2100 // 4)  # reduced by a whole factor, the aspect kept
    jpeg = io.BytesIO()
    Image.new("RGB", (4000, 3000), (10, 200, 90)).save(jpeg, format="JPEG")
    decoded = media_loader("image").load(jpeg.getvalue()).content
    assert DECODE_SIDE <= min(decoded.size) < 2 * DECODE_SIDE and decoded.getpixel((5, 5)) == pytest.approx(
        (10, 200, 90), abs=3
    )
    small = png(600, 400)
    assert media_loader("image").load(small).content.size == (600, 400)  # no smaller than needed: left alone
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as engine:
        engine.add([Item.create("big", title="big", image=big_png)])
        stored = engine.media.path(str(engine.get("big").image)).read_bytes()
        assert stored == big_png
        assert list(engine.search(Query(image=big_png, k=1)).hits.ids) == ["big"]


def test_image_decodes_run_a_few_at_a_time() -> None:
    from xmodal.serve.policy import Limits

    limits = Limits(ServeConfig(image_decodes=2))
    running, peak, threads_seen, lock = 0, 0, set(), threading.Lock()

    def decode() -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            threads_seen.add(threading.get_ident())
        time.sleep(0.05)
        with lock:
            running -= 1
        return 1

    callers = [threading.Thread(target=limits.decode, args=(decode,)) for _ in range(6)]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join()
    assert peak == 2 and len(threads_seen) == 2  # two at a time, always on the same two threads
    assert limits.decode(decode, needed=False) == 1  # not needed: run by the caller
    limits.close()
    assert 1 <= Limits(ServeConfig()).decodes <= 4  # default: one per CPU, at most 4


def test_an_anonymous_address_gets_its_cpu_share_keys_their_own(serve: Callable[..., str]) -> None:
    # 10 ms of CPU at once and next to no refill: a few searches put the address in debt for the whole test
    url = serve(
        keys=(ApiKey(READER, frozenset({"read"})),), anonymous_cpu=1e-6, anonymous_cpu_burst=0.01, refusal_delay=0
    )
    search = {"text": "warm desk lamp " * 50, "k": 1000, "log": False}
    codes = [httpx.post(f"{url}/search", json=search).status_code for _ in range(30)]
    assert codes[0] == 200 and 429 in codes and codes[codes.index(429) :] == [429] * (30 - codes.index(429)), codes
    refused = httpx.post(f"{url}/search", json=search)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert "CPU-seconds per second" in refused.json()["error"] and "anon:127.0.0.1" in refused.json()["error"]
    assert httpx.get(f"{url}/items/lamp").status_code == 429  # an address in debt gets nothing until repaid
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
    mcp_refused = httpx.post(f"{url}/mcp", json=init, headers={"Accept": "application/json, text/event-stream"})
    assert mcp_refused.status_code == 429 and "CPU-seconds" in mcp_refused.json()["error"]  # MCP: the same account
    keyed = httpx.post(f"{url}/search", json=search, headers={"Authorization": f"Bearer {READER}"})
    assert keyed.status_code == 200  # a key's limits are the operator's, not the anonymous share
    assert httpx.get(f"{url}/health").status_code == 200


def test_mcp_searches_draw_on_the_same_cpu_account(serve: Callable[..., str]) -> None:
    url = serve(anonymous_cpu=1e-6, anonymous_cpu_burst=0.01, refusal_delay=0)
    call = {"name": "search", "arguments": {"text": "warm desk lamp " * 50, "k": 1000}}
    rpc = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": call}
    headers = {"Accept": "application/json, text/event-stream"}
    answers = [httpx.post(f"{url}/mcp", json=rpc, headers=headers) for _ in range(30)]
    assert answers[0].status_code == 200 and answers[0].json()["result"]["structuredContent"]["hits"]
    assert answers[-1].status_code == 429  # in debt from MCP searches alone: refused at the door
    assert httpx.post(f"{url}/search", json={"text": "lamp", "log": False}).status_code == 429  # one account


def test_anonymous_searches_in_flight_are_bounded_per_address_and_all_together() -> None:
    from xmodal.serve.admission import Admission
    from xmodal.serve.limits import RateLimited

    admission = Admission(ServeConfig(anonymous_inflight=2, anonymous_total_inflight=3))
    release = threading.Event()
    started = threading.Barrier(4)

    def slow() -> str:
        started.wait()
        release.wait(10)
        return "done"

    running = [("10.0.0.1", slow), ("10.0.0.1", slow), ("10.0.0.2", slow)]
    threads = [threading.Thread(target=admission.run, args=args) for args in running]
    for t in threads:
        t.start()
    started.wait()
    with pytest.raises(RateLimited, match=r"anon:10.0.0.1 \(2 searches running; at most 2\)"):
        admission.run("10.0.0.1", lambda: "third of one address")
    with pytest.raises(RateLimited, match=r"anonymous clients together \(3 searches running; at most 3\)"):
        admission.run("10.0.0.3", lambda: "a fourth address")  # a botnet takes no more than the total
    with pytest.raises(RateLimited, match="3 searches running"):
        admission.check("10.0.0.4", running=True)  # the door (MCP) refuses the same way
    release.set()
    for t in threads:
        t.join()
    assert admission.run("10.0.0.3", lambda: "after") == "after"


def test_all_anonymous_addresses_share_one_cpu_account() -> None:
    from xmodal.serve.admission import ALL_ANONYMOUS, Admission
    from xmodal.serve.limits import RateLimited

    admission = Admission(ServeConfig(anonymous_cpu=10.0, anonymous_total_cpu=1e-6, anonymous_cpu_burst=0.5))
    for i in range(3):
        admission.charge(f"10.0.1.{i}", 0.2)  # each address well within its own share
    assert admission.balance(ALL_ANONYMOUS) < 0
    with pytest.raises(RateLimited, match="anonymous clients together"):
        admission.check("10.0.1.9")  # a new address is refused too: the shared share is spent


def test_many_anonymous_addresses_take_no_more_cpu_than_one_at_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """At the default limits, 16 anonymous addresses (a botnet) together get no more CPU than one address alone:
    with a shared share of 0.25 CPU-seconds per second they were allowed 2.5 times one address's rate, and in
    bench_abuse.py took 2.4 times its CPU, which stretched the keyed clients' tail (docs/benchmarks.md, issue 13)."""
    import types

    from xmodal.serve import admission as admission_module
    from xmodal.serve.limits import RateLimited

    def spent(addresses: list[str], seconds: float = 10.0, step: float = 0.01, search_cpu: float = 0.02) -> float:
        """CPU seconds the addresses get charged in ``seconds`` of a simulated clock, each sending a search (of
        ``search_cpu``) every ``step`` and never waiting for its Retry-After."""
        now = [0.0]
        monkeypatch.setattr(admission_module, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
        admission = admission_module.Admission(ServeConfig())
        total = 0.0
        for _ in range(round(seconds / step)):
            now[0] += step
            for address in addresses:
                try:
                    admission.check(address)
                except RateLimited:
                    continue
                admission.charge(address, search_cpu)
                total += search_cpu
        return total

    one = spent(["10.0.2.1"])
    assert 1.9 < one < 2.1  # the burst (1 s) and 0.1 CPU-seconds per second for 10 s
    many = spent([f"10.0.2.{i}" for i in range(1, 17)])
    assert many <= one + 0.05, f"16 addresses took {many:.2f} CPU-seconds, one address {one:.2f}"


def test_the_cpu_a_search_takes_is_charged_to_its_address() -> None:
    from xmodal.serve.admission import Admission

    admission = Admission(ServeConfig(anonymous_cpu=0.001, anonymous_cpu_burst=1.0))

    def busy() -> None:
        end = time.thread_time() + 0.05
        while time.thread_time() < end:
            pass

    admission.run("10.0.0.3", busy)
    assert 0.9 < admission.balance("10.0.0.3") < 0.96  # 50 ms of CPU spent of the 1 s burst
    assert admission.balance("10.0.0.4") == 1.0


def test_refusals_are_held_back_as_a_tar_pit(serve: Callable[..., str]) -> None:
    url = serve(rate=0.001, burst=3, refusal_delay=0.5)
    started = time.monotonic()
    codes = [httpx.post(f"{url}/search", json={"text": "lamp", "log": False}).status_code for _ in range(4)]
    assert codes == [200, 200, 429, 429]
    assert time.monotonic() - started >= 1.0  # each refusal waited half a second: a client that retries at once
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
    started = time.monotonic()
    refused = httpx.post(f"{url}/mcp", json=init, headers={"Accept": "application/json, text/event-stream"})
    assert refused.status_code == 429 and time.monotonic() - started >= 0.5  # MCP's door holds it back too


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("anonymous_inflight", 0, "anonymous_inflight must be a positive integer"),
        ("anonymous_cpu", -1, "anonymous_cpu must be a number of seconds"),
        ("anonymous_cpu_burst", "lots", "anonymous_cpu_burst must be a number of seconds"),
        ("refusal_delay", float("inf"), "refusal_delay must be a number of seconds"),
    ],
)
def test_admission_settings_are_checked(setting: str, value: Any, named: str) -> None:
    from xmodal.errors import ConfigError

    with pytest.raises(ConfigError, match=named):
        ServeConfig.from_dict({setting: value})


def test_an_anonymous_searchs_impression_is_logged_on_its_own_metered_thread(index: Path) -> None:
    """An anonymous caller's impression is written by its search on the anonymous thread (charged to its CPU
    account, after a point where it steps aside for keyed work), not on the writer thread keyed callers' queue on;
    both get a query id that feedback accepts."""
    import threading

    reader = ApiKey(READER, frozenset({"read"}))
    with Engine.open(index) as engine:
        threads: list[str] = []
        log = engine.feedback_log
        original = log.log_impression

        def noted(*args: Any, **kwargs: Any) -> str:
            threads.append(threading.current_thread().name)
            return original(*args, **kwargs)

        log.log_impression = noted  # type: ignore[method-assign]
        with serve_in_thread(create_app(engine, ServeConfig(log_requests=False, keys=(reader,)))) as url:
            anonymous = httpx.post(f"{url}/search", json={"text": "warm desk lamp", "k": 2})
            keyed = httpx.post(f"{url}/search", json={"text": "warm desk lamp", "k": 2}, headers={"X-API-Key": READER})
            for answer in (anonymous, keyed):
                assert answer.status_code == 200 and answer.json()["query_id"]
                event = {"query_id": answer.json()["query_id"], "item_id": answer.json()["hits"][0]["id"]}
                assert httpx.post(f"{url}/feedback", json=event).status_code == 200
            unlogged = httpx.post(f"{url}/search", json={"text": "warm desk lamp", "k": 2, "log": False})
            assert unlogged.status_code == 200 and unlogged.json()["query_id"] is None
    assert len(threads) == 2 and threads[0].startswith("xmodal-anonymous") and threads[1].startswith("xmodal-writer")
