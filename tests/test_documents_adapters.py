"""Documents through the adapters: ``xmodal add`` takes PDFs and text files (and folders of them), search
shows the page and a snippet with the matched words, ``info`` counts segments per modality; ``POST /items``
accepts a PDF upload (multipart) and a text document (base64), and a page hit has a thumbnail."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

pytest.importorskip("pypdfium2", reason="PDF pages need pypdfium2: pip install 'xmodal[documents]'")
pytest.importorskip("reportlab", reason="the test PDFs are typeset with reportlab: pip install 'xmodal[test]'")

from tests.test_documents_pdf import PAGES, make_pdf  # noqa: E402
from tests.test_third_party import cli  # noqa: E402
from xmodal import Engine  # noqa: E402
from xmodal.encoders import HashingEncoder  # noqa: E402
from xmodal.snippets import snippet  # noqa: E402

WRITER = "write-key-0001"


def test_snippet_marks_the_matched_words() -> None:
    text = "Intro words. " * 30 + "The keeper recorded storms in a leather notebook every night. " + "Tail. " * 30
    found = snippet(text, "storm notebook", 120)
    assert "**storms**" in found and "**notebook**" in found and found.startswith("…") and found.endswith("…")
    assert len(found) <= 130
    assert snippet("short text", "absent") == "short text"
    assert snippet("", "x") == ""


def test_cli_adds_documents_and_shows_pages(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "report.pdf").write_bytes(make_pdf(PAGES, title="Field notes"))
    (folder / "notes.md").write_text("# Notes\n\nThe violinist tuned her instrument before the concert.\n")
    index = tmp_path / "idx"
    done = cli(index, "--encoder", "hashing", "--index-kind", "exact", "add", str(folder), "--ocr", "never", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["added"] == 6  # report.pdf + 3 pages, notes.md + 1 chunk
    done = cli(index, "search", "beekeepers honey", "--mode", "dense", "-k", "2")
    assert "(of report.pdf, page 3)" in done.stdout and "**beekeepers**" in done.stdout, done.stdout
    done = cli(index, "search", "beekeepers honey", "--mode", "dense", "-k", "3", "--group", "parent", "--json")
    hits = json.loads(done.stdout)["hits"]
    assert hits[0]["id"] == "report.pdf#p3" and hits[0]["span"] == {"page": 3}
    assert "**honey**" in hits[0]["snippet"] and hits[0]["thumbnail_url"].endswith("/thumbnail")
    assert len({h["parent"] or h["id"] for h in hits}) == len(hits)
    done = cli(index, "info", "--json")
    info = json.loads(done.stdout)
    assert info["segments"] == {"image+text": 3, "text": 1} and info["modalities"]["text"] == 3
    assert "segments    4 (image+text 3, text 1)" in cli(index, "info").stdout
    done = cli(index, "add", str(folder / "report.pdf"), "--max-pages", "2", "--json")
    assert done.returncode == 1 and "over the limit of 2" in json.loads(done.stdout)["rejected"][0]["reason"]


def test_rest_accepts_a_pdf_upload_and_a_text_document(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from xmodal.serve import ApiKey, ServeConfig, create_app

    config = ServeConfig(keys=(ApiKey(WRITER, frozenset({"write"}), "writer"),), mcp=False, log_requests=False)
    pdf = make_pdf(PAGES)
    with (
        Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact", extensions=[]) as engine,
        TestClient(
            create_app(engine, config), headers={"Authorization": f"Bearer {WRITER}"}, base_url="http://localhost"
        ) as client,
    ):
        items = [
            {"id": "rep", "title": "Report", "attributes": {"year": 2024}, "document_file": "r.pdf"},
            {"id": "txt", "document_base64": base64.b64encode(b"Copper wires hum.").decode(), "document_name": "a.txt"},
            {"id": "lie", "document_file": "fake.pdf"},
            {"id": "nofile", "document_file": "missing.pdf"},
        ]
        files = [("documents", ("r.pdf", pdf, "application/pdf")), ("documents", ("fake.pdf", b"hello", "text/plain"))]
        r = client.post("/items", data={"items": json.dumps(items)}, files=files)
        assert r.status_code == 200, r.text
        assert r.json()["added"] == ["rep", "rep#p1", "rep#p2", "rep#p3", "txt", "txt#p1"]
        why = {x["where"]: x["reason"] for x in r.json()["rejected"]}
        assert "content is not" in why["lie (fake.pdf)"] and "plain text" in why["lie (fake.pdf)"]
        assert "was not uploaded" in why["nofile"]
        page = client.get("/items/rep%23p2").json()
        assert page["parent"] == "rep" and page["span"] == {"page": 2} and page["attributes"]["year"] == 2024
        r = client.post("/search", json={"text": "copper signal valley", "k": 3, "mode": "dense", "log": False})
        hit = r.json()["hits"][0]
        assert hit["id"] == "rep#p2" and "**Copper**" in hit["snippet"]
        thumb = client.get(hit["thumbnail_url"])
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
        assert client.get("/info").json()["segments"] == {"image+text": 3, "text": 1}
        assert client.delete("/items/rep").json()["deleted"] is True
        assert client.get("/items/rep%23p1").status_code == 404
