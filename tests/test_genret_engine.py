"""Generative retrieval through the engine, the search modes and the CLI (hashing encoder, tiny models)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from xmodal import Engine, Item, Query  # noqa: E402
from xmodal.cli import main  # noqa: E402
from xmodal.encoders import HashingEncoder  # noqa: E402
from xmodal.errors import ConfigError, StorageError, ValidationError  # noqa: E402
from xmodal.genret.build import train_engine  # noqa: E402
from xmodal.genret.config import TrainConfig  # noqa: E402
from xmodal.genret.extension import live_genret  # noqa: E402

from .conftest import text_items  # noqa: E402

TINY = TrainConfig(
    levels=2,
    codebook_size=16,
    epochs=60,
    batch=32,
    lr=5e-3,
    d_model=32,
    n_layers=1,
    n_heads=2,
    n_prefix=2,
    finetune_epochs=1,
    kmeans_iters=10,
    min_steps=0,
    device="cpu",
)
N = 64


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    engine = Engine.open(tmp_path_factory.mktemp("genret") / "idx", encoder=HashingEncoder(), index="exact")
    engine.add(text_items(N))
    train_engine(engine, config=TINY, progress=False)
    yield engine
    engine.close()


def queries() -> list[str]:
    return [item.document_text for item in text_items(N)]


def test_generative_search_before_training_names_the_fix(engine: Engine) -> None:
    engine.add(text_items(5))
    for mode in ("generative", "generative-rerank"):
        with pytest.raises(ConfigError, match="genret train"):
            engine.search(Query(text="item 1", mode=mode))
    assert len(engine.search("item 1").hits) == 5  # dense search is unaffected


def test_training_an_empty_catalog_names_the_fix(engine: Engine) -> None:
    with pytest.raises(ValidationError, match="catalog.*genret train"):
        train_engine(engine, config=TINY, progress=False)


def test_generative_modes_return_valid_hits(trained: Engine) -> None:
    found = 0
    for i, text in enumerate(queries()[:20]):
        for mode in ("generative", "generative-rerank"):
            result = trained.search(Query(text=text, mode=mode, k=5))
            assert 1 <= len(result.hits) <= 5 and set(result.hits.provenance) == {"generative"}
            assert all(hit in trained for hit in result.hits.ids.tolist())
            if mode == "generative-rerank":
                assert np.all(np.diff(result.hits.scores) <= 1e-6)
                found += f"t{i}" in result.hits.ids.tolist()
    assert found >= 14  # the items' own texts find them (these are training pairs)


def test_rerank_scores_are_the_stored_vectors_cosines(trained: Engine) -> None:
    """GENIUS-R reads its cosines from the vector index: the same as from the items' stored vectors, and a row
    with no vector of the target kind (index says 0, the store says none) is dropped, not scored 0."""
    from xmodal.genret.mode import rerank_similarity

    q = trained.encode_query(Query(text=queries()[3]))
    rows = np.asarray(sorted(trained.all_rows().tolist())[:20], np.int64)
    stored = trained.items_of(rows.tolist(), with_vectors=True)
    expected = np.asarray([max(float(v @ q) for v in stored[r].vectors.values()) for r in rows.tolist()])
    np.testing.assert_allclose(rerank_similarity(trained, rows, q, None), expected, atol=1e-5)
    np.testing.assert_allclose(rerank_similarity(trained, rows, q, {"text"}), expected, atol=1e-5)
    assert np.all(np.isneginf(rerank_similarity(trained, rows, q, {"image"})))  # no image vectors here
    missing = rerank_similarity(trained, np.asarray([rows[0], 10**6], np.int64), q, None)  # the index says 0
    assert missing[0] == pytest.approx(expected[0], abs=1e-5) and np.isneginf(missing[1])
    result = trained.search(Query(text=queries()[3], mode="generative-rerank", k=5))
    for item_id, score in zip(result.hits.ids.tolist(), result.hits.scores.tolist(), strict=True):
        vector = next(iter(trained.items_of([trained.row_of(item_id)], with_vectors=True).values())).vectors
        assert score == pytest.approx(max(float(v @ q) for v in vector.values()), abs=1e-5)


def test_rerank_decodes_an_id_shorter_than_its_depth(tmp_path: Path) -> None:
    """One level of codes makes IDs of two tokens, shorter than GENIUS-R's RERANK_DEPTH: it decodes whole IDs."""
    from dataclasses import replace

    from xmodal.genret.mode import RERANK_DEPTH

    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as engine:
        engine.add(text_items(30))
        train_engine(engine, config=replace(TINY, levels=1), progress=False)
        assert live_genret(engine).status()["live"]["items"] == 30
        with live_genret(engine).reading() as model:
            assert model.trie.length == 2 < RERANK_DEPTH
        result = engine.search(Query(text=queries()[4], mode="generative-rerank", k=5))
        assert len(result.hits) == 5 and "t4" in result.hits.ids.tolist()


def test_a_search_decodes_on_one_torch_thread_and_puts_the_count_back(
    trained: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import xmodal.genret.model as model_module

    seen: list[int] = []
    decode = model_module.beam_search

    def counting(*args: object, **kwargs: object) -> object:
        seen.append(torch.get_num_threads())
        return decode(*args, **kwargs)

    monkeypatch.setattr(model_module, "beam_search", counting)
    torch.set_num_threads(2)
    try:
        for mode in ("generative", "generative-rerank"):
            assert len(trained.search(Query(text=queries()[2], mode=mode, k=5)).hits) == 5
        assert seen == [1, 1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)  # the module's setting


def test_filters_apply_to_generated_candidates(trained: Engine) -> None:
    for text in queries()[:10]:
        result = trained.search(Query(text=text, mode="generative-rerank", k=5, filters={"color": "red"}))
        assert all(item.attributes["color"] == "red" for item in result.items)


def test_item_added_after_training_is_generated_and_deletes_never_come_back(trained: Engine) -> None:
    source = text_items(N)[7]
    trained.add([Item.create("late", title=source.title, text=source.text)])  # no retraining
    result = trained.search(Query(text=source.document_text, mode="generative-rerank", k=10))
    assert "late" in result.hits.ids.tolist()
    gone = [f"t{i}" for i in range(0, N, 3)]
    trained.delete(gone)
    for text in queries():
        for mode in ("generative", "generative-rerank"):
            assert not set(trained.search(Query(text=text, mode=mode, k=20)).hits.ids.tolist()) & set(gone)
    status = live_genret(trained).status()
    assert status["items_changed_since_training"] == 1 and status["items_deleted_since_training"] == len(gone)
    assert status["live"]["items"] == N + 1 - len(gone)
    trained.add([item for item in text_items(N) if item.id in gone])  # restore for the other tests


def test_reopened_index_keeps_the_living_trie(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "idx", encoder=HashingEncoder(), index="exact") as engine:
        engine.add(text_items(30))
        train_engine(engine, config=TINY, progress=False)
    with Engine.open(tmp_path / "idx") as engine:  # changes while no generative search ran
        engine.add([Item.create("late", title="item 4 red", text="word4 thing")])
        engine.delete(["t4"])
    with Engine.open(tmp_path / "idx") as engine:
        ids = engine.search(Query(text="item 4 red. word4 thing", mode="generative-rerank", k=10)).hits.ids.tolist()
        assert "late" in ids and "t4" not in ids
        assert live_genret(engine).status()["live"]["items"] == 30


def test_model_for_another_dimension_or_corrupt_is_refused_without_breaking_dense(
    trained: Engine, tmp_path: Path
) -> None:
    other = Engine.open(tmp_path / "other", encoder=HashingEncoder(dim=32), index="exact")
    try:
        other.add(text_items(5))
        shutil.copytree(trained.path / "genret", other.path / "genret")
        with pytest.raises(ConfigError, match="dimension.*genret train"):
            other.search(Query(text="item 1", mode="generative"))
        assert len(other.search("item 1").hits) == 5
    finally:
        other.close()
    same = Engine.open(tmp_path / "same", encoder=HashingEncoder(), index="exact")
    try:
        same.add(text_items(5))
        shutil.copytree(trained.path / "genret", same.path / "genret")
        (same.path / "genret" / "model.safetensors").write_bytes(b"not a model")
        with pytest.raises(StorageError, match="corrupt.*genret train"):
            same.search(Query(text="item 1", mode="generative-rerank"))
        assert len(same.search("item 1").hits) == 5
    finally:
        same.close()


def test_judgments_are_training_pairs(engine: Engine, tmp_path: Path) -> None:
    engine.add(text_items(20))
    path = tmp_path / "judged.jsonl"
    lines = [{"text": "a red thing", "relevant": ["t0", "t4"]}, {"text": "x", "relevant": ["missing"]}, "oops"]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    config = TrainConfig(**{**TINY.to_dict(), "epochs": 1})
    summary = train_engine(engine, judgments=path, config=config, progress=False)
    assert summary["sources"] == {"views": 0, "self": 20, "pseudo": 0, "feedback": 0, "judgments": 2}
    assert len(summary["skipped_judgments"]) == 1


def test_cli_train_status_and_search(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    index = str(tmp_path / "idx")
    with Engine.open(index, encoder=HashingEncoder(), index="exact") as engine:
        engine.add(text_items(24))
    assert main(["--index", index, "genret", "status"]) == 1  # not trained yet
    assert "genret train" in capsys.readouterr().out
    train = ["--index", index, "genret", "train", "--epochs", "2", "--min-steps", "0", "-q", "--json"]
    assert main(train) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["items"] == 24 and summary["epochs"] == 2 and summary["sources"]["pseudo"] == 0
    assert main(["--index", index, "genret", "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["trained"] and status["live"]["items"] == 24 and status["last_evaluation"]["queries"] == 24
    assert main(["--index", index, "search", "item 3 blue", "--mode", "generative-rerank", "--json", "-k", "3"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert 1 <= len(hits) <= 3 and {h["provenance"] for h in hits} == {"generative"}


def test_cli_train_self_noise_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    index = str(tmp_path / "idx")
    with Engine.open(index, encoder=HashingEncoder(), index="exact") as engine:
        engine.add(text_items(16))
    train = ["--index", index, "genret", "train", "--epochs", "1", "--min-steps", "0", "-q", "--json"]
    assert main([*train, "--self-noise", "0.2,1.5"]) == 0
    manifest = json.loads((tmp_path / "idx" / "genret" / "manifest.json").read_text())
    assert (manifest["train_config"]["self_noise_min"], manifest["train_config"]["self_noise_max"]) == (0.2, 1.5)
    capsys.readouterr()
    for bad in ("1.5,0.2", "-1,1", "0.5", "a,b"):
        assert main([*train, "--self-noise", bad]) == 2
        assert "--self-noise" in capsys.readouterr().err


def test_generative_strategy_retrieves_with_provenance(trained: Engine) -> None:
    from xmodal.genret.strategy import GenerativeStrategy

    query = Query(text=queries()[3])
    hits = GenerativeStrategy(trained.extension("genret")).retrieve(query, 7)
    assert 1 <= len(hits) <= 7 and hits.provenance[0] == "generative" and "t3" in hits.ids.tolist()


def test_a_logged_click_becomes_a_training_pair(engine: Engine) -> None:
    from xmodal.genret.data import collect

    engine.add(text_items(20))
    result = engine.search("item 3 black", k=5, log=True)
    assert result.query_id is not None
    clicked = str(result.hits.ids[2])
    engine.feedback(result.query_id, clicked, "click")
    data, _, _ = collect(engine)
    assert data.sources == {"views": 0, "self": 20, "pseudo": 0, "feedback": 1, "judgments": 0}
    assert data.augmentable is not None and data.augmentable.tolist() == [False] * 20 + [True]
    assert int(data.rows[data.targets[-1]]) == engine.row_of(clicked)  # the pair targets the clicked item
    expected = engine.encode_query(Query(text="item 3 black"))
    np.testing.assert_allclose(data.queries[-1], expected, atol=1e-6)  # ... from the logged query text
    engine.delete([clicked])
    data, _, _ = collect(engine)
    assert data.sources["feedback"] == 0  # a click on a deleted item is not a pair


def test_the_catalogs_pseudo_queries_become_training_pairs(engine: Engine) -> None:
    from xmodal.genret.data import collect
    from xmodal.ltr.pseudo import pseudo_queries

    items = text_items(20)
    engine.add(items)
    data, _, _ = collect(engine, feedback=False, pseudo=True)
    made = pseudo_queries(items)  # the same items, seed and kinds (paraphrases need the encoder: not here)
    # a category's query names many items, not one ID: not a training pair
    paired = [q for q in made if q.kind not in ("paraphrase", "category")]
    assert data.sources["pseudo"] == sum(len(q.relevant) for q in paired) and len(paired) > 20
    assert any(q.kind == "category" for q in made)
    pseudo = slice(20, 20 + data.sources["pseudo"])  # after the self pairs, before feedback and judgments
    assert data.augmentable is not None and data.augmentable[pseudo].all()  # real-looking queries: augmentable
    name = next(q for q in made if q.kind == "name" and q.item == items[5].id)
    expected = engine.encode_query(Query(text=name.text))
    matches = [i for i in range(20, 20 + data.sources["pseudo"]) if np.allclose(data.queries[i], expected, atol=1e-6)]
    assert matches and {int(data.rows[data.targets[i]]) for i in matches} == {engine.row_of(items[5].id)}
    assert collect(engine, feedback=False, pseudo=True, pseudo_items=0)[0].sources["pseudo"] == 0


def test_eval_in_a_generative_mode_is_shown_by_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    index = str(tmp_path / "idx")
    with Engine.open(index, encoder=HashingEncoder(), index="exact") as engine:
        engine.add(text_items(24))
        train_engine(engine, config=TrainConfig(**{**TINY.to_dict(), "epochs": 2}), progress=False)
    judged = tmp_path / "judged.jsonl"
    judged.write_text(
        "".join(json.dumps({"text": item.document_text, "relevant": [item.id]}) + "\n" for item in text_items(24)[:6])
    )
    assert main(["--index", index, "eval", str(judged), "--mode", "dense", "-q", "--json"]) == 0
    capsys.readouterr()
    assert main(["--index", index, "genret", "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["last_evaluation"]["kind"] == "training pairs (fit)"  # dense: kept
    assert main(["--index", index, "eval", str(judged), "--mode", "generative-rerank", "-q", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert main(["--index", index, "genret", "status", "--json"]) == 0
    last = json.loads(capsys.readouterr().out)["last_evaluation"]
    assert last["kind"] == "xmodal eval" and last["mode"] == "generative-rerank" and last["queries"] == 6
    assert last["recall@10"] == report["recall@10"] and last["queries_file"] == str(judged)


def test_a_trie_checkpoint_records_the_sequence_this_engine_applied(tmp_path: Path) -> None:
    """Issue 13 defect 1 for the generative index: another engine's writes, never applied here, must not
    be claimed by this engine's trie checkpoint (the next open would skip them)."""
    index = tmp_path / "idx"
    here = Engine.open(index, encoder=HashingEncoder(), index="exact")
    here.add(text_items(32))
    train_engine(here, config=TINY, progress=False)
    here.add([Item.create("mine", title="item mine")])  # the trie changed here: the next checkpoint saves it
    with Engine.open(index) as other:  # as another process: its own connection and derived state
        other.add(text_items(10, prefix="other"))
    here.checkpoint()  # without reading: the other engine's 10 items are not in this trie
    here.close()
    with Engine.open(index) as reopened:
        rows = set(live_genret(reopened).model.trie.arrays()["rows"].tolist())  # type: ignore[union-attr]
        assert {reopened.row_of(f"other{i}") for i in range(10)} <= rows
        assert reopened.row_of("mine") in rows


def test_cli_train_draws_no_progress_bars_into_a_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    index = str(tmp_path / "idx")
    with Engine.open(index, encoder=HashingEncoder(), index="exact") as engine:
        engine.add(text_items(24))
    # without -q, as a scheduled job runs it: stderr is a file here, not a terminal
    assert main(["--index", index, "genret", "train", "--epochs", "3", "--min-steps", "0", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["epochs"] == 3
    assert "genret epoch" not in captured.err and "\r" not in captured.err, captured.err[:300]
