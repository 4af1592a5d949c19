"""Query by example and relevance feedback: the --like syntax, the combination rules, hit numbers, the last result."""

from __future__ import annotations

import numpy as np
import pytest

from ner_os import query as q
from ner_os.client.last_result import load_last_result, save_last_result
from ner_os.config import Settings
from ner_os.errors import NerOsError
from ner_os.fields import vector_fields

pytestmark = pytest.mark.unit


def hit(doc_id, start=0, end=4, score=0.9):
    return q.TypeHit(doc_id, score, {"text": "x"}, (q.MentionMatch("Nile", start, end, score, 0),))


def results(n=3, offset=0, vector=(1.0, 0.0)):
    return q.TypeResults("river", "docs", "knn", offset, tuple(hit(f"d{i}", i, i + 4) for i in range(n)),
                         vector=np.asarray(vector, np.float32))


@pytest.mark.parametrize("text, expected", [
    ("Nile", "Nile"),
    ("HIT:2", q.HitRef(2)),
    ("hit:10", q.HitRef(10)),
    ("doc-7:12-17", q.MentionRef("doc-7", 12, 17)),
    ("a:b:3-5", q.MentionRef("a:b", 3, 5)),  # the document id may hold colons: the offsets are the last part
    ("Rio de la Plata", "Rio de la Plata"),
    ("3-5", "3-5"),  # no document id: a surface
])
def test_like_values_are_surfaces_mentions_or_hits(text, expected):
    assert q.parse_example(text) == expected


@pytest.mark.parametrize("text", ["HIT:0", "HIT:-1", "doc:5-5", "doc:9-3"])
def test_bad_like_values_are_one_line_errors(text):
    with pytest.raises(NerOsError) as error:
        q.parse_example(text)
    assert "\n" not in str(error.value)


def test_hit_numbers_are_comma_lists_without_duplicates():
    assert q.parse_hit_numbers(["1,3", "5", "3"]) == [1, 3, 5]
    for bad in (["1,x"], ["0"], [""], ["1,,2"]):
        with pytest.raises(NerOsError):
            q.parse_hit_numbers(bad)


def test_examples_alone_give_their_normalised_mean():
    vector = q.combine(None, [np.array([1.0, 0.0]), np.array([0.0, 1.0])])
    assert np.allclose(vector, [2 ** -0.5, 2 ** -0.5])


def test_the_description_weighs_as_many_examples_as_its_weight():
    description, example = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    vector = q.combine(description, [example, example], description_weight=2.0)
    assert np.allclose(vector, [2 ** -0.5, 2 ** -0.5])  # 2 * d + 2 examples: halfway
    leaning = q.combine(description, [example], description_weight=3.0)
    assert leaning[0] > leaning[1] > 0 and np.isclose(np.linalg.norm(leaning), 1.0)
    assert np.allclose(q.combine(description, []), description)


def test_nothing_to_search_with_or_cancelling_examples_are_errors():
    with pytest.raises(NerOsError, match="description or examples"):
        q.combine(None, [])
    with pytest.raises(NerOsError, match="cancel out"):
        q.combine(None, [np.array([1.0, 0.0]), np.array([-1.0, 0.0])])


def test_rocchio_moves_towards_right_and_away_from_wrong():
    query, right, wrong = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0])
    moved = q.rocchio(query, [right], [wrong], right_weight=1.0, wrong_weight=0.5)
    assert np.allclose(moved, np.array([1.0, 1.0, -0.5]) / 1.5)
    assert np.allclose(q.rocchio(query), query)
    towards = q.rocchio(query, [right])
    assert towards @ right > query @ right


def test_hit_numbers_count_as_printed_from_the_page_start():
    page = results(n=3, offset=10)
    assert [h.id for h in q.marked_hits(page, [11, 13])] == ["d0", "d2"]
    assert q.marked_hits(page, [page.hits[1]]) == [page.hits[1]]
    with pytest.raises(NerOsError, match=r"hit 14: .* has hits 11-13"):
        q.marked_hits(page, [14])
    with pytest.raises(NerOsError, match="has no hits"):
        q.marked_hits(q.TypeResults("river", "docs", "knn", 0, ()), [1])


def test_a_hit_marked_both_right_and_wrong_is_an_error():
    with pytest.raises(NerOsError, match="both right and wrong: 2"):
        q.check_marks([1, 2], [2])


def test_examples_become_mention_refs_and_labels():
    surfaces, mentions = q.split_examples(["Nile", hit("d1", 3, 7), ("d2", 0, 5), q.MentionRef("d3", 1, 2)])
    assert surfaces == ["Nile"]
    assert mentions == [q.MentionRef("d1", 3, 7), q.MentionRef("d2", 0, 5), q.MentionRef("d3", 1, 2)]
    assert q.query_label("river", ["Nile", ("d2", 0, 5)]) == "river like Nile, d2:0-5"
    assert q.query_label(None, []) == "like the marked hits"
    assert len(q.query_label(None, ["x" * 300])) == q.examples.MAX_LABEL_CHARS
    with pytest.raises(NerOsError, match="HIT:N"):
        q.split_examples([q.HitRef(1)])
    with pytest.raises(NerOsError, match="without mentions"):
        q.mention_ref(q.TypeHit("d9", 0.5, {}, ()))
    with pytest.raises(NerOsError, match="an example is"):
        q.mention_ref(42)


def test_stored_vectors_are_read_by_exact_offsets():
    steps = q.mention_vector_steps([q.MentionRef("b", 5, 9), q.MentionRef("a", 0, 3)])
    request = next(steps)
    assert request.body["query"] == {"ids": {"values": ["a", "b"]}}
    response = {"hits": {"hits": [
        {"_id": "a", "_source": {"mentions": [{"start": 0, "end": 3, **only_bytes([3.0, 4.0])}]}},
        {"_id": "b", "_source": {"mentions": [{"start": 5, "end": 8, **only_bytes([1.0, 0.0])},
                                              {"start": 5, "end": 9, **only_bytes([0.0, 2.0])}]}}]}}
    vectors = _finish(steps, response)
    assert np.allclose(vectors[0], [0.0, 1.0]) and np.allclose(vectors[1], [0.6, 0.8])


def only_bytes(vector):
    """A mention's vector as a ner-os index stores it: the float list is left out of the source."""
    return {"vector_bytes": vector_fields(vector)["vector_bytes"]}


def test_stored_vectors_of_an_index_written_before_the_bytes_are_read_from_the_float_list():
    steps = q.mention_vector_steps([q.MentionRef("a", 0, 3)])
    next(steps)
    response = {"hits": {"hits": [{"_id": "a", "_source": {"mentions": [{"start": 0, "end": 3, "vector": [3.0, 4.0]}]}}]}}
    assert np.allclose(_finish(steps, response)[0], [0.6, 0.8])


def _finish(steps, response):
    try:
        steps.send(response)
    except StopIteration as stop:
        return stop.value
    raise AssertionError("the steps asked for a second request")


@pytest.mark.parametrize("ref, message", [
    (q.MentionRef("a", 1, 3), r"document 'a' has no mention at 1-3 \(its mentions: 0-3\)"),
    (q.MentionRef("zz", 0, 3), "the index has no document 'zz'"),
])
def test_offsets_matching_no_stored_mention_are_one_line_errors(ref, message):
    steps = q.mention_vector_steps([ref])
    next(steps)
    response = {"hits": {"hits": [{"_id": "a", "_source": {"mentions": [{"start": 0, "end": 3, "vector": [1.0]}]}}]}}
    with pytest.raises(NerOsError, match=message):
        steps.send(response)


def test_the_last_result_round_trips_through_the_cache_dir(tmp_path):
    settings = Settings.resolve(cache_dir=str(tmp_path))
    saved = results(n=2, offset=5, vector=(0.6, 0.8))
    save_last_result(settings, saved)
    loaded = load_last_result(settings, "docs")
    assert loaded.ids == saved.ids and loaded.offset == 5 and loaded.description == "river"
    assert loaded.hits[1].mentions == saved.hits[1].mentions
    assert np.allclose(loaded.vector, [0.6, 0.8])
    with pytest.raises(NerOsError, match="no last result on index 'other'"):
        load_last_result(settings, "other")
