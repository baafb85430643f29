"""The search page with audio and video, in a real headless Chromium (Debian's /usr/bin/chromium driven by
Playwright): a video and a PDF uploaded with the page's file picker, a shot found by what is said in it, its
key frame as the card's thumbnail, and the hit opened in a player that starts at the shot."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip("chromium is not installed (apt-get install -y chromium)", allow_module_level=True)

from tests.av_clips import need_tools, two_shots, typeset  # noqa: E402
from xmodal import Engine  # noqa: E402
from xmodal.encoders import HashingEncoder  # noqa: E402
from xmodal.serve import ApiKey, ServeConfig, create_app  # noqa: E402
from xmodal.serve.testing import serve_in_thread  # noqa: E402

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
KEY = "write-key-0001"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Engine, Path]]:
    need_tools()
    tmp = tmp_path_factory.mktemp("avpage")
    engine = Engine.open(tmp / "idx", encoder=HashingEncoder(), index="exact")
    config = ServeConfig(
        mcp=False,
        log_requests=False,
        anonymous_cpu=0.0,
        anonymous_total_cpu=0.0,
        keys=(ApiKey(KEY, frozenset({"read", "write"}), "page"),),
    )
    with serve_in_thread(create_app(engine, config)) as url:
        yield url, engine, tmp
    engine.close()


@pytest.fixture(scope="module")
def page(site: tuple[str, Engine, Path]) -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": 1200, "height": 800})
        pg.route("**/*", lambda route: route.continue_() if route.request.url.startswith(site[0]) else route.abort())
        yield pg
        browser.close()


def test_upload_then_play_a_shot_from_its_start(site: tuple[str, Engine, Path], page: Any) -> None:
    url, engine, tmp = site
    video = two_shots(tmp).read_bytes()
    pdf = typeset([["Lighthouses guide ships along rocky coasts."]])
    page.goto(url + "/")
    page.click("#settings summary")
    page.fill("#api-key", KEY)
    page.dispatch_event("#api-key", "change")
    page.set_input_files(
        "#upload-input",
        files=[
            {"name": "show.mp4", "mimeType": "video/mp4", "buffer": video},
            {"name": "coast.pdf", "mimeType": "application/pdf", "buffer": pdf},
        ],
    )
    page.wait_for_function("() => document.getElementById('status').textContent.startsWith('Added')", timeout=240_000)
    assert page.locator("#status").text_content() == "Added 5 items."  # the video, its 2 shots, the PDF, its page
    assert engine.get("show.mp4#t3").parent == "show.mp4"

    page.fill("#query", "green meadows full of sheep")
    page.click("#search-button")
    page.wait_for_selector("#results .card")
    first = page.locator("#results .card").first
    assert first.get_attribute("data-id") == "show.mp4#t3"
    assert first.locator(".badge.span").text_content() == "\u25b6 0:03\u20130:06"
    frame = "() => { const img = document.querySelector('#results .card img'); return img && img.complete && img.naturalWidth > 0; }"
    page.wait_for_function(frame)  # the shot's key frame is the card's thumbnail
    first.click()
    page.wait_for_selector("#detail[open] #segment-player")
    player = page.locator("#segment-player")
    assert player.evaluate("v => v.tagName") == "VIDEO"
    assert player.get_attribute("src").endswith("/items/show.mp4/media?medium=video#t=3,6")
    page.wait_for_function("() => document.getElementById('segment-player').readyState >= 1", timeout=60_000)
    assert abs(player.evaluate("v => v.currentTime") - 3.0) < 0.3  # it starts at the shot, not at 0:00
    page.screenshot(path=str(tmp / "player.png"))
