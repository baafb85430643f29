"""A learned search's explanation lists each hit only where the caller shows it (:func:`hits_unexplained`); the
plan and context that learning from the impression needs are always there."""

from __future__ import annotations

from xmodal import Engine, Query
from xmodal.ltr.pipeline import hits_unexplained

from .conftest import text_items


def test_the_per_hit_explanation_is_left_out_only_where_not_wanted(engine: Engine) -> None:
    engine.add(text_items(30))
    query = Query(text="red item 3", k=5, mode="learned", logged=True)
    full = engine.search(query, explain=True)
    with hits_unexplained():
        lean = engine.search(query, explain=True)
        many = engine.search_many([query, Query(text="blue", k=3, mode="learned")], explain=True)
    again = engine.search(query, explain=True)  # the block's end puts the default back
    assert [h["id"] for h in full.explain["hits"]] == full.hits.ids.tolist()
    assert "hits" not in lean.explain and all("hits" not in r.explain for r in many)
    assert "hits" in again.explain
    assert lean.hits.ids.tolist() == full.hits.ids.tolist() and lean.hits.scores.tolist() == full.hits.scores.tolist()
    for key in ("mode", "context", "plan", "weights", "strategies"):
        assert lean.explain[key] == full.explain[key], key
    qid = engine.log_impression(query, lean)  # what the server logs from a lean explanation
    assert engine.feedback_log.impression(qid).plan == full.explain["plan"]
