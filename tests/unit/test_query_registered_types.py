"""Registered types without a cluster: scores, the loader's tagger, names and thresholds, records."""

import numpy as np
import pytest

from ner_os import registered_types as rt
from ner_os.errors import NerOsError

pytestmark = pytest.mark.unit


def unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_knn_scores_are_half_of_one_plus_cosine():
    mentions = np.stack([unit([1, 0]), unit([0, 1]), unit([-1, 0]), unit([1, 1])])
    scores = rt.knn_scores(mentions, unit([1, 0])[None, :])[:, 0]
    assert scores == pytest.approx([1.0, 0.5, 0.0, (1 + 2 ** -0.5) / 2], abs=1e-6)


def test_knn_scores_do_not_depend_on_vector_length():
    a = rt.knn_scores(np.asarray([[3.0, 4.0]]), np.asarray([[1.0, 0.0]]))
    b = rt.knn_scores(np.asarray([[0.6, 0.8]]), np.asarray([[10.0, 0.0]]))
    assert a == pytest.approx(b)


def registered(name, vector, min_score):
    return rt.new_type(name, np.asarray(vector, dtype=np.float32), min_score=min_score)


def test_tagger_gives_each_mention_the_types_it_reaches():
    tagger = rt.make_tagger([registered("river", unit([1, 0, 0]), 0.9), registered("city", unit([0, 1, 0]), 0.8)])
    mentions = np.stack([unit([1, 0.1, 0]), unit([0.1, 1, 0]), unit([1, 1, 0]), unit([0, 0, 1])])
    # [1, 1, 0] scores (1 + 0.707) / 2 = 0.854 against both: over 0.8 (city), under 0.9 (river)
    assert tagger(mentions) == [["river"], ["city"], ["city"], []]
    assert tagger(np.zeros((0, 3), dtype=np.float32)) == []


def test_tagger_threshold_is_inclusive():
    tagger = rt.make_tagger([registered("x", unit([1, 0]), 0.5)])
    assert tagger(np.stack([unit([0, 1])])) == [["x"]]  # cosine 0 scores exactly 0.5


def test_no_types_means_no_tagger():
    assert rt.make_tagger([]) is None


def test_tagger_refuses_vectors_of_another_dimension():
    tagger = rt.make_tagger([registered("x", unit([1, 0]), 0.5)])
    with pytest.raises(NerOsError, match="refresh"):
        tagger(np.ones((1, 3), dtype=np.float32))


@pytest.mark.parametrize("value", [0, 0.0, 1.01, -0.1, "0.8", True, None])
def test_bad_thresholds_are_refused(value):
    with pytest.raises(NerOsError, match="min_score"):
        rt.check_min_score(value)


def test_names_are_checked_and_default_to_the_description():
    assert rt.new_type("  river  in Africa ", unit([1, 0])).name == "river in Africa"
    assert rt.new_type("river", unit([1, 0]), name="waterway").name == "waterway"
    with pytest.raises(NerOsError, match="non-empty name"):
        rt.check_name("  ")
    with pytest.raises(NerOsError, match="at most"):
        rt.check_name("x" * 200)


def test_records_round_trip():
    original = rt.new_type("river", unit([0.6, 0.8]), min_score=0.75, encoder={"profile": "p", "layer": 3})
    source = original.to_source("books")
    assert source["index"] == "books" and source["dim"] == 2
    back = rt.RegisteredType.from_source(source)
    assert (back.name, back.description, back.min_score, dict(back.encoder)) == ("river", "river", 0.75,
                                                                                 {"profile": "p", "layer": 3})
    assert back.vector == pytest.approx(original.vector)


def test_exact_matching_query_thresholds_on_the_knn_score_scale():
    query = rt.matching_mentions_query([0.6, 0.8], 0.85)
    script_score = query["nested"]["query"]["script_score"]
    assert script_score["min_score"] == 0.85
    assert script_score["script"]["params"]["space_type"] == "cosinesimil"
    assert query["nested"]["inner_hits"]["_source"] is False
