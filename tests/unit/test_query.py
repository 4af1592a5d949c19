"""The query builder: pure functions producing request bodies, and the fusion and parsing rules."""

import json

import numpy as np
import pytest

from ner_os.checks import MAX_DESCRIPTION_CHARS, check_description, check_vector
from ner_os.errors import NerOsError
from ner_os.query.model import BM25_WEIGHT
from ner_os.query import (
    MENTION_MARGIN,
    rrf_fuse,
    MultiSearchRequest,
    SearchRequest,
    TypeQuery,
    bm25_search_body,
    dsl_request,
    filter_clause,
    hybrid_search_body,
    knn_search_body,
    page_body,
    ranking_body,
    parse_mentions,
    rrf_fuse,
    type_search_steps,
)

pytestmark = pytest.mark.unit

VECTOR = [0.6, 0.8, 0.0]


def walk(node):
    """Every dict in a JSON-like tree, depth first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def knn_specs(body):
    return [node["knn"]["mentions.vector"] for node in walk(body) if "knn" in node]


def nested_clauses(body):
    return [node["nested"] for node in walk(body) if "nested" in node]


# ----- input checks


@pytest.mark.parametrize("description", ["", "   ", "\n\t "])
def test_empty_description_is_refused(description):
    with pytest.raises(NerOsError, match="empty"):
        check_description(description)


def test_over_long_description_is_refused_with_the_limit():
    with pytest.raises(NerOsError, match=str(MAX_DESCRIPTION_CHARS)):
        check_description("dinosaur " * 40)


def test_description_whitespace_is_collapsed():
    assert check_description("  river   in\tAfrica ") == "river in Africa"


def test_non_text_description_is_refused():
    with pytest.raises(NerOsError, match="text"):
        check_description(42)


def test_vector_dimension_must_match_the_index():
    with pytest.raises(NerOsError, match="3 dimensions but the index stores 256-d"):
        check_vector(VECTOR, dim=256)
    assert check_vector(np.asarray(VECTOR, dtype=np.float32), dim=3) == pytest.approx(VECTOR)


def test_non_finite_vector_is_refused():
    with pytest.raises(NerOsError, match="NaN"):
        check_vector([0.1, float("nan")])


@pytest.mark.parametrize("kwargs, message", [
    ({"size": 0}, "size"), ({"offset": -1}, "offset"), ({"k": 0}, "k must"), ({"k": 20_000}, "k must"),
    ({"min_score": 1.5}, "min_score"), ({"size": 9_000, "offset": 2_000}, "offset \\+ size"),
    ({"mentions_per_hit": 500}, "mentions_per_hit"), ({"size": True}, "size"),
    ({"mention_margin": 1.5}, "mention_margin"), ({"mention_margin": -0.1}, "mention_margin"),
    ({"mention_margin": "0.1"}, "mention_margin"),
])
def test_bad_paging_values_are_refused(kwargs, message):
    with pytest.raises(NerOsError, match=message):
        TypeQuery("dinosaur", **kwargs)


# ----- filters


def test_filters_become_term_terms_and_range_clauses():
    clause = filter_clause({"lang": "en", "source": ["wiki", "news"], "year": {"gte": 2000}})
    assert clause == {"bool": {"filter": [
        {"term": {"lang": "en"}},
        {"terms": {"source": ["wiki", "news"]}},
        {"range": {"year": {"gte": 2000}}},
    ]}}


@pytest.mark.parametrize("filters, message", [
    ({"mentions.types": "dinosaur"}, "document fields only"),
    ({"mentions": "x"}, "document fields only"),
    ({"year": {"from": 1}}, "range takes"),
    ({"lang": []}, "empty list"),
    ({"lang": None}, "no value"),
])
def test_bad_filters_are_refused(filters, message):
    with pytest.raises(NerOsError, match=message):
        TypeQuery("dinosaur", filters=filters)


# ----- bodies


def test_knn_body_is_nested_max_with_expanded_inner_hits_and_no_vectors():
    body = knn_search_body(VECTOR, TypeQuery("dinosaur", size=5, hybrid=False))
    (nested,) = nested_clauses(body)
    assert nested["path"] == "mentions"
    assert nested["score_mode"] == "max"
    assert nested["inner_hits"]["_source"] == {"excludes": ["mentions.vector", "mentions.vector_bytes"]}
    assert nested["inner_hits"]["size"] == 3
    (spec,) = knn_specs(body)
    assert spec == {"vector": VECTOR, "k": 200, "expand_nested_docs": True}
    assert body["_source"] == {"excludes": ["mentions.vector", "mentions.vector_bytes"]}
    assert body["size"] == 5


def test_k_follows_the_request_and_covers_the_page():
    assert knn_specs(knn_search_body(VECTOR, TypeQuery("x", k=7, hybrid=False)))[0]["k"] == 10
    assert knn_specs(knn_search_body(VECTOR, TypeQuery("x", k=500, hybrid=False)))[0]["k"] == 500
    assert knn_specs(knn_search_body(VECTOR, TypeQuery("x", size=50, offset=200, hybrid=False)))[0]["k"] == 250


def test_the_default_k_is_split_over_the_shards_but_never_below_the_floor_or_the_page():
    def k(**options):
        return knn_specs(knn_search_body(VECTOR, TypeQuery("x", hybrid=False, **options)))[0]["k"]

    assert [k(shards=n) for n in (1, 2, 3, 8)] == [200, 100, 100, 100]  # KNN_CANDIDATES, KNN_PER_SHARD
    assert k(shards=2, size=50, offset=100) == 150  # one shard may hold the whole page
    assert k(shards=4, k=30) == 30  # a k given is the shards' own
    with pytest.raises(NerOsError, match="shards must be an integer >= 1"):
        TypeQuery("x", shards=0)


def test_filter_goes_inside_the_nested_knn_clause():
    body = knn_search_body(VECTOR, TypeQuery("x", hybrid=False, filters={"lang": "en"}))
    (spec,) = knn_specs(body)
    assert spec["filter"] == {"bool": {"filter": [{"term": {"lang": "en"}}]}}
    assert "bool" not in body["query"]  # nothing outside the nested clause


def test_radial_mode_takes_min_score_instead_of_k_and_returns_all_mentions():
    query = TypeQuery("dinosaur", min_score=0.8, size=20)
    assert query.hybrid is False and query.mode == "radial"
    body = knn_search_body(VECTOR, query)
    (spec,) = knn_specs(body)
    assert spec == {"vector": VECTOR, "min_score": 0.8}
    assert nested_clauses(body)[0]["inner_hits"]["size"] == 100
    assert body["size"] == 20


def test_hybrid_is_top_level_with_no_filter_of_its_own():
    body = hybrid_search_body(VECTOR, TypeQuery("dinosaur", filters={"lang": "en"}))
    assert list(body["query"]) == ["hybrid"]
    hybrid = body["query"]["hybrid"]
    assert "filter" not in hybrid
    assert hybrid["pagination_depth"] == 100
    bm25, knn = hybrid["queries"]
    assert bm25 == {"bool": {"must": [{"match": {"text": {"query": "dinosaur", "analyzer": "stop",
                                                          "minimum_should_match": "100%"}}}],
                             "filter": [{"bool": {"filter": [{"term": {"lang": "en"}}]}}]}}
    assert knn_specs(knn)[0]["filter"] == {"bool": {"filter": [{"term": {"lang": "en"}}]}}
    assert sum(1 for node in walk(body) if "hybrid" in node) == 1


def test_pagination_depth_stays_put_from_page_to_page():
    depths = {hybrid_search_body(VECTOR, TypeQuery("x", size=10, offset=offset))["query"]["hybrid"]["pagination_depth"]
              for offset in (0, 10, 50, 90)}
    assert depths == {100}


def test_bm25_leg_is_a_match_on_text():
    body = bm25_search_body(TypeQuery("river in Africa", hybrid=True))
    # stopwords out ("in" must not match every document), every other word required
    assert body["query"] == {"match": {"text": {"query": "river in Africa", "analyzer": "stop",
                                                "minimum_should_match": "100%"}}}
    assert body["size"] == 100


def test_page_body_filters_by_ids_inside_the_knn_clause_and_returns_sources():
    body = page_body(VECTOR, ["a", "b"], 3)
    (spec,) = knn_specs(body)
    assert spec["filter"] == {"ids": {"values": ["a", "b"]}}
    assert spec["k"] == 2 and spec["expand_nested_docs"] is True
    assert body["size"] == 2 and body["_source"] == {"excludes": ["mentions.vector", "mentions.vector_bytes"]}
    assert knn_specs(page_body(VECTOR, ["a"], 3, by_doc_id=True))[0]["filter"] == {"terms": {"doc_id": ["a"]}}


def test_ranking_bodies_load_no_stored_fields_and_no_inner_hits():
    full = hybrid_search_body(VECTOR, TypeQuery("dinosaur"))
    ranked = ranking_body(full)
    assert ranked["stored_fields"] == "_none_" and ranked["docvalue_fields"] == ["doc_id"]
    assert "_source" not in ranked and not any("inner_hits" in node for node in walk(ranked))
    assert ranked["query"]["hybrid"]["queries"][0] == full["query"]["hybrid"]["queries"][0]
    assert "inner_hits" in json.dumps(full)  # the original is left alone
    stored = ranking_body(full, stored_ids=True)
    assert stored["_source"] is False and "stored_fields" not in stored


def test_bodies_are_json():
    query = TypeQuery("dinosaur", filters={"year": {"lt": 2000}})
    for body in (knn_search_body(VECTOR, query), hybrid_search_body(VECTOR, query), bm25_search_body(query)):
        assert json.loads(json.dumps(body)) == body


def test_dsl_request_names_the_pipeline_for_server_hybrid():
    text = dsl_request(VECTOR, TypeQuery("dinosaur", hybrid=True), index="ner-os", server_hybrid=True)
    head, body = text.split("\n", 1)
    assert head == "GET ner-os/_search?search_pipeline=ner-os-rrf"
    assert "hybrid" in json.loads(body)["query"]
    knn_only = dsl_request(VECTOR, TypeQuery("dinosaur", hybrid=True), index="ner-os", server_hybrid=False)
    assert knn_only.startswith("GET ner-os/_search\n")
    assert "nested" in json.loads(knn_only.split("\n", 1)[1])["query"]


# ----- fusion and parsing


def test_rrf_matches_the_formula_and_breaks_ties_by_id():
    fused = rrf_fuse([["a", "b", "c"], ["c", "b", "d"]], rank_constant=60)
    scores = dict(fused)
    assert scores["b"] == pytest.approx(2 / 62)
    assert scores["a"] == pytest.approx(1 / 61) and scores["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert [doc for doc, _ in fused] == ["c", "b", "a", "d"]
    tie = rrf_fuse([["y"], ["x"]])
    assert [doc for doc, _ in tie] == ["x", "y"]


def inner_hit(offset, score, surface="T. rex", start=0, end=6, types=None):
    source = {"start": start, "end": end, "surface": surface}
    if types is not None:
        source["types"] = types
    return {"_id": "d", "_nested": {"field": "mentions", "offset": offset}, "_score": score, "_source": source}


def test_parse_mentions_orders_best_first_and_limits():
    hit = {"_id": "d", "inner_hits": {"mentions": {"hits": {"hits": [
        inner_hit(0, 0.7), inner_hit(2, 0.9, "Stegosaurus", 10, 21, types="dinosaur"), inner_hit(1, 0.9)]}}}}
    mentions = parse_mentions(hit)
    assert [m.position for m in mentions] == [1, 2, 0]
    assert mentions[1].surface == "Stegosaurus" and (mentions[1].start, mentions[1].end) == (10, 21)
    assert mentions[1].types == ("dinosaur",)
    assert len(parse_mentions(hit, limit=1)) == 1
    assert parse_mentions({"_id": "d"}) == ()


def test_parse_mentions_keeps_those_within_the_margin_of_the_best():
    hit = {"_id": "d", "inner_hits": {"mentions": {"hits": {"hits": [
        inner_hit(0, 0.7), inner_hit(1, 0.9), inner_hit(2, 0.82), inner_hit(3, 0.81)]}}}}
    assert [m.score for m in parse_mentions(hit, margin=0.08)] == [0.9, 0.82]  # 0.82 = 0.9 - 0.08, kept
    assert [m.score for m in parse_mentions(hit, margin=0.0)] == [0.9]
    assert [m.score for m in parse_mentions(hit, limit=3, margin=None)] == [0.9, 0.82, 0.81]


# ----- the search steps, driven by hand-written responses


def hit(doc_id, score, mentions=None, text="t"):
    out = {"_id": doc_id, "_score": score, "_source": {"doc_id": doc_id, "text": text}}
    if mentions is not None:
        out["inner_hits"] = {"mentions": {"hits": {"hits": mentions}}}
    return out


def response(*hits, took=3):
    return {"took": took, "hits": {"hits": list(hits)}}


def drive(steps, answers):
    """Run a step generator, answering each request with the next canned answer; returns (requests, result)."""
    requests = []
    try:
        request = next(steps)
        for answer in answers:
            requests.append(request)
            request = steps.send(answer)
        raise AssertionError(f"unexpected extra request {request}")
    except StopIteration as stop:
        return requests, stop.value


def test_knn_steps_page_with_a_stable_id_tie_break():
    query = TypeQuery("dinosaur", size=2, offset=1, hybrid=False)
    answer = response(hit("b", 0.9, [inner_hit(0, 0.9)]), hit("a", 0.9, [inner_hit(0, 0.9)]),
                      hit("c", 0.8, [inner_hit(0, 0.8)]))
    requests, results = drive(type_search_steps(VECTOR, query, index="i", server_hybrid=False), [answer])
    assert isinstance(requests[0], SearchRequest) and requests[0].params == {}
    assert results.ids == ["b", "c"]  # a < b on the tie, then the page starts at offset 1
    assert results.mode == "knn" and results.took_ms == 3


def test_a_hit_keeps_the_mentions_within_the_margin_of_its_best():
    mentions = [inner_hit(0, 0.9), inner_hit(1, 0.7, "Dialects"), inner_hit(2, 0.86)]
    answer = response(hit("a", 0.9, mentions))
    for margin, kept in ((MENTION_MARGIN, [0, 2]), (None, [0, 2, 1]), (1.0, [0, 2, 1])):
        query = TypeQuery("river in Africa", hybrid=False, mention_margin=margin)
        _, results = drive(type_search_steps(VECTOR, query, index="i", server_hybrid=False), [answer])
        assert [m.position for m in results[0].mentions] == kept


def ranked(*pairs, took=1):
    """A ranking response as ranking_body asks for it: doc_id doc values, no _id, no source."""
    return {"took": took, "hits": {"hits": [{"_score": score, "fields": {"doc_id": [doc_id]}} for doc_id, score in pairs]}}


def test_server_hybrid_ranks_ids_with_the_pipeline_then_fetches_the_page():
    query = TypeQuery("dinosaur", size=2, hybrid=True)
    first = ranked(("b", 0.02), ("a", 0.03), ("c", 0.01))
    page = response(hit("a", 0.9, [inner_hit(1, 0.9)]), hit("b", 0.7, [inner_hit(0, 0.7)]))
    requests, results = drive(type_search_steps(VECTOR, query, index="i", server_hybrid=True), [first, page])
    assert requests[0].params == {"search_pipeline": "i-rrf"}
    assert "hybrid" in requests[0].body["query"] and requests[0].body["stored_fields"] == "_none_"
    assert knn_specs(requests[1].body)[0]["filter"] == {"terms": {"doc_id": ["a", "b"]}}
    assert results.ids == ["a", "b"] and results.mode == "hybrid-server"
    assert results[0].rank_score == pytest.approx(0.03) and results.rank_kind == "rrf"  # what ranked it
    assert [hit.score for hit in results] == pytest.approx([0.9, 0.7])  # the best mention's k-NN score
    assert results.total is None  # these canned responses carry no hits.total
    assert results[0].mentions[0].position == 1 and results.took_ms == 4


def test_documents_without_doc_id_are_ranked_again_by_stored_id():
    query = TypeQuery("dinosaur", size=1, hybrid=True)
    no_ids = {"took": 1, "hits": {"hits": [{"_score": 0.5, "fields": {}}]}}
    with_ids = {"took": 1, "hits": {"hits": [{"_id": "x", "_score": 0.5}]}}
    page = response(hit("x", 0.8, [inner_hit(0, 0.8)]))
    requests, results = drive(type_search_steps(VECTOR, query, index="i", server_hybrid=True),
                              [no_ids, with_ids, page])
    assert requests[1].body["_source"] is False and "docvalue_fields" not in requests[1].body
    assert knn_specs(requests[2].body)[0]["filter"] == {"ids": {"values": ["x"]}}
    assert results.ids == ["x"]


def test_client_hybrid_fuses_both_rankings_then_fetches_the_page():
    query = TypeQuery("dinosaur", size=3, hybrid=True)
    knn = ranked(("a", 0.9), ("b", 0.8))
    bm25 = ranked(("c", 7.0), ("b", 5.0))
    page = response(hit("c", 0.6, [inner_hit(3, 0.6)]), hit("b", 0.8, [inner_hit(0, 0.8)]),
                    hit("a", 0.9, [inner_hit(0, 0.9)]))
    requests, results = drive(type_search_steps(VECTOR, query, index="i", server_hybrid=False),
                              [(knn, bm25), page])
    assert isinstance(requests[0], MultiSearchRequest) and len(requests[0].bodies) == 2
    assert all(body["stored_fields"] == "_none_" for body in requests[0].bodies)
    assert results.ids == ["b", "a", "c"]
    assert results[2].mentions[0].position == 3 and results.mode == "hybrid-client"
    assert results[0].rank_score == pytest.approx(1 / 62 + BM25_WEIGHT / 62)
    assert [hit.score for hit in results] == pytest.approx([0.8, 0.9, 0.6])  # one scale, not the fused one
    assert (results.total, results.total_relation) == (3, "gte")  # the rankings gave no count: a lower bound


def test_rrf_weights_scale_each_ranking():
    assert rrf_fuse([["a"], ["b"]], weights=(1.0, 0.5)) == [("a", 1 / 61), ("b", 0.5 / 61)]
    with pytest.raises(ValueError):
        rrf_fuse([["a"], ["b"]], weights=(1.0,))


def test_type_queries_default_to_knn_alone():
    assert TypeQuery("dinosaur").hybrid is False and TypeQuery("dinosaur").mode == "knn"
    assert TypeQuery("dinosaur", hybrid=True).mode == "hybrid"


def test_an_empty_fused_page_sends_no_fetch():
    requests, results = drive(type_search_steps(VECTOR, TypeQuery("x", offset=5, hybrid=True), index="i", server_hybrid=True),
                              [ranked(("a", 0.1))])
    assert len(requests) == 1 and results.ids == []


def test_no_extra_request_when_every_hit_has_its_mentions():
    query = TypeQuery("dinosaur", min_score=0.5, mentions_per_hit=1)
    answer = response(hit("a", 0.9, [inner_hit(0, 0.9), inner_hit(1, 0.6)]))
    requests, results = drive(type_search_steps(VECTOR, query, index="i", server_hybrid=True), [answer])
    assert len(requests) == 1 and results.mode == "radial"
    assert [m.score for m in results[0].mentions] == [0.9, 0.6]  # all of them, not mentions_per_hit


# ----- the stored search template


def render_mustache(source, params):
    """The few mustache forms the template uses: {{#toJson}}x{{/toJson}} and {{x}}{{^x}}default{{/x}}."""
    import re

    source = re.sub(r"\{\{#toJson\}\}(\w+)\{\{/toJson\}\}", lambda m: json.dumps(params[m.group(1)]), source)
    source = re.sub(r"\{\{(\w+)\}\}\{\{\^\1\}\}([^{]*)\{\{/\1\}\}",
                    lambda m: str(params[m.group(1)]) if params.get(m.group(1)) else m.group(2), source)
    assert "{{" not in source, source
    return json.loads(source)


def test_search_template_renders_the_knn_body():
    from ner_os.query import template_params
    from ner_os.store.search import search_template_script

    source = search_template_script()["script"]["source"]
    query = TypeQuery("dinosaur", size=7, k=150, hybrid=False, mentions_per_hit=4)
    assert render_mustache(source, template_params(VECTOR, query)) == knn_search_body(VECTOR, query)
    assert render_mustache(source, {"vector": VECTOR}) == knn_search_body(VECTOR, TypeQuery("x", hybrid=False))


def test_template_request_sends_only_the_id_and_params():
    from ner_os.query import template_request_line

    head, body = template_request_line("ner-os", "ner-os-type-query", VECTOR, TypeQuery("x", hybrid=False)).split("\n", 1)
    assert head == "GET ner-os/_search/template"
    assert json.loads(body) == {"id": "ner-os-type-query", "params": {"vector": VECTOR, "k": 200, "size": 10, "mentions": 3}}


# ----- CLI helpers: filter arguments


def test_filter_args_parse_terms_lists_and_ranges():
    from ner_os.query import parse_filter_args

    assert parse_filter_args(["metadata.lang=en", "metadata.lang=de", "metadata.year>=2000", "metadata.year<2010"]) == {
        "metadata.lang": ["en", "de"], "metadata.year": {"gte": "2000", "lt": "2010"}}
    for bad in (["lang"], ["=en"], ["lang="]):
        with pytest.raises(NerOsError, match="FIELD=VALUE"):
            parse_filter_args(bad)
    with pytest.raises(NerOsError, match="cannot combine"):
        parse_filter_args(["year>=1", "year=2"])


def test_client_side_fusion_uses_the_server_pipelines_rank_constant():
    from ner_os.store.schema import DEFAULT_PARAMS
    from ner_os.query import RRF_RANK_CONSTANT

    assert RRF_RANK_CONSTANT == DEFAULT_PARAMS["rrf_rank_constant"]
