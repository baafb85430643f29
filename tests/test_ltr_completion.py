"""Score completion: other runs' candidates get the lexical strategy's real BM25F, the score a deep run gives."""

from __future__ import annotations

from dataclasses import replace

import pytest

from xmodal import Query
from xmodal.ltr.completion import complete
from xmodal.ltr.pipeline import Pipeline
from xmodal.ltr.strategies.base import ScoringStrategy
from xmodal.records import Hits

from . import test_ltr_strategies

shop = test_ltr_strategies.shop  # the same catalog of products, one per module (the fixture's scope)


def test_completed_scores_are_the_ones_a_deep_lexical_run_gives(shop: Pipeline) -> None:
    query = Query(text="red leather boots")
    vector = shop.engine.encode_query(query)
    lexical, dense = shop.strategies["lexical"], shop.strategies["dense:text"]
    assert isinstance(lexical, ScoringStrategy) and not isinstance(dense, ScoringStrategy)  # cosine: no zero
    runs = {
        "lexical": lexical.retrieve(query, 3, vector=vector),
        "dense:text": dense.retrieve(query, 30, vector=vector),
    }
    filled = complete(shop.strategies, runs, query, vector, shop.engine.find_row)
    assert set(filled) == {"lexical"}  # only the strategy that can score items completes
    deep_run = lexical.retrieve(query, 1000, vector=vector)
    deep = dict(zip(deep_run.ids.tolist(), deep_run.scores.tolist(), strict=True))
    missing = [i for i in runs["dense:text"].ids.tolist() if i not in runs["lexical"].ids.tolist()]
    assert missing and set(filled["lexical"]) == set(missing)
    for item_id in missing:  # BM25F of an item the lexical run did not reach: what a deeper run scores it
        assert filled["lexical"][item_id] == pytest.approx(deep.get(item_id, 0.0), rel=1e-6)  # float32 hits
    assert any(v > 0 for v in filled["lexical"].values())
    # an empty run has no scale to complete on; a run that holds every candidate completes nothing (but is
    # still normalised as a completed run)
    empty = {**runs, "lexical": Hits.empty()}
    assert complete(shop.strategies, empty, query, vector, shop.engine.find_row) == {}
    alone = {"lexical": runs["lexical"]}
    assert complete(shop.strategies, alone, query, vector, shop.engine.find_row) == {"lexical": {}}


def test_the_learned_search_fuses_completed_scores_and_can_be_told_not_to(shop: Pipeline) -> None:
    query = Query(text="red leather boots", k=10)
    vector = shop.engine.encode_query(query)
    runs = {
        "lexical": shop.strategies["lexical"].retrieve(query, 3, vector=vector),
        "dense:text": shop.strategies["dense:text"].retrieve(query, 30, vector=vector),
    }
    weights = {"lexical": 1.0, "dense:text": 1.0}
    assert shop.config.complete is False  # off by default
    shop.config = replace(shop.config, complete=True)
    with_completion = shop.fuse(runs, weights, query, vector)
    without = shop.fuse(runs, weights, query, vector, completed=False)
    assert {h.id for h in with_completion} == {h.id for h in without}  # the same candidates, re-scored
    lexical_ids = set(runs["lexical"].ids.tolist())
    before = {h.id: h.score for h in without}
    gained = [h.id for h in with_completion if h.id not in lexical_ids and h.score > before[h.id] + 1e-9]
    assert gained  # dense-only hits holding query words gained lexical credit
    shop.config = replace(shop.config, complete=False)
    assert [h.id for h in shop.fuse(runs, weights, query, vector)] == [h.id for h in without]
