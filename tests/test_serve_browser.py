"""The search page in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright)."""

from __future__ import annotations

import base64
import io
import json
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
skdata = pytest.importorskip("skimage.data")

from PIL import Image  # noqa: E402

from xmodal import Engine, Item  # noqa: E402
from xmodal.encoders import HashingEncoder  # noqa: E402
from xmodal.serve import ServeConfig, create_app  # noqa: E402
from xmodal.serve.testing import serve_in_thread  # noqa: E402

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHOTOS = {  # real photographs shipped with scikit-image
    "astronaut": ("Astronaut portrait", "Eileen Collins in her NASA suit", "people"),
    "coffee": ("Cup of coffee", "a cup of coffee on a saucer", "food"),
    "chelsea": ("Chelsea the cat", "a tabby cat looking to the side", "animals"),
    "rocket": ("Rocket on the launch pad", "a rocket ready for launch", "space"),
    "hubble_deep_field": ("Hubble deep field", "galaxies far away", "space"),
}


def photo_png(name: str) -> bytes:
    out = io.BytesIO()
    Image.fromarray(getattr(skdata, name)()).convert("RGB").save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Engine, Path]]:
    tmp = tmp_path_factory.mktemp("page")
    engine = Engine.open(tmp / "idx", encoder=HashingEncoder(), index="exact")
    engine.add(
        [
            Item.create(
                name, title=title, text=text, image=photo_png(name), attributes={"category": cat, "year": 1990 + i}
            )
            for i, (name, (title, text, cat)) in enumerate(PHOTOS.items())
        ]
    )
    engine.add([Item.create(f"extra{i}", title=f"filler {i}", attributes={"year": 2000 + i}) for i in range(4)])
    engine.add(
        [Item.create("note1", title="Coffee brewing notes", text="grind, bloom, pour", attributes={"category": "food"})]
    )
    # the page is driven as fast as a script can, for a whole module: no anonymous CPU share (its own tests
    # are in test_serve_limits.py); a person's pace stays within the default share
    config = ServeConfig(mcp=False, log_requests=False, anonymous_cpu=0.0, anonymous_total_cpu=0.0)
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


def titles(page: Any) -> list[str]:
    page.wait_for_selector("#results .card")
    return page.locator("#results .card .title").all_text_contents()  # one read: no card re-rendered in between


def test_text_search_then_click_sends_feedback(site: tuple[str, Engine, Path], page: Any) -> None:
    url, engine, tmp = site
    page.goto(url + "/")
    page.wait_for_selector("#facet-category")  # filters come from the catalog's attributes
    assert "animals (1)" in page.locator("#facet-category").inner_text()
    page.fill("#query", "cup of coffee on a saucer")
    page.click("#search-button")
    assert titles(page)[0] == "Cup of coffee"
    assert page.locator("#results .card .badge").first.text_content().startswith("dense:")
    loaded = "() => { const img = document.querySelector('#results .card img'); return img && img.complete && img.naturalWidth > 0; }"
    page.wait_for_function(loaded)  # the thumbnail arrives after the results (slower under load); it must load
    with page.expect_response(lambda r: r.url.endswith("/feedback")) as response:
        page.locator("#results .card").first.click()
    assert response.value.status == 200
    page.wait_for_selector("#detail[open] h2")
    assert page.locator("#detail-body h2").text_content() == "Cup of coffee"
    with page.expect_response(lambda r: r.url.endswith("/feedback")) as liked:
        page.click("#like-button")
    assert liked.value.status == 200
    page.screenshot(path=str(tmp / "detail.png"))

    events = [e for imp in engine.feedback_log.impressions() for e in engine.feedback_log.events(imp.query_id)]
    assert any(e.item_id == "coffee" and e.event == "click" and e.position == 1 for e in events)
    assert any(e.item_id == "coffee" and e.event == "like" for e in events)


def test_upload_an_image_with_the_file_picker(site: tuple[str, Engine, Path], page: Any) -> None:
    url, _, tmp = site
    page.goto(url + "/")
    page.fill("#query", "")
    assert not page.locator("#image-chip").is_visible()
    page.set_input_files(
        "#image-input", files=[{"name": "cat.png", "mimeType": "image/png", "buffer": photo_png("chelsea")}]
    )
    assert page.locator("#image-chip").is_visible()
    page.click("#search-button")
    assert titles(page)[0] == "Chelsea the cat"
    page.screenshot(path=str(tmp / "results.png"), full_page=True)


def test_drop_an_image_with_text_and_filter_then_similar(site: tuple[str, Engine, Path], page: Any) -> None:
    url, _, tmp = site
    page.goto(url + "/")
    page.wait_for_selector("#facet-category")
    data = base64.b64encode(photo_png("rocket")).decode()
    page.evaluate(
        """async (b64) => {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], "rocket.png", {type: "image/png"}));
            document.getElementById("dropzone").dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true}));
        }""",
        data,
    )
    page.fill("#query", "rocket launch")
    page.fill("#facet-year-max", "1993")  # a numeric attribute: a range, not a list
    page.dispatch_event("#facet-year-max", "change")
    page.select_option("#facet-category", label="space (2)")
    page.click("#search-button")
    found = titles(page)
    assert found == ["Rocket on the launch pad"]  # Hubble is in "space" too, but from 1994
    page.screenshot(path=str(tmp / "filtered.png"))
    page.locator("#results .card").first.click()
    page.wait_for_selector("#detail[open] h2")
    page.click("#similar-button")
    # the answer's status ("N items similar to rocket"), not the request's ("Finding items similar to rocket…"),
    # which is shown before the results are replaced
    page.wait_for_function("/^\\d+ items similar to rocket/.test(document.getElementById('status').textContent)")
    assert "Rocket on the launch pad" not in titles(page)
    page.screenshot(path=str(tmp / "similar.png"))


def test_safesearch_selector_hides_a_toxic_hit_when_strict(site: tuple[str, Engine, Path], page: Any) -> None:
    """The settings' SafeSearch level goes with the search; 'strict' drops the hit the toxicity guard scored
    at ingest, 'off' shows it."""
    url, engine, _ = site
    engine.add([Item.create("rant1", title="Rant about a kettle", text="this fucking kettle is shit, stupid idiots")])
    page.goto(url + "/")
    page.click("#settings summary")
    shown: dict[str, list[str]] = {}
    for level in ("off", "strict"):
        page.select_option("#safe", level)
        page.fill("#query", "rant about a kettle")
        with page.expect_request(lambda r: r.url.endswith("/search") and r.method == "POST") as sent:
            page.click("#search-button")
        assert json.loads(sent.value.post_data or "{}").get("safe") == level
        page.wait_for_function("() => /result/.test(document.querySelector('#status').textContent)")
        shown[level] = page.locator("#results .card .title").all_text_contents()
    assert "Rant about a kettle" in shown["off"]
    assert "Rant about a kettle" not in shown["strict"]
