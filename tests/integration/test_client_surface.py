"""The client surface against a real OpenSearch 2.19 node: ``search_types`` over one ``_msearch``, the total
hit count, one score scale in every mode, and ``AsyncNerOs`` (the same steps over ``AsyncOpenSearch``).

The hand-made corpus of tests/integration/test_query.py: every score and count below is known exactly.
"""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from axis_embedder import AxisEmbedder

from ner_os import query as q
from ner_os.client import AsyncNerOs, NerOs
from ner_os.client.batch import batch_results, prepare_batch
from ner_os.config import Settings
from ner_os.errors import NerOsError
from ner_os.store import search as store

pytestmark = pytest.mark.integration


def _query_tests():
    """tests/integration/test_query.py by path (tests/unit has a test_query module too)."""
    spec = importlib.util.spec_from_file_location("integration_test_query", Path(__file__).with_name("test_query.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_corpus = _query_tests()
CORPUS, TYPE_VECTORS, expected_knn_order, knn_score, write_corpus = (
    _corpus.CORPUS, _corpus.TYPE_VECTORS, _corpus.expected_knn_order, _corpus.knn_score, _corpus.write_corpus)


@pytest.fixture
def handmade(client, opensearch_url, fresh_index):
    write_corpus(client, fresh_index, CORPUS)
    return NerOs(Settings.resolve(opensearch_url=opensearch_url, index=fresh_index), opensearch=client,
                 embedder=AxisEmbedder(TYPE_VECTORS), fusion="client")


class Calls:
    """Counts the requests a real client sends (it still sends them)."""

    def __init__(self, client, monkeypatch):
        self.names = []
        for name in ("search", "msearch"):
            method = getattr(client, name)
            monkeypatch.setattr(client, name, self._counted(name, method))

    def _counted(self, name, method):
        def counted(*args, **kwargs):
            self.names.append(name)
            return method(*args, **kwargs)
        return counted


def signature(results):
    return [(hit.id, round(hit.score, 6), round(hit.rank_score, 6), [m.surface for m in hit.mentions])
            for hit in results]


def test_search_types_is_one_msearch_with_each_query_as_search_type_answers_it(handmade, client, monkeypatch):
    queries = ["dinosaur", {"description": "river", "size": 2}, {"description": "person", "min_score": 0.7}]
    alone = [handmade.search_type("dinosaur"), handmade.search_type("river", size=2),
             handmade.search_type("person", min_score=0.7)]
    calls = Calls(client, monkeypatch)
    batch = handmade.search_types(queries)
    assert calls.names == ["msearch"]  # three queries, one request
    assert [signature(results) for results in batch] == [signature(results) for results in alone]
    assert [results.description for results in batch] == ["dinosaur", "river", "person"]
    assert [results.mode for results in batch] == ["knn", "knn", "radial"] and all(r.error is None for r in batch)
    assert [results.total for results in batch] == [results.total for results in alone]


def test_shared_options_apply_to_every_query_and_a_query_overrides_them(handmade):
    batch = handmade.search_types(["dinosaur", {"description": "river", "size": 3}], size=1)
    assert [len(results) for results in batch] == [1, 3]


def test_hybrid_queries_join_the_batch_and_rank_as_alone(handmade, client, monkeypatch):
    alone = handmade.search_type("dinosaur", hybrid=True, size=4)
    calls = Calls(client, monkeypatch)
    batch = handmade.search_types([{"description": "dinosaur", "hybrid": True}, "river"], size=4)
    assert calls.names == ["msearch", "msearch"]  # round 1: both rankings + the k-NN query; round 2: the page
    assert signature(batch[0]) == signature(alone) and batch[0].mode == "hybrid-client"


def test_a_failed_query_is_reported_in_its_place_and_the_others_answer(handmade, client, opensearch_url, fresh_index):
    other = fresh_index + "-other"
    write_corpus(client, other, CORPUS)
    steps, specs = prepare_batch(handmade, ["dinosaur", {"description": "river", "index": other}], {})
    client.indices.delete(index=other)  # between preparing and sending: the cluster refuses query 2
    results = batch_results(handmade, q.drive(steps, lambda batch: store.send_batch(client, batch.requests)), specs)
    assert results[0].error is None and results[0].ids == expected_knn_order(TYPE_VECTORS["dinosaur"])[0][:10]
    assert results[1].hits == () and results[1].index == other and "does not exist" in results[1].error
    with pytest.raises(NerOsError, match=r"query 2 \('river'\): index .* does not exist"):
        handmade.search_types(["dinosaur", {"description": "river", "index": other}])


def test_a_query_that_cannot_be_asked_fails_the_batch_naming_it(handmade):
    with pytest.raises(NerOsError, match="query 2: unknown option sise"):
        handmade.search_types(["dinosaur", {"description": "river", "sise": 3}])
    with pytest.raises(NerOsError, match="non-empty list"):
        handmade.search_types("dinosaur")


# ----- the total hit count


def test_radial_total_is_every_document_with_a_mention_above_the_threshold(handmade):
    threshold = 0.75
    expected = sum(any(knn_score(vector, TYPE_VECTORS["dinosaur"]) >= threshold for _, vector in mentions)
                   for _, mentions, _ in CORPUS.values())
    results = handmade.search_type("dinosaur", min_score=threshold, size=1)
    assert (results.total, results.total_relation) == (expected, "eq") and len(results) == 1 and expected == 3


def test_knn_total_counts_the_documents_the_search_gathered(handmade):
    assert (handmade.search_type("river", size=2).total, "eq") == (len(CORPUS), "eq")  # k=100 gathers all six
    results = handmade.search_type("river", size=2, k=3)
    assert results.total >= 3 and results.total_relation in ("eq", "gte")


def test_client_fused_total_is_the_union_of_both_rankings(handmade):
    results = handmade.search_type("dinosaur", hybrid=True, size=2)
    assert (results.total, results.total_relation) == (len(CORPUS), "eq")  # k-NN reaches every document


# ----- one score scale


def test_every_mode_scores_a_hit_by_its_best_mention_and_labels_the_ranking(handmade, client, opensearch_url,
                                                                            fresh_index):
    order, best = expected_knn_order(TYPE_VECTORS["dinosaur"])
    server = NerOs(handmade.settings, opensearch=client, embedder=handmade.embedder, fusion="server")
    for ner, hybrid in ((handmade, False), (handmade, True), (server, True)):
        results = ner.search_type("dinosaur", hybrid=hybrid, size=len(CORPUS))
        assert [hit.score for hit in results] == pytest.approx([best[doc_id] for doc_id in results.ids], abs=1e-5)
        assert results.rank_kind == ("rrf" if hybrid else "knn")
        if hybrid:
            assert all(hit.rank_score < 0.05 for hit in results)  # RRF: 1/61 + 1/61 at most
            assert results.mode == ("hybrid-server" if ner is server else "hybrid-client")
        else:
            assert [hit.rank_score for hit in results] == pytest.approx([hit.score for hit in results], abs=1e-5)


# ----- the async client


def test_async_client_answers_as_the_sync_one(handmade, opensearch_url):
    async def main():
        async with AsyncNerOs(sync=handmade) as ner:
            one, several = await asyncio.gather(
                ner.search_type("river", size=3), ner.search_types(["dinosaur", {"description": "person", "hybrid": True}]))
            return one, several

    one, several = asyncio.run(main())
    assert signature(one) == signature(handmade.search_type("river", size=3)) and one.total == len(CORPUS)
    expected = handmade.search_types(["dinosaur", {"description": "person", "hybrid": True}])
    assert [signature(results) for results in several] == [signature(results) for results in expected]


def test_async_client_from_settings_and_its_errors(opensearch_url, handmade, fresh_index):
    async def main():
        ner = AsyncNerOs(handmade.settings, embedder=handmade.embedder)
        try:
            results = await ner.search_type("dinosaur", size=2)
            with pytest.raises(NerOsError, match="does not exist"):
                await ner.search_type("dinosaur", index=fresh_index + "-missing")
            return results
        finally:
            await ner.close()

    results = asyncio.run(main())
    assert results.ids == expected_knn_order(TYPE_VECTORS["dinosaur"])[0][:2]
    assert np.allclose(results.vector, TYPE_VECTORS["dinosaur"])
