"""Registered types against a real OpenSearch 2.19 node: tagging, the queries Dashboards sends,
tagging at load time, list / remove / refresh."""

from __future__ import annotations

import json

import numpy as np
import pytest
from axis_embedder import AxisEmbedder

from ner_os.store import bulk, schema, types_index
from ner_os import registered_types as rt
from ner_os.client import NerOs
from ner_os.config import Settings
from ner_os.errors import NerOsError
from ner_os.loader.target import ClusterTarget
from ner_os.fields import MAX_INNER_HITS, RESTORE_VECTORS_SCRIPT, stored_vector, vector_fields

pytestmark = pytest.mark.integration

DIM = 6
SCORE_ROUNDING = 1e-5  # the exact script and the HNSW search agree to ~1e-6 on the same mention
RIVER, CITY, PERSON, SHIP = (np.eye(DIM, dtype=np.float32)[axis] for axis in range(4))


def unit(*parts):
    vector = sum(weight * axis for axis, weight in parts)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


# (text, [(surface, vector)]): k-NN scores against RIVER are (1 + cosine) / 2
CORPUS = {
    "r1": ("The Danube flows through Vienna.", [("Danube", unit((RIVER, 1))), ("Vienna", unit((CITY, 1)))]),
    "r2": ("Barges on the Rhine pass Cologne.", [("Rhine", unit((RIVER, 1), (CITY, 0.3))), ("Cologne", unit((CITY, 1)))]),
    "r3": ("Ada Lovelace sailed to Lisbon on the Tagus.",
           [("Ada Lovelace", unit((PERSON, 1))), ("Lisbon", unit((CITY, 1), (RIVER, 0.5))),
            ("Tagus", unit((RIVER, 1), (SHIP, 0.6)))]),
    "r4": ("The Titanic left Southampton.", [("Titanic", unit((SHIP, 1))), ("Southampton", unit((CITY, 1)))]),
}
TYPE_VECTORS = {"river": RIVER, "ship": SHIP}


def source(text, mentions, tagger=None):
    vectors = np.stack([vector for _, vector in mentions])
    tags = tagger(vectors) if tagger is not None else [[] for _ in mentions]
    out = []
    for (surface, vector), types in zip(mentions, tags):
        start = text.index(surface)
        out.append({"start": start, "end": start + len(surface), "surface": surface, "types": list(types),
                    **vector_fields(vector)})
    return {"text": text, "mentions": out}


def scores(description):
    return {(doc_id, surface): float((1 + vector @ TYPE_VECTORS[description]) / 2)
            for doc_id, (_, mentions) in CORPUS.items() for surface, vector in mentions}


@pytest.fixture
def ner(client, opensearch_url, fresh_index, forget_types):
    schema.install_templates(client, Settings.resolve(index=fresh_index), DIM)
    actions = [{"_index": fresh_index, "_id": doc_id, "_source": source(*fields)} for doc_id, fields in CORPUS.items()]
    assert bulk.bulk_index(client, actions, refresh=True).failures == []
    return NerOs(Settings.resolve(opensearch_url=opensearch_url, index=fresh_index), opensearch=client,
                 embedder=AxisEmbedder(TYPE_VECTORS))


def tagged(client, name, type_name):
    """(document, surface) of every mention whose types hold ``type_name``."""
    response = client.search(index=name, body={"size": 100, "query": rt.tagged_mentions_query(type_name),
                                               "_source": ["mentions.surface", "mentions.types"]})
    return {(hit["_id"], mention["surface"]) for hit in response["hits"]["hits"]
            for mention in hit["_source"]["mentions"] if type_name in (mention.get("types") or [])}


def dql_ids(client, name, query):
    response = client.search(index=name, body={"size": 100, "query": query, "_source": False})
    return sorted(hit["_id"] for hit in response["hits"]["hits"])


def test_add_tags_exactly_the_mentions_at_or_above_the_threshold(ner, client, fresh_index):
    threshold = 0.85
    report = ner.register_type("river", min_score=threshold)
    expected = {key for key, score in scores("river").items() if score >= threshold}
    assert expected == {("r1", "Danube"), ("r2", "Rhine"), ("r3", "Tagus")}  # Lisbon scores 0.72
    assert tagged(client, fresh_index, "river") == expected
    assert (report.documents, report.mentions) == (3, 3)


def test_dashboards_queries_find_the_tagged_documents(ner, client, fresh_index):
    ner.register_type("river", min_score=0.85)
    # what DQL `mentions:{ types:"river" }` sends, and a query_string on mentions.types in the nested scope
    dql_nested = {"nested": {"path": "mentions", "score_mode": "none", "query": {"bool": {
        "should": [{"match_phrase": {"mentions.types": "river"}}], "minimum_should_match": 1}}}}
    query_string = {"nested": {"path": "mentions", "query": {"query_string": {"query": 'mentions.types:"river"'}}}}
    assert dql_ids(client, fresh_index, dql_nested) == ["r1", "r2", "r3"]
    assert dql_ids(client, fresh_index, query_string) == ["r1", "r2", "r3"]
    # the saved search "mentions of registered types": DQL mentions:{ types:* }
    any_type = {"nested": {"path": "mentions", "query": {"exists": {"field": "mentions.types"}}}}
    assert dql_ids(client, fresh_index, any_type) == ["r1", "r2", "r3"]


def test_a_document_loaded_later_is_tagged_by_the_loader_hook(ner, client, fresh_index):
    ner.register_type("river", min_score=0.85)
    tagger = ner.tagger()
    later = ("Paddle steamers still run on the Elbe near Dresden.",
             [("Elbe", unit((RIVER, 1), (CITY, 0.2))), ("Dresden", unit((CITY, 1)))])
    written = bulk.bulk_index(client, [{"_index": fresh_index, "_id": "r5", "_source": source(*later, tagger)}],
                               refresh=True)
    assert written.failures == []
    assert ("r5", "Elbe") in tagged(client, fresh_index, "river")
    assert ("r5", "Dresden") not in tagged(client, fresh_index, "river")


def test_a_second_type_list_refresh_and_remove(ner, client, fresh_index):
    ner.register_type("river", min_score=0.85)
    ner.register_type("ship", name="vessel", min_score=0.85)
    assert [(t.name, t.description, t.min_score) for t in ner.registered_types()] == [
        ("river", "river", 0.85), ("vessel", "ship", 0.85)]
    assert tagged(client, fresh_index, "vessel") == {("r4", "Titanic")}
    before = {t.name: t.updated_at for t in ner.registered_types()}
    reports = ner.refresh_types(["vessel"])
    assert [r.name for r in reports] == ["vessel"]
    assert tagged(client, fresh_index, "vessel") == {("r4", "Titanic")}
    assert [t.name for t in ner.registered_types()] == list(before)
    removed = ner.remove_type("river")
    assert (removed.documents, removed.mentions) == (3, 3)
    assert tagged(client, fresh_index, "river") == set()
    assert tagged(client, fresh_index, "vessel") == {("r4", "Titanic")}  # the other type keeps its tags
    assert [t.name for t in ner.registered_types()] == ["vessel"]
    with pytest.raises(NerOsError, match="no type 'river' is registered"):
        ner.remove_type("river")


def test_re_adding_a_type_with_a_higher_threshold_untags_the_weaker_mentions(ner, client, fresh_index):
    ner.register_type("river", min_score=0.7)
    assert ("r3", "Lisbon") in tagged(client, fresh_index, "river")
    ner.register_type("river", min_score=0.85)
    assert ("r3", "Lisbon") not in tagged(client, fresh_index, "river")
    assert len(ner.registered_types()) == 1


def test_cluster_side_and_load_time_scores_agree(ner, client, fresh_index):
    # tagging on the cluster uses the knn_score script; the loader uses numpy: same scale, same set
    for threshold in (0.6, 0.75, 0.9, 0.99):
        ner.register_type("river", min_score=threshold)
        tagger = ner.tagger()
        at_load = {(doc_id, surface) for doc_id, (_, mentions) in CORPUS.items()
                   for (surface, _), types in zip(mentions, tagger(np.stack([v for _, v in mentions])))
                   if "river" in types}
        assert tagged(client, fresh_index, "river") == at_load


def test_bad_registrations_are_one_line_errors(ner):
    with pytest.raises(NerOsError, match="min_score"):
        ner.register_type("river", min_score=1.5)
    with pytest.raises(NerOsError, match="empty"):
        ner.register_type("   ")
    with pytest.raises(NerOsError, match="does not exist"):
        ner.register_type("river", index="nerostest-no-such-index")


def test_tag_names_travel_as_parameters_not_as_code(ner, client, fresh_index):
    name = "river'); ctx._source.clear(); ('"
    ner.register_type("river", name=name, min_score=0.85)
    assert tagged(client, fresh_index, name) == {("r1", "Danube"), ("r2", "Rhine"), ("r3", "Tagus")}
    document = client.get(index=fresh_index, id="r1")["_source"]
    assert document["text"] == CORPUS["r1"][0] and len(document["mentions"]) == 2
    assert json.dumps(document).count("vector") == 2  # vectors survive the scripted update


# ----- the real pipeline: ner-os load tags what it writes

def water_sample(count=60):
    """Few-NERD test sentences, every other one holding a body of water (gold spans)."""
    from pathlib import Path

    from ner_os.evaluation.readers import read_bio

    path = Path(__file__).resolve().parents[3] / "shared" / "data" / "fewnerd-inter" / "inter_test.txt"
    if not path.is_file():
        pytest.skip(f"{path} is absent (the Few-NERD data lives outside the repository)")
    water, other = [], []
    for number, sentence in enumerate(read_bio(path)):
        if not sentence.mentions or len(sentence.tokens) > 40:
            continue
        holds = any(m.label == "location_bodiesofwater" for m in sentence.mentions)
        bucket = water if holds else other
        if len(bucket) < count // 2:
            bucket.append({"id": f"s{number}", "text": sentence.text,
                           "mentions": [{"start": m.start, "end": m.end} for m in sentence.mentions]})
        if len(water) + len(other) == count:
            break
    return [doc for pair in zip(water, other) for doc in pair]


def exact_matches(client, name, registered, ids):
    query = {"bool": {"filter": [{"ids": {"values": ids}}],
                      "must": [rt.matching_mentions_query(registered.vector, registered.min_score)]}}
    response = client.search(index=name, body={"size": len(ids), "query": query, "_source": False})
    return {(hit["_id"], offset) for hit in response["hits"]["hits"] for offset in rt.matched_positions(hit)[0]}


def tagged_positions(client, name, type_name, ids):
    response = client.search(index=name, body={"size": len(ids), "query": {"ids": {"values": ids}},
                                               "_source": ["mentions.start", "mentions.types"]})
    return {(hit["_id"], position) for hit in response["hits"]["hits"]
            for position, mention in enumerate(hit["_source"].get("mentions", []))
            if type_name in (mention.get("types") or [])}


@pytest.fixture
def forget_types(client, fresh_index):
    """Registry records of the test's index are deleted after the test, whatever happens."""
    yield
    for registered in types_index.read_types(client, fresh_index):
        types_index.delete_type_record(client, fresh_index, registered.name)


@pytest.mark.model
@pytest.mark.usefixtures("forget_types")
def test_real_loader_tags_documents_loaded_after_the_type(client, opensearch_url, fresh_index, tmp_path):
    from ner_os.loader import load

    documents = water_sample()
    first, later = documents[:30], documents[30:]
    settings = Settings.resolve(opensearch_url=opensearch_url, index=fresh_index)
    ner = NerOs(settings, opensearch=client)
    for part, rows in (("first", first), ("later", later)):
        (tmp_path / f"{part}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))

    load(tmp_path / "first.jsonl", settings, client=client, embedder=ner.embedder, progress=False)
    client.indices.refresh(index=fresh_index)
    # a threshold the corpus itself suggests: just under the fifth best document's best mention
    # (tagging scores with the exact knn_score script, which rounds the last float bits
    # differently from the HNSW search: a threshold at a score itself may miss that mention)
    threshold = ner.search_type("body of water", hybrid=False, size=5)[4].mentions[0].score - SCORE_ROUNDING
    report = ner.register_type("body of water", name="water", min_score=threshold)
    assert report.documents >= 5
    registered = types_index.get_type(client, fresh_index, "water")
    first_ids = [row["id"] for row in first]
    assert tagged_positions(client, fresh_index, "water", first_ids) == exact_matches(client, fresh_index, registered,
                                                                                      first_ids)

    load(tmp_path / "later.jsonl", settings, client=client, embedder=ner.embedder, progress=False)
    client.indices.refresh(index=fresh_index)
    later_ids = [row["id"] for row in later]
    tagged_later = tagged_positions(client, fresh_index, "water", later_ids)
    assert tagged_later, "no mention of the later documents was tagged at load time"
    assert tagged_later == exact_matches(client, fresh_index, registered, later_ids)
    nested_query_string = {"nested": {"path": "mentions", "query": {"query_string": {"query": 'mentions.types:"water"'}}}}
    found = dql_ids(client, fresh_index, nested_query_string)
    assert {doc_id for doc_id, _ in tagged_later} <= set(found)


def test_a_document_with_more_matches_than_inner_hits_returns_is_tagged_whole(ner, client, fresh_index):
    count = MAX_INNER_HITS + 20
    text = " ".join(["Nile"] * count)
    mentions = [("Nile", unit((RIVER, 1), (CITY, 0.001 * i))) for i in range(count)]
    body = source(text, mentions)
    for i, mention in enumerate(body["mentions"]):  # text.index found the first Nile: spread the spans out
        mention["start"], mention["end"] = 5 * i, 5 * i + 4
    assert bulk.bulk_index(client, [{"_index": fresh_index, "_id": "many", "_source": body}], refresh=True).failures == []
    report = ner.register_type("river", min_score=0.85)
    positions = {position for doc_id, position in tagged_positions(client, fresh_index, "river", ["many"])}
    assert positions == set(range(count)) and report.mentions == count + 3


def best_score(client, name, vector, doc_id):
    """The k-NN score of ``doc_id``'s best mention against ``vector``; None when its vectors are not indexed."""
    body = {"size": 1, "_source": False, "query": {"nested": {"path": "mentions", "score_mode": "max", "query": {
        "knn": {"mentions.vector": {"vector": vector.tolist(), "k": 10, "filter": {"ids": {"values": [doc_id]}}}}}}}}
    hits = client.search(index=name, body=body)["hits"]["hits"]
    return hits[0]["_score"] if hits else None


def test_tagging_and_untagging_keep_every_mention_s_vector_indexed(ner, client, fresh_index):
    # a scripted update re-indexes the stored source, which leaves the float list out: without the
    # scripts' restoring prelude, every tagged document would drop out of k-NN search
    ner.register_type("river", min_score=0.85)
    ner.register_type("ship", min_score=0.85)
    ner.remove_type("river")
    assert tagged(client, fresh_index, "ship") == {("r4", "Titanic")}
    for doc_id, (_, mentions) in CORPUS.items():
        for _, vector in mentions:
            assert best_score(client, fresh_index, vector, doc_id) == pytest.approx(1.0, abs=SCORE_ROUNDING)
        stored = client.get(index=fresh_index, id=doc_id)["_source"]["mentions"]
        assert all("vector" not in mention for mention in stored)
        assert np.array_equal(np.stack([stored_vector(mention) for mention in stored]),
                              np.stack([vector for _, vector in mentions]))
    # the prelude serves the user's own scripted updates too, documents without mentions included
    client.index(index=fresh_index, id="empty", body={"text": "No entity here.", "mentions": []}, refresh=True)
    script = {"source": RESTORE_VECTORS_SCRIPT + "\nctx._source.text = ctx._source.text + ' (checked)';",
              "lang": "painless"}
    assert client.update_by_query(index=fresh_index, body={"script": script}, refresh=True)["updated"] == 5
    for doc_id, (_, mentions) in CORPUS.items():
        assert best_score(client, fresh_index, mentions[0][1], doc_id) == pytest.approx(1.0, abs=SCORE_ROUNDING)


def test_a_tag_already_there_leaves_the_document_untouched(client, ner, fresh_index):
    # a no-op update is not re-indexed: the script decodes the stored vectors only for a change
    update = {"source": types_index.ADD_TYPE_SCRIPT, "lang": "painless", "params": {"type": "river", "positions": [0]}}
    first = client.update(index=fresh_index, id="r1", body={"script": update}, refresh=True)
    again = client.update(index=fresh_index, id="r1", body={"script": update}, refresh=True)
    assert (first["result"], again["result"]) == ("updated", "noop")
    assert again["_seq_no"] == first["_seq_no"]
    assert best_score(client, fresh_index, CORPUS["r1"][1][0][1], "r1") == pytest.approx(1.0, abs=SCORE_ROUNDING)
    removal = {**update, "source": types_index.REMOVE_TYPE_SCRIPT}
    results = [client.update(index=fresh_index, id="r1", body={"script": removal}, refresh=True)["result"]
               for _ in range(2)]
    assert results == ["updated", "noop"]
    assert best_score(client, fresh_index, CORPUS["r1"][1][0][1], "r1") == pytest.approx(1.0, abs=SCORE_ROUNDING)


def test_an_index_made_before_the_vector_bytes_is_tagged_and_read_as_before(client, opensearch_url, fresh_index,
                                                                             forget_types):
    # what ner-os wrote before the stored source left the float list out: no vector_bytes, vectors in the source
    body = schema.index_body(fresh_index, DIM)
    body["mappings"].pop("_source")
    body["mappings"]["properties"]["mentions"]["properties"].pop("vector_bytes")
    client.indices.create(index=fresh_index, body=body)
    old = [{"_index": fresh_index, "_id": doc_id, "_source": {
        **source(*fields), "mentions": [{key: value for key, value in mention.items() if key != "vector_bytes"}
                                        for mention in source(*fields)["mentions"]]}} for doc_id, fields in CORPUS.items()]
    assert bulk.bulk_index(client, old, refresh=True).failures == []
    ner = NerOs(Settings.resolve(opensearch_url=opensearch_url, index=fresh_index), opensearch=client,
                embedder=AxisEmbedder(TYPE_VECTORS))
    ner.register_type("river", min_score=0.85)
    assert tagged(client, fresh_index, "river") == {("r1", "Danube"), ("r2", "Rhine"), ("r3", "Tagus")}
    assert best_score(client, fresh_index, CORPUS["r1"][1][0][1], "r1") == pytest.approx(1.0, abs=SCORE_ROUNDING)
    danube = ner.search_type(examples=[("r1", 4, 10)], size=1)
    assert danube.hits[0].id == "r1" and danube.hits[0].mentions[0].surface == "Danube"
    # the loader maps the bytes before it writes into such an index (unmapped, they would become a text field)
    settings = Settings.resolve(opensearch_url=opensearch_url, index=fresh_index)
    ClusterTarget(client, fresh_index).prepare_index(settings, DIM)
    ClusterTarget(client, fresh_index).prepare_index(settings, DIM)
    mentions = client.indices.get_mapping(index=fresh_index)[fresh_index]["mappings"]["properties"]["mentions"]
    assert mentions["properties"]["vector_bytes"] == {"type": "binary"}
