"""Privacy-complete delete (issue 17, part 6): after ``delete`` no file under the index folder holds a deleted
item's text, media or vectors (SQLite pages, the write-ahead log, vector checkpoints, the memory index, the
generative trie), the feedback log keeps only ids (or nothing, with ``purge_feedback``), and the admin audit
log says who deleted what and when."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from xmodal import Engine, Item  # noqa: E402
from xmodal.cli import main  # noqa: E402
from xmodal.encoders import HashingEncoder  # noqa: E402
from xmodal.genret.build import train_engine  # noqa: E402
from xmodal.genret.config import TrainConfig  # noqa: E402
from xmodal.genret.extension import live_genret  # noqa: E402

from .conftest import text_items  # noqa: E402

CANARY = "zqxcanary7781"
TINY = TrainConfig(
    levels=2,
    codebook_size=8,
    epochs=3,
    batch=32,
    lr=5e-3,
    d_model=16,
    n_layers=1,
    n_heads=2,
    n_prefix=2,
    finetune_epochs=1,
    kmeans_iters=5,
    min_steps=0,
    device="cpu",
)
SECRET = ["secret-doc", "secret-photo"]
ALL_SECRET = [*SECRET, "secret-doc#p1"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (24, 24, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def _secret_items(image: bytes) -> list[Item]:
    long_text = " ".join(f"{CANARY} plainword paragraph{i}" for i in range(300))  # overflow pages
    return [
        Item.create("secret-doc", title=f"report {CANARY}", text=long_text, attributes={"note": CANARY}),
        Item.create("secret-photo", title=f"photo {CANARY} plainword", text="", image=image),
        Item.create("secret-doc#p1", title=f"page {CANARY}", text=f"segment {CANARY} plainword", parent="secret-doc"),
    ]


def _build(path: Path, index: str, image: bytes) -> tuple[Engine, dict[str, bytes]]:
    """An index with filler items and the secret ones, searched with feedback, genret trained, checkpointed;
    returns it open, with the byte strings that must not survive the delete."""
    engine = Engine.open(path, encoder=HashingEncoder(), index=index)
    engine.add(text_items(30))
    report = engine.add(_secret_items(image))
    assert not report.rejected
    needles = {"canary": CANARY.encode(), "image": image[-48:]}
    for item_id in ALL_SECRET:
        stored = engine.store.get(item_id)
        assert stored is not None
        for kind, vector in stored.vectors.items():
            v = np.asarray(vector, np.float32)
            nz = np.flatnonzero(v)
            needles[f"vector {item_id}/{kind}"] = v[nz[0] : nz[-1] + 1].tobytes()
    found = engine.search("plainword", log=True, k=5)
    assert "secret-doc" in [item.id for item in found.items]
    assert found.query_id is not None
    engine.feedback(found.query_id, "secret-doc", "click")
    train_engine(engine, config=TINY, progress=False)
    for mode in engine.modes():
        engine.search("plainword", mode=mode, k=3)  # every mode's state (memory index, trie) is built
    engine.checkpoint()
    return engine, needles


def _leaks(folder: Path, needles: dict[str, bytes]) -> list[str]:
    out = []
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            out.extend(f"{path.relative_to(folder)}: {name}" for name, needle in needles.items() if needle in data)
    return out


@pytest.mark.parametrize("index", ["exact", "hnsw"])
def test_deleted_items_leave_no_bytes_in_the_folder(tmp_path: Path, index: str) -> None:
    root = tmp_path / "idx"
    image = _png(7)
    engine, needles = _build(root, index, image)
    try:
        assert _leaks(root, needles)  # the needles are there before the delete
        assert engine.delete(SECRET) == 2
        assert _leaks(root, needles) == []  # open: the write-ahead log, the checkpoints, media, all clean
        for mode in engine.modes():
            try:
                ids = [item.id for item in engine.search("plainword", mode=mode, k=10).items]
            except Exception:  # a mode that cannot serve here (nothing learned yet) says so; none returns them
                continue
            assert not set(ids) & set(ALL_SECRET), mode
    finally:
        engine.close()
    assert _leaks(root, needles) == []
    with Engine.open(root) as again:
        assert again.get_many(ALL_SECRET).missing == ALL_SECRET or len(again.get_many(ALL_SECRET).missing) == 3
        trie_rows = set(live_genret(again).model.trie.rows().tolist())  # type: ignore[union-attr]
        assert trie_rows and not trie_rows & set(range(31, 34))  # the secret items were rows 31-33


def test_audit_log_and_feedback_ids(tmp_path: Path) -> None:
    root = tmp_path / "idx"
    engine, _ = _build(root, "exact", _png(8))
    with engine:
        events_before = engine.feedback_log.events()
        assert [e.item_id for e in events_before] == ["secret-doc"]
        assert engine.erase(["secret-doc", "nope"], actor="api-key:ops")[0] == 1
        kept = engine.feedback_log.events()  # the log keeps the id, no text (the item is gone)
        assert [e.item_id for e in kept] == ["secret-doc"]
        shared = engine.store.get("secret-photo")
        assert shared is not None and (root / shared.item.media["image"]).is_file()  # still held: kept
        assert engine.delete(["secret-photo"], purge_feedback=True) == 1
        assert not (root / str(shared.item.media["image"])).exists()
        entries = engine.audit_log()
        assert [e["actor"] for e in entries][0].startswith("library:")
        first = entries[1]
        assert first["actor"] == "api-key:ops" and first["action"] == "delete"
        assert first["asked"] == ["secret-doc", "nope"]
        assert first["deleted"] == ["secret-doc", "secret-doc#p1"]  # the segment went with its parent
        assert first["options"] == {"purge_feedback": False, "scrub": True} and first["at"] > 1.6e9
        engine.delete(["secret-doc"], purge_feedback=True)  # a purge of an id already gone still purges
        assert engine.feedback_log.events() == [] or all(
            e.item_id != "secret-doc" for e in engine.feedback_log.events()
        )


def test_cli_delete_records_the_user_and_purges(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "idx"
    engine, _ = _build(root, "exact", _png(9))
    engine.close()
    assert main(["--index", str(root), "delete", "secret-doc", "--purge-feedback"]) == 0
    capsys.readouterr()
    assert main(["--index", str(root), "audit", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert entries[0]["actor"].startswith("cli:")
    assert entries[0]["deleted"] == ["secret-doc", "secret-doc#p1"]
    assert entries[0]["options"]["purge_feedback"] is True
    with Engine.open(root) as again:
        assert again.feedback_log.events() == []


def test_rest_delete_records_the_key_and_evicts_the_thumbnail(tmp_path: Path) -> None:
    httpx = pytest.importorskip("httpx")
    from xmodal.serve import ApiKey, ServeConfig, create_app
    from xmodal.serve.testing import serve_in_thread

    admin, writer = "admin-key-0001", "write-key-0001"
    keys = (ApiKey(admin, frozenset({"admin"}), "ops"), ApiKey(writer, frozenset({"write"}), "ingest-bot"))
    engine = Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact", extensions=["ltr"])
    image = _png(11)
    engine.add([*text_items(5), *_secret_items(image)])
    app = create_app(engine, ServeConfig(keys=keys))
    with serve_in_thread(app) as url:
        thumb = httpx.get(f"{url}/items/secret-photo/thumbnail", params={"size": 16})
        assert thumb.status_code == 200
        state = app.state.xmodal.default
        r = httpx.delete(f"{url}/items/secret-photo", params={"purge_feedback": "true"}, headers={"X-API-Key": writer})
        assert r.json() == {"id": "secret-photo", "deleted": True}
        assert httpx.get(f"{url}/items/secret-photo/thumbnail").status_code == 404
        assert len(state.thumbs) == 0  # no thumbnail of the deleted image kept in memory
        r = httpx.post(f"{url}/items/delete", json={"filters": {"note": CANARY}}, headers={"X-API-Key": writer})
        assert r.json() == {"deleted": 1}
        assert httpx.get(f"{url}/audit", headers={"X-API-Key": writer}).status_code == 403  # admin only
        entries = httpx.get(f"{url}/audit", headers={"X-API-Key": admin}).json()["entries"]
    engine.close()
    assert [e["actor"] for e in entries] == ["api-key:ingest-bot", "api-key:ingest-bot"]
    assert entries[0]["deleted"] == ["secret-doc", "secret-doc#p1"]
    assert entries[1]["deleted"] == ["secret-photo"] and entries[1]["options"]["purge_feedback"] is True
    assert _leaks(tmp_path / "idx", {"canary": CANARY.encode(), "image": image[-48:]}) == []


def test_mcp_delete_items_is_audited_and_purges(tmp_path: Path) -> None:
    pytest.importorskip("mcp")
    from xmodal.serve.mcp import build_mcp

    from .test_serve_mcp import structured
    from .test_serve_mcp_collection import call

    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact", extensions=[]) as engine:
        engine.add([*text_items(4), *_secret_items(_png(12))])
        shown = engine.search("plainword", log=True, k=3)
        assert shown.query_id is not None
        engine.feedback(shown.query_id, "secret-photo", "click")
        got = structured(call(build_mcp(engine), "delete_items", {"ids": ["secret-photo"], "purge_feedback": True}))
        assert got["deleted"] == 1
        assert engine.feedback_log.events() == []
        assert engine.audit_log()[0]["actor"] == "mcp:stdio"
        assert engine.audit_log()[0]["deleted"] == ["secret-photo"]
