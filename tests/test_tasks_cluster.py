"""``cluster``: k-means (k given or chosen by silhouette) and HDBSCAN recover seeded topics; each cluster is
named by its central items and c-TF-IDF terms; bad input names its field."""

from __future__ import annotations

import pytest

from tests.tasks_data import TOPICS, topic_items
from xmodal import Engine, Item, ValidationError
from xmodal.tasks import cluster
from xmodal.tasks.metrics import clustering_scores
from xmodal.tasks.terms import ctfidf_top_terms


def truth_and_assigned(engine: Engine, result: object) -> tuple[list[str], list[int]]:
    assignment = result.assignment  # type: ignore[attr-defined]
    ids = sorted(i for i in assignment if "topic" in engine.get(i).attributes)
    return [str(engine.get(i).attributes["topic"]) for i in ids], [assignment[i] for i in ids]


@pytest.fixture
def topics(engine: Engine) -> Engine:
    engine.add(topic_items(per_topic=15, seed=2))
    return engine


def test_kmeans_recovers_the_topics_and_names_them(topics: Engine) -> None:
    result = cluster(topics, n_clusters=3, seed=0)
    scores = clustering_scores(*truth_and_assigned(topics, result))
    assert scores["ari"] >= 0.9 and scores["nmi"] >= 0.9
    assert result.params == {"n_clusters": 3, "chosen_by": "caller", "seed": 0}
    for c in result.clusters:
        topic = str(topics.get(c.members[0]).attributes["topic"])
        assert {term for term, _ in c.terms} <= {topic, *TOPICS[topic].split()}  # the topic's own words
        assert len(c.central) == 3 and all(item_id in c.members for item_id, _, _ in c.central)
        assert [s for _, _, s in c.central] == sorted((s for _, _, s in c.central), reverse=True)
    chosen = cluster(topics, seed=0)  # k chosen by silhouette
    assert chosen.params["chosen_by"] == "silhouette" and chosen.params["n_clusters"] == 3


def test_hdbscan_finds_the_number_itself(topics: Engine) -> None:
    topics.add([Item.create("stray", text="quantum chromodynamics lattice gauge")])
    result = cluster(topics, method="hdbscan", min_cluster_size=5)
    assert result.params["n_clusters"] == 3 and "stray" in result.noise
    truth, assigned = truth_and_assigned(topics, result)
    kept = [(t, a) for t, a in zip(truth, assigned, strict=True) if a >= 0]
    assert clustering_scores([t for t, _ in kept], [a for _, a in kept])["ari"] >= 0.9


def test_ctfidf_prefers_words_particular_to_a_group() -> None:
    top = ctfidf_top_terms([["the cat sat", "cat and dog"], ["the dog ran", "the dog barked"]], top=2)
    assert top[0][0][0] == "cat" and top[1][0][0] == "dog"
    assert all(term != "the" for group in top for term, _ in group)


def test_bad_input_names_the_field(engine: Engine) -> None:
    with pytest.raises(ValidationError) as info:
        cluster(engine)
    assert info.value.field == "index"
    engine.add(topic_items(per_topic=2))
    for kwargs, field in [
        ({"n_clusters": 7}, "n_clusters"),
        ({"n_clusters": 0}, "n_clusters"),
        ({"method": "dbscan"}, "method"),
        ({"method": "hdbscan", "n_clusters": 3}, "n_clusters"),
        ({"method": "hdbscan", "min_cluster_size": 1}, "min_cluster_size"),
        ({"kind": "audio"}, "kind"),
    ]:
        with pytest.raises(ValidationError) as info:
            cluster(engine, **kwargs)  # type: ignore[arg-type]
        assert info.value.field == field, kwargs
