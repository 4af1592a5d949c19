"""The index layer against a real OpenSearch 2.19 node with k-NN (see tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest

from ner_os.store import bulk, connection, schema
from ner_os.config import Settings
from ner_os.errors import ConfigError
from ner_os.fields import vector_fields

pytestmark = pytest.mark.integration

DIM = 8
# hand-made 8-d directions: each entity "type" leans on its own axis
DINOSAUR, RIVER, PLACE, PERSON = (np.eye(DIM, dtype=np.float32)[axis] for axis in range(4))


def _near(direction: np.ndarray, *others: tuple[np.ndarray, float]) -> list[float]:
    vector = direction.astype(np.float64).copy()
    for other, weight in others:
        vector += weight * other
    return (vector / np.linalg.norm(vector)).tolist()


def _mention(text: str, surface: str, vector: list[float], types: list[str] = ()) -> dict:
    start = text.index(surface)
    return {"start": start, "end": start + len(surface), "surface": surface, "types": list(types), **vector_fields(vector)}


T1 = "Tyrannosaurus lived in North America long before the Nile existed."
T2 = "Stegosaurus and Triceratops fossils were dug up in Colorado."
T3 = "Marie Curie worked in Paris, a city on the Seine."
DOCUMENTS = {
    "d1": {"text": T1, "mentions": [
        _mention(T1, "Tyrannosaurus", _near(DINOSAUR)),
        _mention(T1, "North America", _near(PLACE)),
        _mention(T1, "Nile", _near(RIVER)),
    ]},
    "d2": {"text": T2, "mentions": [
        _mention(T2, "Stegosaurus", _near(DINOSAUR, (PLACE, 0.3)), types=["armoured"]),
        _mention(T2, "Triceratops", _near(DINOSAUR, (PERSON, 0.4))),
        _mention(T2, "Colorado", _near(PLACE)),
    ]},
    "d3": {"text": T3, "mentions": [
        _mention(T3, "Marie Curie", _near(PERSON)),
        _mention(T3, "Paris", _near(PLACE, (RIVER, 0.2))),
        _mention(T3, "Seine", _near(RIVER, (DINOSAUR, 0.1))),
    ]},
}
MENTION_FIELDS = ["mentions.start", "mentions.end", "mentions.surface"]


@pytest.fixture
def loaded_index(client, fresh_index):
    """``fresh_index`` with the templates installed and the three documents written through them."""
    schema.install_templates(client, Settings.resolve(index=fresh_index), DIM)
    actions = [{"_index": fresh_index, "_id": doc_id, "_source": source} for doc_id, source in DOCUMENTS.items()]
    result = bulk.bulk_index(client, actions, refresh=True)
    assert result.failures == [] and result.indexed == len(DOCUMENTS)
    return fresh_index


def _mention_query(vector, k=10, expand=False, knn_filter=None, inner_size=3) -> dict:
    knn = {"vector": list(vector), "k": k}
    if expand:
        knn["expand_nested_docs"] = True
    if knn_filter is not None:
        knn["filter"] = knn_filter
    return {
        "nested": {
            "path": "mentions",
            "score_mode": "max",
            "query": {"knn": {"mentions.vector": knn}},
            "inner_hits": {"_source": {"includes": MENTION_FIELDS}, "size": inner_size},
        }
    }


def _search(client, name, query, **params) -> list[dict]:
    body = {"query": query, "_source": {"excludes": ["mentions.vector"]}, "size": 10}
    return client.search(index=name, body=body, **params)["hits"]["hits"]


def _inner(hit) -> list[dict]:
    return hit["inner_hits"]["mentions"]["hits"]["hits"]


def test_templates_give_a_bulk_created_index_nested_knn_mentions(client, loaded_index):
    mapping = client.indices.get_mapping(index=loaded_index)[loaded_index]["mappings"]
    mentions = mapping["properties"]["mentions"]
    assert mentions["type"] == "nested"
    vector = mentions["properties"]["vector"]
    assert vector["type"] == "knn_vector" and vector["dimension"] == DIM
    assert vector["method"]["engine"] == "lucene" and vector["method"]["space_type"] == "cosinesimil"
    settings = client.indices.get_settings(index=loaded_index)[loaded_index]["settings"]["index"]
    assert settings["knn"] == "true"
    assert int(settings["mapping"]["nested_objects"]["limit"]) == schema.DEFAULT_PARAMS["nested_objects_limit"]
    assert schema.index_vector_dimension(client, loaded_index) == DIM


def test_install_templates_is_idempotent_and_refuses_another_dimension(client, loaded_index):
    settings = Settings.resolve(index=loaded_index)
    first = schema.install_templates(client, settings, DIM)
    assert schema.install_templates(client, settings, DIM) == first
    with pytest.raises(ConfigError, match=f"stores {DIM}-d"):
        schema.install_templates(client, settings, DIM * 2)


def test_nested_knn_with_max_ranks_the_right_parent_and_gives_the_mention_offsets(client, loaded_index):
    hits = _search(client, loaded_index, _mention_query(DINOSAUR))
    assert [hit["_id"] for hit in hits[:2]] == ["d1", "d2"]
    best = _inner(hits[0])
    assert len(best) == 1  # without expand_nested_docs only the best mention of each parent comes back
    mention = best[0]["_source"]
    assert (mention["start"], mention["end"], mention["surface"]) == (0, len("Tyrannosaurus"), "Tyrannosaurus")
    assert T1[mention["start"]:mention["end"]] == "Tyrannosaurus"
    assert "vector" not in mention


def test_expand_nested_docs_returns_several_mentions_of_one_document(client, loaded_index):
    hits = _search(client, loaded_index, _mention_query(DINOSAUR, expand=True, inner_size=3))
    by_id = {hit["_id"]: hit for hit in hits}
    surfaces = [inner["_source"]["surface"] for inner in _inner(by_id["d2"])]
    assert len(surfaces) == 3
    assert set(surfaces[:2]) == {"Stegosaurus", "Triceratops"}  # the two dinosaurs outscore Colorado
    scores = [inner["_score"] for inner in _inner(by_id["d2"])]
    assert scores == sorted(scores, reverse=True)


def test_filter_inside_the_nested_knn_clause_restricts_the_mentions(client, loaded_index):
    query = _mention_query(DINOSAUR, knn_filter={"term": {"mentions.types": "armoured"}})
    hits = _search(client, loaded_index, query)
    assert [hit["_id"] for hit in hits] == ["d2"]
    assert [inner["_source"]["surface"] for inner in _inner(hits[0])] == ["Stegosaurus"]


def test_bulk_index_reports_per_item_failures_without_raising(client, loaded_index):
    bad = {"text": "x", "mentions": [{"start": 0, "end": 1, "surface": "x", "vector": [1.0, 0.0]}]}
    actions = [
        {"_index": loaded_index, "_id": "bad", "_source": bad},
        {"_index": loaded_index, "_id": "good", "_source": DOCUMENTS["d3"]},
    ]
    result = bulk.bulk_index(client, actions, refresh=True)
    assert result.indexed == 1
    (failure,) = result.failures
    assert (failure.doc_id, failure.status) == ("bad", 400)
    assert "dimension" in failure.reason.lower()


@pytest.mark.parametrize("kind", schema.PIPELINE_KINDS)
def test_server_side_hybrid_query_fuses_bm25_and_knn(client, loaded_index, kind):
    if not connection.has_neural_search(client):
        pytest.skip("this cluster has no neural-search plugin: no server-side hybrid query")
    # BM25 finds only d3 ("Seine"); k-NN on the river direction ranks d1 (Nile) first: fusion keeps both
    query = {"hybrid": {"queries": [{"match": {"text": "Seine"}}, _mention_query(RIVER, k=3)]}}
    hits = _search(client, loaded_index, query, search_pipeline=schema.pipeline_name(loaded_index, kind))
    ids = [hit["_id"] for hit in hits]
    assert {"d1", "d3"} <= set(ids)
    assert ids[0] == "d3"  # first in BM25 and second in k-NN beats first in k-NN alone
    assert hits[0]["_score"] <= 1.0  # a fused score, not a raw BM25 score
