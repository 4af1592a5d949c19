"""Neural request bodies: the words in place of the vector, everything else as for k-NN."""

from __future__ import annotations

import json

import pytest

from ner_os import query as q
from ner_os.client import NerOs
from ner_os.errors import NerOsError

pytestmark = pytest.mark.unit

WORDS = q.NeuralText("river in Africa", "model-1")


def test_nested_neural_query_has_the_shape_of_the_knn_one():
    body = q.nested_knn_query(WORDS, k=10)
    assert body == {"nested": {"path": "mentions", "score_mode": "max",
                               "query": {"neural": {"mentions.vector": {"query_text": "river in Africa",
                                                                        "model_id": "model-1", "k": 10,
                                                                        "expand_nested_docs": True}}},
                               "inner_hits": {"size": 3, "_source": {"excludes": ["mentions.vector", "mentions.vector_bytes"]}}}}
    knn = q.nested_knn_query([0.5, 0.5], k=10)
    assert {**knn["nested"], "query": None} == {**body["nested"], "query": None}


def test_without_model_id_the_index_pipeline_names_the_model():
    clause = q.knn_clause(q.NeuralText("dinosaur"), k=5)
    assert clause == {"neural": {"mentions.vector": {"query_text": "dinosaur", "k": 5, "expand_nested_docs": True}}}


def test_radial_and_filtered_neural_queries_keep_the_knn_rules():
    query = q.TypeQuery("dinosaur", min_score=0.8, filters={"lang": "en"})
    body = q.knn_search_body(WORDS, query)
    spec = body["query"]["nested"]["query"]["neural"]["mentions.vector"]
    assert spec["min_score"] == 0.8 and "k" not in spec and "expand_nested_docs" not in spec
    assert spec["filter"] == q.filter_clause({"lang": "en"})  # inside the nested clause (neural-search #1759)
    assert body["_source"] == {"excludes": ["mentions.vector", "mentions.vector_bytes"]}


def test_hybrid_with_words_fetches_the_page_with_a_second_neural_query():
    query = q.TypeQuery("dinosaur", size=2, hybrid=True)
    steps = q.type_search_steps(WORDS, query, index="docs", server_hybrid=True)
    ranking_request = next(steps)
    assert ranking_request.params == {"search_pipeline": "docs-rrf"}
    legs = ranking_request.body["query"]["hybrid"]["queries"]
    assert "neural" in legs[1]["nested"]["query"] and "inner_hits" not in json.dumps(ranking_request.body)
    fused = {"took": 3, "hits": {"hits": [{"_id": "a", "_score": 0.9, "fields": {"doc_id": ["a"]}},
                                          {"_id": "b", "_score": 0.5, "fields": {"doc_id": ["b"]}}]}}
    page_request = steps.send(fused)
    page = page_request.body["query"]["nested"]
    assert page["query"]["neural"]["mentions.vector"]["filter"] == {"terms": {"doc_id": ["a", "b"]}}
    assert page["inner_hits"]["_source"] == {"excludes": ["mentions.vector", "mentions.vector_bytes"]}


def test_dsl_with_words_is_one_neural_request_without_a_vector():
    text = q.dsl_request(q.NeuralText("dinosaur"), q.TypeQuery("dinosaur", hybrid=False), index="docs",
                         server_hybrid=False)
    head, body = text.split("\n", 1)
    assert head == "GET docs/_search"
    assert json.loads(body)["query"]["nested"]["query"]["neural"]["mentions.vector"]["query_text"] == "dinosaur"


def test_embedding_choice_is_checked():
    with pytest.raises(NerOsError, match="embedding must be one of auto, cluster, local"):
        NerOs(embedding="gpu")
    assert NerOs(embedding="local").cluster_model("docs") is None  # local: no cluster is asked
