"""Several types in one query against a real OpenSearch node, checked against a brute-force answer.

The corpus is hand-made: a few written documents and a seeded batch of others, their mention vectors
built around one axis per type. The expected answer is computed here in numpy from the vectors the
index stores (read back from it) and the thresholds the query reports; the query's answer must be
exactly that set. Clauses score every mention exactly (the ``knn_score`` script), so no HNSW
approximation is involved; the approximate (radial HNSW) variant is checked too: on a corpus this
small the graph search visits every mention, so it must agree as well.
"""

from __future__ import annotations

import numpy as np
import pytest
from axis_embedder import AxisEmbedder, index_documents

from ner_os import query as q
from ner_os.client import NerOs
from ner_os.config import Settings
from ner_os.errors import NerOsError
from ner_os.store import types_index
from ner_os.fields import stored_vector

pytestmark = pytest.mark.integration

DIM = 8
POLITICIAN, PARTY, COMPANY, CITY = (np.eye(DIM, dtype=np.float32)[axis] for axis in range(4))
TYPE_VECTORS = {"politician": POLITICIAN, "political party": PARTY, "company": COMPANY, "city": CITY}
WRITTEN = {
    "merkel": ("Angela Merkel led the CDU from Berlin.", [("Angela Merkel", POLITICIAN), ("CDU", PARTY),
                                                          ("Berlin", CITY)]),
    "siemens": ("Merkel opened a Siemens plant.", [("Merkel", POLITICIAN), ("Siemens", COMPANY)]),
    "labour": ("Labour won in Manchester.", [("Labour", PARTY), ("Manchester", CITY)]),
    "apple": ("Apple moved to Cupertino.", [("Apple", COMPANY), ("Cupertino", CITY)]),
    "obama": ("Barack Obama spoke.", [("Barack Obama", POLITICIAN)]),
}


def unit(vector):
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def corpus():
    """(doc id, text, [(surface, vector)]): the written documents (a little noise on their vectors) and
    40 seeded ones of 1-4 mentions, each of a random type with more or less noise."""
    rng = np.random.default_rng(7)
    docs = [(doc_id, text, [(surface, unit(axis + 0.2 * rng.normal(size=DIM))) for surface, axis in mentions])
            for doc_id, (text, mentions) in WRITTEN.items()]
    axes = list(TYPE_VECTORS.values())
    for number in range(40):
        mentions = [(f"m{number}-{j}", unit(axes[rng.integers(len(axes))] + rng.uniform(0.2, 1.5) * rng.normal(size=DIM)))
                    for j in range(int(rng.integers(1, 5)))]
        docs.append((f"d{number}", " ".join(surface for surface, _ in mentions) + ".", mentions))
    return docs


@pytest.fixture
def ner(client, opensearch_url, fresh_index):
    index_documents(client, fresh_index, DIM, ((doc_id, text, mentions) for doc_id, text, mentions in corpus()))
    yield NerOs(Settings.resolve(opensearch_url=opensearch_url, index=fresh_index), opensearch=client,
                embedder=AxisEmbedder(TYPE_VECTORS))
    for registered in types_index.read_types(client, fresh_index):
        types_index.delete_type_record(client, fresh_index, registered.name)


def stored_vectors(client, index):
    """Each document's mention vectors as the index stores them."""
    response = client.search(index=index, body={"size": 1000, "query": {"match_all": {}}})
    return {hit["_id"]: np.asarray([stored_vector(m) for m in hit["_source"]["mentions"]], dtype=np.float64)
            for hit in response["hits"]["hits"]}


def mention_scores(rows, description):
    return (1 + rows @ TYPE_VECTORS[description].astype(np.float64)) / 2


def expected(stored, clauses, thresholds):
    """The brute-force answer: per clause, does the document hold a mention at or above its threshold."""
    out = set()
    for doc_id, rows in stored.items():
        fits = {item.label: mention_scores(rows, item.description).max() >= score
                for item, score in zip(clauses, thresholds)}
        of = {role: [fits[item.label] for item in clauses if item.role == role] for role in q.combined.ROLES}
        if all(of["all_of"]) and (not of["any_of"] or any(of["any_of"])) and not any(of["none_of"]):
            out.add(doc_id)
    return out


QUERIES = [
    dict(all_of=["politician", "political party"], threshold=0.8),
    dict(all_of=["politician"], none_of=["company"], threshold=0.75),
    dict(any_of=["company", "political party"], none_of=["city"], threshold=0.85),
    dict(all_of=["city"], any_of=["politician", "company"], threshold="p90"),
    dict(all_of=["politician", "city@0.7"], none_of=["company@p80"], threshold="z1.5"),
    dict(none_of=["politician", "political party"], threshold="z1"),
]


@pytest.mark.parametrize("approximate", [False, True], ids=["exact", "approximate"])
@pytest.mark.parametrize("options", QUERIES, ids=[str(i) for i in range(len(QUERIES))])
def test_combined_query_returns_exactly_the_brute_force_answer(ner, client, fresh_index, options, approximate):
    stored = stored_vectors(client, fresh_index)
    results = ner.search_combined(**options, size=1000, mentions_per_clause=100, approximate=approximate)
    answer = expected(stored, results.clauses, results.thresholds)
    assert answer, "a query that matches nothing would test nothing"
    assert set(results.ids) == answer and len(results.ids) == len(answer) == results.total
    vectors = [TYPE_VECTORS[item.description] for item in results.clauses]
    assert q.brute_force_ids(stored, vectors, results.thresholds, [item.role for item in results.clauses]) == answer
    for hit in results:  # each clause shows exactly its mentions at or above its threshold
        for (label, matched), item, score in zip(hit.matches, [c for c in results.clauses if c.positive],
                                                 [s for c, s in zip(results.clauses, results.thresholds) if c.positive]):
            scores = mention_scores(stored[hit.id], item.description)
            assert label == item.label
            assert sorted(m.position for m in matched) == [int(i) for i in np.flatnonzero(scores >= score)]
            assert all(abs(m.score - scores[m.position]) < 1e-5 for m in matched)



@pytest.mark.parametrize("clause", ["like:merkel:0-13;obama:0-12@0.8",
                                    {"examples": [("merkel", 0, 13), ("obama", 0, 12)], "threshold": 0.8}],
                         ids=["cli-text", "api-dict"])
def test_a_type_given_by_examples_is_a_clause_like_any_other(ner, client, fresh_index, clause):
    stored = stored_vectors(client, fresh_index)
    examples = [stored["merkel"][0], stored["obama"][0]]  # Angela Merkel, Barack Obama: their stored vectors
    vector = q.combine(None, [unit(row) for row in examples])
    results = ner.search_combined(all_of=[clause], none_of=["company"], threshold=0.75, size=1000,
                                  mentions_per_clause=100)
    assert results.clauses[0].examples and results.clauses[0].label.startswith("all_of:like ")
    answer = q.brute_force_ids(stored, [vector, TYPE_VECTORS["company"]], results.thresholds, ["all_of", "none_of"])
    assert answer and set(results.ids) == answer
    assert "siemens" not in answer  # a politician, but also a company

def test_relative_thresholds_are_placed_on_all_the_index_mentions(ner, client, fresh_index):
    scores = np.concatenate([mention_scores(rows, "company") for rows in stored_vectors(client, fresh_index).values()])
    ranked = np.sort(scores)[::-1]
    kept = int(np.ceil(0.1 * len(ranked)))
    assert ner.threshold_score("company", "p90") == pytest.approx((ranked[kept - 1] + ranked[kept]) / 2, abs=1e-6)
    assert ner.threshold_score("company", "z2") == pytest.approx(scores.mean() + 2 * scores.std(), abs=1e-6)
    assert ner.threshold_score("company", 0.8) == 0.8
    results = ner.search_combined(all_of=["company"], threshold="p90", size=1000, mentions_per_clause=100)
    assert sum(len(matched) for hit in results for _, matched in hit.matches) == kept  # the top 10 %


def test_types_add_with_a_relative_threshold_tags_what_it_placed(ner, client, fresh_index):
    report = ner.register_type("company", threshold="p80")
    score = ner.threshold_score("company", "p80")
    assert report.threshold == "p80" and report.min_score == pytest.approx(score)
    stored = stored_vectors(client, fresh_index)
    assert report.mentions == sum(int((mention_scores(rows, "company") >= score).sum()) for rows in stored.values())
    (registered,) = ner.registered_types()
    assert registered.threshold == "p80" and registered.min_score == pytest.approx(score)
    (refreshed,) = ner.refresh_types()
    assert refreshed.threshold == "p80" and refreshed.mentions == report.mentions
    default = ner.register_type("city")  # the default is relative: this index holds enough mentions
    assert default.threshold == q.DEFAULT_TAG_THRESHOLD.spec()
    with pytest.raises(NerOsError, match="not both"):
        ner.register_type("city", min_score=0.8, threshold="z3")


def test_bad_combined_queries_are_one_line_errors(ner):
    with pytest.raises(NerOsError, match="at least one type"):
        ner.search_combined()
    with pytest.raises(NerOsError, match="threshold"):
        ner.search_combined(all_of=["company@p101"])
    with pytest.raises(NerOsError, match="given twice"):
        ner.search_combined(all_of=["company", "company"])


def test_an_expanded_description_searches_with_its_phrasings_mean_direction(ner, client, fresh_index):
    stored = stored_vectors(client, fresh_index)
    mean = q.mean_direction([TYPE_VECTORS["politician"], TYPE_VECTORS["political party"]]).astype(np.float64)
    best = {doc: float(((1 + rows @ mean) / 2).max()) for doc, rows in stored.items()}
    expected = sorted(best, key=lambda doc: (-best[doc], doc))[:10]
    results = ner.search_type("politician | political party", size=10)
    assert results.ids == expected
    assert [hit.score for hit in results] == pytest.approx([best[doc] for doc in expected], abs=1e-5)
    combined = ner.search_combined(all_of=["politician | political party@0.8"], size=1000)
    assert set(combined.ids) == {doc for doc, score in best.items() if score >= 0.8}
