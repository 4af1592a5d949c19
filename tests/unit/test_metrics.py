import math

import numpy as np
import pytest

from ner_os.evaluation.metrics import (
    ExactRanker,
    average_precision,
    evaluate,
    is_catch_all_type,
    precision_at,
    r_precision,
    recall_at,
    relevance_from_mentions,
    score_ranking,
    span_scores,
)
from ner_os.spans import Span

pytestmark = pytest.mark.unit

RANKING = ["a", "b", "c", "d", "e"]
RELEVANT = {"a", "c", "f"}


def test_per_query_metrics_by_hand():
    # R = 3: the top 3 (a, b, c) hold a and c
    assert r_precision(RANKING, RELEVANT) == pytest.approx(2 / 3)
    assert precision_at(RANKING, RELEVANT, 10) == pytest.approx(2 / 10)  # a short ranking is not excused
    assert precision_at(RANKING, RELEVANT, 2) == pytest.approx(1 / 2)
    assert recall_at(RANKING, RELEVANT, 100) == pytest.approx(2 / 3)
    assert recall_at(RANKING, RELEVANT, 2) == pytest.approx(1 / 3)
    # a at rank 1 (precision 1), c at rank 3 (precision 2/3), f never retrieved (0)
    assert average_precision(RANKING, RELEVANT) == pytest.approx((1 + 2 / 3) / 3)


def test_perfect_and_empty_rankings():
    assert r_precision(["f", "c", "a", "x"], RELEVANT) == 1.0
    assert average_precision(["f", "c", "a"], RELEVANT) == 1.0
    assert r_precision([], RELEVANT) == 0.0 and average_precision([], RELEVANT) == 0.0


def test_a_repeated_document_counts_once_at_its_best_rank():
    assert r_precision(["a", "a", "a", "c"], RELEVANT) == pytest.approx(2 / 3)  # dedup: a, c, -
    assert average_precision(["a", "a", "c"], RELEVANT) == pytest.approx((1 + 1) / 3)


def test_a_type_without_relevant_documents_cannot_be_scored():
    with pytest.raises(ValueError, match="no relevant document"):
        r_precision(RANKING, set())


def test_evaluate_macro_with_and_without_catch_all_types():
    relevance = {
        "person_athlete": {"a", "b"},
        "location_other": {"c"},
        "other_livingthing": {"d", "e", "f", "g"},
        "event_protest": set(),
    }
    rankings = {
        "person_athlete": ["a", "x", "b"],  # R=2: 1/2; AP (1 + 2/3) / 2
        "location_other": ["c"],  # R=1: 1; AP 1
        "other_livingthing": ["d", "x", "e", "y"],  # R=4: 2/4; AP (1 + 2/3) / 4
        # event_protest has no relevant document: reported as unscored
    }
    report = evaluate(rankings, relevance)
    assert report.unscored == ["event_protest"]
    assert report.catch_all == ["location_other"]  # "other_livingthing" is a specific fine type
    assert report.per_type["person_athlete"].r_precision == pytest.approx(0.5)
    assert report.per_type["other_livingthing"].n_relevant == 4
    assert report.macro["r_precision"] == pytest.approx((0.5 + 1 + 0.5) / 3)
    assert report.macro_specific["r_precision"] == pytest.approx((0.5 + 0.5) / 2)
    assert report.macro["average_precision"] == pytest.approx(((1 + 2 / 3) / 2 + 1 + (1 + 2 / 3) / 4) / 3)
    assert report.macro["p_at_10"] == pytest.approx((0.2 + 0.1 + 0.2) / 3)
    assert set(report.to_dict()) == {"per_type", "macro", "macro_specific", "catch_all", "unscored"}


def test_evaluate_a_type_without_ranking_scores_zero():
    report = evaluate({}, {"art_music": {"a"}})
    assert report.per_type["art_music"] == score_ranking([], {"a"})
    assert report.macro["r_precision"] == 0.0


def test_catch_all_can_be_a_pattern_list_or_a_predicate():
    relevance = {"other_livingthing": {"a"}, "location_other": {"a"}, "art_music": {"a"}}
    assert evaluate({}, relevance, catch_all=["other_*"]).catch_all == ["other_livingthing"]
    assert evaluate({}, relevance, catch_all=lambda name: name.startswith("art")).catch_all == ["art_music"]
    only_catch_all = evaluate({}, {"location_other": {"a"}})
    assert math.isnan(only_catch_all.macro_specific["r_precision"])


@pytest.mark.parametrize(
    "name, expected",
    [("location_other", True), ("organization_other", True), ("MISC", True), ("organization", True),
     ("Location", True), ("other_livingthing", False), ("person_athlete", False), ("body of water", False)],
)
def test_default_catch_all_names(name, expected):
    assert is_catch_all_type(name) is expected


def test_relevance_from_mentions_groups_documents_by_label():
    relevance = relevance_from_mentions([("d1", ["x", "y", "x"]), ("d2", ["x"]), ("d3", [])])
    assert relevance == {"x": {"d1", "d2"}, "y": {"d1"}}


# --- exact ranker -----------------------------------------------------------------------------

# mentions of one document are deliberately not contiguous, and not unit length
VECTORS = np.array([[2, 0], [-1, 0], [0, 3], [0.6, 0.8], [0.8, 0.6]], dtype=np.float32)
DOC_IDS = ["d1", "d3", "d1", "d2", "d4"]


def test_ranker_scores_each_document_by_its_best_mention():
    ranker = ExactRanker(VECTORS, DOC_IDS)
    assert ranker.n_documents == 4
    along_x = ranker.rank(np.array([5.0, 0.0]), top_n=10)
    assert along_x.doc_ids == ["d1", "d4", "d2", "d3"]
    np.testing.assert_allclose(along_x.scores, [1.0, 0.8, 0.6, -1.0], atol=1e-6)
    assert along_x.best_mentions.tolist() == [0, 4, 3, 1]  # rows of the input
    along_y = ranker.rank(np.array([0.0, 1.0]), top_n=2)
    assert along_y.doc_ids == ["d1", "d2"]
    assert along_y.best_mentions.tolist() == [2, 3]


def test_ranker_breaks_ties_by_document_id_and_cuts_at_top_n():
    vectors = np.array([[1, 0]] * 5, dtype=np.float32)
    ranker = ExactRanker(vectors, ["e", "c", "a", "d", "b"])
    assert ranker.rank(np.array([1.0, 0.0]), top_n=3).doc_ids == ["a", "b", "c"]


def test_ranker_matches_brute_force_on_random_data():
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(400, 16)).astype(np.float32)
    doc_ids = [f"doc{i}" for i in rng.integers(0, 90, size=400)]
    queries = rng.normal(size=(70, 16)).astype(np.float32)  # more than one query batch
    ranker = ExactRanker(vectors, doc_ids)
    units = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    for query, ranking in zip(queries, ranker.rank_many(queries, top_n=20, batch=32)):
        cosine = units @ (query / np.linalg.norm(query))
        best: dict[str, tuple[float, int]] = {}
        for row, (doc, score) in enumerate(zip(doc_ids, cosine)):
            if doc not in best or score > best[doc][0]:
                best[doc] = (float(score), row)
        expected = sorted(best, key=lambda doc: (-best[doc][0], doc))[:20]
        assert ranking.doc_ids == expected
        assert ranking.best_mentions.tolist() == [best[doc][1] for doc in expected]
        np.testing.assert_allclose(ranking.scores, [best[doc][0] for doc in expected], atol=1e-5)


def test_ranker_refuses_mismatched_input():
    with pytest.raises(ValueError, match="one doc id per vector"):
        ExactRanker(VECTORS, DOC_IDS[:-1])
    with pytest.raises(ValueError, match="query dim"):
        ExactRanker(VECTORS, DOC_IDS).rank(np.ones(3))


# --- span scores ------------------------------------------------------------------------------


def test_span_scores_by_hand():
    gold = [[Span(0, 5), Span(10, 20)], [Span(3, 8)], []]
    found = [
        [Span(0, 5), Span(14, 20)],  # exact; same end
        [Span(0, 4)],  # overlaps only
        [Span(1, 2)],  # nothing to find
    ]
    scores = span_scores(gold, found)
    assert scores.recall_exact == pytest.approx(1 / 3)
    assert scores.recall_same_end == pytest.approx(2 / 3)
    assert scores.recall_overlap == pytest.approx(3 / 3)
    assert scores.precision_exact == pytest.approx(1 / 4)
    assert scores.precision_same_end == pytest.approx(2 / 4)
    assert (scores.n_gold, scores.n_detected) == (3, 4)
    assert scores.spans_per_text == pytest.approx(4 / 3) and scores.gold_per_text == pytest.approx(1)


def test_span_scores_need_one_list_per_text():
    with pytest.raises(ValueError):
        span_scores([[]], [])
