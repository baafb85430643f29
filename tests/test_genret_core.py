"""Generative retrieval core (arrays only): trie, constrained decoding, augmentation, quantizer, persistence."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from xmodal.errors import ConfigError, StorageError, ValidationError  # noqa: E402
from xmodal.genret.config import TrainConfig  # noqa: E402
from xmodal.genret.decoder import augment  # noqa: E402
from xmodal.genret.model import GenerativeIndex  # noqa: E402
from xmodal.genret.quantizer import ResidualQuantizer, default_shape, kmeans  # noqa: E402
from xmodal.genret.search import bucket_candidates  # noqa: E402
from xmodal.genret.train import TrainingSet, fit, noisy  # noqa: E402
from xmodal.genret.trie import CodeTrie  # noqa: E402

DIM, N, CLUSTERS = 32, 160, 12
TINY = TrainConfig(
    levels=2,
    codebook_size=8,
    epochs=50,
    batch=40,
    lr=5e-3,
    d_model=32,
    n_layers=1,
    n_heads=2,
    n_prefix=2,
    finetune_epochs=1,
    kmeans_iters=10,
    alpha=2.0,
    min_steps=0,
    device="cpu",
)


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread (and do not fight the other tests for cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def clustered(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(123).standard_normal((CLUSTERS, DIM))
    labels = rng.integers(0, CLUSTERS, n)
    x = centers[labels] + 0.15 * rng.standard_normal((n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


@pytest.fixture(scope="module")
def trained() -> tuple[GenerativeIndex, np.ndarray]:
    x, _ = clustered(N)
    rng = np.random.default_rng(1)
    q = x + 0.05 * rng.standard_normal(x.shape).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    data = TrainingSet(np.arange(N, dtype=np.int64) * 3, x, np.zeros(N, np.int64), q, np.arange(N, dtype=np.int64))
    return fit(data, TINY, progress=False), x


# -- trie ------------------------------------------------------------------------------------
codes_strategy = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=40)


@given(codes_strategy, st.data())
@settings(max_examples=60, deadline=None)
def test_trie_allowed_matches_brute_force_after_adds_and_deletes(
    codes: list[tuple[int, int, int]], data: st.DataObject
) -> None:
    trie = CodeTrie(3, 2, 4)
    rows = np.arange(len(codes), dtype=np.int64)
    trie.add(rows, np.asarray(codes, np.int64))
    gone = data.draw(st.lists(st.sampled_from(rows.tolist()), unique=True))
    trie.remove(np.asarray(gone, np.int64))
    live = {r: c for r, c in enumerate(codes) if r not in set(gone)}
    assert len(trie) == len(live)
    for t in range(3):
        prefixes = sorted({c[:t] for c in itertools.product(range(3), range(4), range(4))})
        keys = trie.pack(np.asarray(prefixes, np.int64)) if t else np.zeros(1, np.int64)
        mask = trie.allowed(keys, t)
        for prefix, row in zip(prefixes if t else [()], mask, strict=True):
            expected = {c[t] for c in live.values() if c[:t] == prefix}
            assert set(np.flatnonzero(row).tolist()) == expected
    for key, members in zip(trie.full_keys(), trie.members(trie.full_keys()), strict=True):
        assert sorted(members.tolist()) == sorted(
            r for r, c in live.items() if tuple(trie.unpack(np.array([key]))[0]) == c
        )


def test_trie_moves_a_row_on_re_add() -> None:
    trie = CodeTrie(1, 1, 4)
    trie.add(np.array([7]), np.array([[0, 1]]))
    trie.add(np.array([7]), np.array([[0, 3]]))
    assert len(trie) == 1 and trie.allowed(np.array([0]), 1)[0].tolist() == [False, False, False, True]


def test_prefix_members_are_every_item_under_a_prefix() -> None:
    trie = CodeTrie(1, 2, 4)  # IDs (m, c1, c2)
    codes = np.array([[0, 1, 0], [0, 1, 3], [0, 2, 1], [0, 1, 3], [0, 3, 0]])
    trie.add(np.array([10, 11, 12, 13, 14]), codes)
    one = trie.pack(np.array([[0, 1]]))
    assert [m.tolist() for m in trie.prefix_members(one, 2)] == [[10, 11, 13]]
    assert [m.tolist() for m in trie.prefix_members(trie.pack(np.array([[0]])), 1)] == [[10, 11, 13, 12, 14]]
    full = trie.pack(np.array([[0, 1, 3]]))
    assert [m.tolist() for m in trie.prefix_members(full, 3)] == [m.tolist() for m in trie.members(full)]
    assert trie.prefix_members(trie.pack(np.array([[0, 0]])), 2)[0].size == 0
    with pytest.raises(ValueError, match="outside"):
        trie.prefix_members(one, 0)


# -- decoding ----------------------------------------------------------------------------------
def test_decoding_a_shallower_prefix_widens_the_candidates(trained: tuple[GenerativeIndex, np.ndarray]) -> None:
    """``depth``: beam search stops after that many tokens and every item under each generated prefix is a
    candidate (in beam order, capped at the pool): a superset of the full IDs' candidates at the same beam,
    since both searches keep the same prefixes up to that step."""
    model, x = trained
    q, full, size = x[:20], model.trie.length, model.trie.codebook_size
    prefixes = model.trie.arrays()["codes"][:, :2] @ np.array([size, 1])  # packed (modality, c1) of every item
    similarity = lambda rows, v: x[rows // 3] @ v  # noqa: E731
    for i in range(len(q)):
        k_two, s_two = model.generate(q[i : i + 1], 4, depth=2)
        assert set(k_two[0][k_two[0] >= 0].tolist()) <= set(prefixes.tolist())
        wide, _ = bucket_candidates(model.trie, k_two[0], s_two[0], 10_000, 2)
        assert sorted((model.trie.key_of(wide) // size).tolist()) == sorted(
            int(k) for k in k_two[0] if k >= 0 for _ in range(int(np.sum(prefixes == k)))
        )  # exactly the items under the generated prefixes
        k_full, s_full = model.generate(q[i : i + 1], 4)
        narrow, _ = bucket_candidates(model.trie, k_full[0], s_full[0], 10_000)
        assert set(narrow.tolist()) <= set(wide.tolist())
        capped, _ = bucket_candidates(model.trie, k_two[0], s_two[0], 3, 2)
        assert capped.tolist() == wide[:3].tolist()
    for depth in range(1, full + 1):
        for rows, scores in model.search(q, 5, beam=4, similarity=similarity, depth=depth):
            assert len(rows) == 5 and np.all(np.diff(scores) <= 1e-6)
    with pytest.raises(ValueError, match="outside"):
        model.search(q, 5, depth=full + 1)


def test_beams_beyond_the_live_prefixes_come_back_empty(trained: tuple[GenerativeIndex, np.ndarray]) -> None:
    """Only live prefixes are decoded further (a dead beam costs the decoder a sequence for nothing): a beam wider
    than the trie's prefixes gives every prefix once, as a beam of just that many does, then -1 (-inf)."""
    model, x = trained
    q = x[:8]
    for depth in range(1, model.trie.length + 1):
        wide_keys, wide_scores = model.generate(q, 4096, depth)
        assert wide_keys.shape == (8, 4096)
        live = (wide_keys >= 0).sum(1)
        assert np.all(live == live[0]) and 0 < live[0] < 4096  # every query: every prefix of that depth
        keys, scores = model.generate(q, int(live[0]), depth)
        np.testing.assert_array_equal(wide_keys[:, : live[0]], keys)
        np.testing.assert_allclose(wide_scores[:, : live[0]], scores, rtol=1e-5)
        assert np.all(wide_keys[:, live[0] :] == -1) and np.all(np.isneginf(wide_scores[:, live[0] :]))


@given(st.integers(0, 10_000), st.integers(1, 12))
@settings(max_examples=15, deadline=None)
def test_every_decoded_id_exists(trained: tuple[GenerativeIndex, np.ndarray], seed: int, beam: int) -> None:
    model, _ = trained
    q = np.random.default_rng(seed).standard_normal((3, DIM)).astype(np.float32)
    keys, scores = model.generate(q, beam)
    live = set(model.trie.full_keys().tolist())
    assert keys.shape == (3, beam)
    for row_keys, row_scores in zip(keys, scores, strict=True):
        valid = row_keys[row_keys >= 0]
        assert valid.size and set(valid.tolist()) <= live
        assert np.all(np.diff(row_scores[row_keys >= 0]) <= 1e-6)  # beam order
    for rows, _ in model.search(q, 10, beam=beam):
        assert set(rows.tolist()) <= set(model.trie.rows().tolist())


def test_generation_finds_training_targets(trained: tuple[GenerativeIndex, np.ndarray]) -> None:
    model, x = trained
    results = model.search(x[:60], 10, beam=16)
    recall = np.mean([3 * i in rows.tolist() for i, (rows, _) in enumerate(results)])
    reranked = model.search(x[:60], 10, beam=16, similarity=lambda rows, q: x[rows // 3] @ q)
    recall_r = np.mean([3 * i in rows.tolist() for i, (rows, _) in enumerate(reranked)])
    assert recall >= 0.6 and recall_r >= 0.8


def test_rerank_sees_every_member_of_the_generated_buckets_up_to_the_cap(
    trained: tuple[GenerativeIndex, np.ndarray],
) -> None:
    """A bucket of 151 items (150 copies added after training): GENIUS-R re-ranks all of them, so the best
    one by similarity is found even last in row order; a cap of 100 cuts it off."""
    model, x = trained
    copies = np.arange(20_000, 20_150, dtype=np.int64)
    model.put(copies, np.repeat(x[5:6], 150, 0), ["text"] * 150)
    try:

        def similarity(rows: np.ndarray, q: np.ndarray) -> np.ndarray:
            return np.where(rows == copies[-1], 2.0, 0.0).astype(np.float32)

        rows, scores = model.search(x[5:6], 3, beam=4, similarity=similarity)[0]
        assert rows[0] == copies[-1] and scores[0] == 2.0
        capped, _ = model.search(x[5:6], 3, beam=4, similarity=similarity, pool=100)[0]
        assert copies[-1] not in capped.tolist() and len(capped) == 3
    finally:
        model.remove(copies)


def test_deleted_rows_never_come_back_and_new_rows_are_found(trained: tuple[GenerativeIndex, np.ndarray]) -> None:
    model, x = trained
    gone = np.arange(0, 30, dtype=np.int64) * 3
    model.remove(gone)
    new_vec = x[40:41].copy()  # an item added after training, with the embedding of a trained one
    model.put(np.array([10_000]), new_vec, ["text"])
    try:
        results = model.search(x[:50], 40, beam=16)
        assert not set(np.concatenate([r for r, _ in results]).tolist()) & set(gone.tolist())
        assert 10_000 in results[40][0].tolist()
    finally:
        model.remove(np.array([10_000]))
        model.put(gone, x[:30], ["text"] * 30)


# -- augmentation ------------------------------------------------------------------------------
def test_augmentation_mixes_on_the_unit_sphere() -> None:
    q = torch.zeros(4000, 8)
    t = torch.zeros(4000, 8)
    q[:, 0], t[:, 1] = 1.0, 1.0  # orthogonal unit vectors: z·q = sqrt(s), z·t = sqrt(1 − s)
    z = augment(q, t, alpha=2.0, generator=torch.Generator().manual_seed(0))
    s = (z[:, 0] ** 2).numpy()
    assert torch.allclose(z.norm(dim=1), torch.ones(4000), atol=1e-5)
    assert np.allclose(s + (z[:, 1] ** 2).numpy(), 1.0, atol=1e-5)
    assert abs(s.mean() - 0.5) < 0.02 and abs(s.var() - 1 / 20) < 0.01  # Beta(2, 2): mean 1/2, var 1/20
    assert torch.equal(augment(q, t, alpha=0.0), q)
    again = augment(q, t, alpha=2.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(z, again)


def spied_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, TrainingSet, list[torch.Tensor]]:
    """40 pairs, every 4th a real query (the others self pairs), their queries unlike their targets (so a
    mixed or noisy query is new), and the list every training batch's queries are appended to."""
    from xmodal.genret.decoder import IDDecoder

    x, _ = clustered(40)
    q = np.roll(x, 1, axis=0)
    real = np.zeros(40, bool)
    real[::4] = True
    data = TrainingSet(
        np.arange(40, dtype=np.int64), x, np.zeros(40, np.int64), q, np.arange(40, dtype=np.int64), augmentable=real
    )
    seen: list[torch.Tensor] = []
    original = IDDecoder.loss

    def spy(self: IDDecoder, queries: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        seen.append(queries.detach().clone())
        return original(self, queries, target)

    monkeypatch.setattr(IDDecoder, "loss", spy)
    return x, q, real, data, seen


@pytest.mark.parametrize("replace, expected", [(False, [50, 50]), (True, [40, 40])])
def test_augmentation_adds_mixed_copies_of_the_real_pairs_only(
    monkeypatch: pytest.MonkeyPatch, replace: bool, expected: list[int]
) -> None:
    """40 pairs in one batch, 10 of them real queries: one mixed copy each is added (or, in the first design
    kept for the ablation, replaces them); the self pairs are never mixed."""
    x, q, real, data, seen = spied_batches(monkeypatch)
    no_noise = {"self_noise_max": 0.0}  # the self pairs as stored, so what augmentation adds can be told apart
    config = TrainConfig(
        **{**TINY.to_dict(), "epochs": 2, "batch": 40, "min_batch": 40, "augment_replace": replace, **no_noise}
    )
    fit(data, config, progress=False)
    assert [len(q) for q in seen] == expected
    batch = seen[0].numpy()
    exact = {i for i in range(40) if np.isclose(batch @ q[i], 1.0, atol=1e-5).any()}
    untouched = set(np.flatnonzero(~real).tolist())
    assert untouched <= exact  # self pairs enter unchanged
    assert (set(range(40)) <= exact) is (not replace)  # the real pairs stay too, unless replaced
    with pytest.raises(ValidationError, match="augmentable"):
        TrainingSet(data.rows, x, data.modalities, q, data.targets, augmentable=real[:5])


def test_self_noise_draws_points_at_the_chosen_distance() -> None:
    """In high dimension the noise is nearly orthogonal to the vector: cos = 1 / sqrt(1 + s²), s uniform."""
    v = torch.nn.functional.normalize(torch.randn(3000, 4096, generator=torch.Generator().manual_seed(1)), dim=-1)
    z = noisy(v, 0.5, 2.0, torch.Generator().manual_seed(0))
    assert torch.allclose(z.norm(dim=1), torch.ones(3000), atol=1e-5)
    s = np.sqrt(1 / (z * v).sum(1).numpy() ** 2 - 1)
    assert s.min() > 0.45 and s.max() < 2.2 and abs(s.mean() - 1.25) < 0.03  # ± the small dot with the vector
    assert torch.equal(z, noisy(v, 0.5, 2.0, torch.Generator().manual_seed(0)))


def test_self_noise_redraws_the_self_pairs_in_every_batch_and_leaves_real_pairs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With ``self_noise_max`` > 0 each self pair's query is its target plus fresh noise in every batch (never
    the stored query, never twice the same); the real pairs enter unchanged; 0 keeps them all."""
    x, q, real, data, seen = spied_batches(monkeypatch)
    base = {**TINY.to_dict(), "epochs": 2, "batch": 40, "min_batch": 40, "alpha": 0.0}
    fit(data, TrainConfig(**{**base, "self_noise_min": 0.3, "self_noise_max": 0.6}), progress=False)
    fit(data, TrainConfig(**{**base, "self_noise_max": 0.0}), progress=False)
    noisy_epochs, plain = seen[:2], seen[2]
    for batch in noisy_epochs:
        b = batch.numpy()
        stored = {i for i in range(40) if np.isclose(b @ q[i], 1.0, atol=1e-5).any()}
        assert stored == set(np.flatnonzero(real).tolist())  # only the real pairs are the stored queries
        assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
        near = (b @ x.T).max(axis=1)
        assert (near > 0.75).all() and (near < 0.999).sum() >= 30  # by a target, never on it
    assert not torch.equal(noisy_epochs[0], noisy_epochs[1])
    p = plain.numpy()
    assert {i for i in range(40) if np.isclose(p @ q[i], 1.0, atol=1e-5).any()} == set(range(40))


# -- quantizer ---------------------------------------------------------------------------------
def test_kmeans_is_seeded_and_rq_codes_are_in_range() -> None:
    x = torch.as_tensor(clustered(200)[0])
    assert torch.equal(kmeans(x, 8, seed=3), kmeans(x, 8, seed=3))
    rq = ResidualQuantizer(DIM, 3, 8)
    rq.init_kmeans(x)
    codes = rq.encode(x)
    assert codes.shape == (200, 3) and codes.min() >= 0 and codes.max() < 8
    stats = rq.stats(codes)
    assert all(1 <= p <= 8 for p in stats.perplexity) and stats.used[0] == 8
    # the residual levels reduce the reconstruction error
    recon = rq.codebooks[torch.arange(3), torch.as_tensor(codes)].sum(1)
    one = rq.codebooks[0][torch.as_tensor(codes[:, 0])]
    assert float(((x - recon) ** 2).sum().detach()) < float(((x - one) ** 2).sum().detach())


def test_default_shape_scales() -> None:
    shapes = [default_shape(n) for n in (1_000, 10_000, 100_000, 1_000_000, 10_000_000)]
    assert shapes[0] == (3, 32) and shapes[2][1] == 256 and shapes[-1] == (4, 256)
    assert [k for _, k in shapes] == sorted(k for _, k in shapes)


def test_empty_catalog_is_refused() -> None:
    empty = np.zeros((0, DIM), np.float32)
    with pytest.raises(ValidationError, match="genret train"):
        TrainingSet(np.zeros(0, np.int64), empty, np.zeros(0, np.int64), empty, np.zeros(0, np.int64))


# -- persistence -------------------------------------------------------------------------------
def test_save_load_round_trip_and_errors(trained: tuple[GenerativeIndex, np.ndarray], tmp_path: Path) -> None:
    model, x = trained
    model.meta.setdefault("encoder", {"name": "synthetic"})
    model.save(tmp_path / "g", seq=5)
    loaded, seq = GenerativeIndex.load(tmp_path / "g", dim=DIM, device="cpu")
    assert seq == 5 and len(loaded.trie) == len(model.trie)
    for (a, sa), (b, sb) in zip(model.search(x[:20], 10), loaded.search(x[:20], 10), strict=True):
        assert a.tolist() == b.tolist() and np.allclose(sa, sb, atol=1e-5)
    with pytest.raises(ConfigError, match="dimension 32.*genret train"):
        GenerativeIndex.load(tmp_path / "g", dim=64)
    with pytest.raises(ConfigError, match="encoder.*genret train"):
        GenerativeIndex.load(tmp_path / "g", encoder={"name": "other"})
    with pytest.raises(ConfigError, match="no generative model.*genret train"):
        GenerativeIndex.load(tmp_path / "missing")
    (tmp_path / "g" / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(StorageError, match="corrupt.*genret train"):
        GenerativeIndex.load(tmp_path / "g")


def test_training_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    x, _ = clustered(64)
    data = TrainingSet(np.arange(64, dtype=np.int64), x, np.zeros(64, np.int64), x, np.arange(64, dtype=np.int64))
    small = TrainConfig(
        levels=2,
        codebook_size=8,
        epochs=2,
        batch=32,
        d_model=16,
        n_layers=1,
        n_heads=2,
        n_prefix=1,
        finetune_epochs=1,
        kmeans_iters=3,
        min_steps=0,
        device="cpu",
    )
    fit(data, small, checkpoint_dir=tmp_path, progress=False)
    first = load_file(str(tmp_path / "checkpoint.safetensors"))
    assert int(first["epoch"][0]) == 2 and any(k.startswith("opt.") for k in first)
    resumed = fit(data, TrainConfig(**{**small.to_dict(), "epochs": 3}), checkpoint_dir=tmp_path, progress=False)
    assert resumed.meta["training"]["epochs"] == 3
    assert "kmeans_s" not in resumed.meta["training"]["timings_s"]  # codebooks came from the checkpoint
    assert torch.equal(resumed.quantizer.codebooks.detach(), first["quantizer.codebooks"])
