"""The request bodies of a type query, and the Dev Tools request lines.

Rules the builders keep (each one is a known server pitfall):

- a ``nested`` query on ``mentions`` with ``score_mode: max`` (a document scores as its best
  mention) around a ``knn`` clause with ``expand_nested_docs`` (every mention of a hit document is
  scored, so ``inner_hits`` can show them best first);
- filters go inside the nested ``knn`` clause (``knn.filter``), never on the ``hybrid`` query: a
  hybrid-level filter is not pushed into a nested knn sub-query (neural-search #1759);
- a filter holds root-level conditions only: mixing root and nested conditions in one efficient
  k-NN filter returns nothing (k-NN #3047);
- ``hybrid`` is always the top-level query, never wrapped in another one;
- vectors never come back: ``_source`` and ``inner_hits`` exclude ``mentions.vector``.

Wherever a vector goes, a :class:`~ner_os.query.model.NeuralText` may go instead: the clause is then
``neural`` with ``query_text`` (ML Commons turns the words into the type vector on the cluster),
with the same ``k`` / ``min_score``, ``filter``, ``expand_nested_docs`` and ``inner_hits``.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from ner_os.fields import DOC_ID_FIELD, MENTIONS_PATH, SOURCE_WITHOUT_VECTORS, TEXT_FIELD, VECTOR_FIELD
from ner_os.query.filters import filter_clause
from ner_os.query.model import BM25_ANALYZER, BM25_MINIMUM_SHOULD_MATCH, NeuralText, QueryVector, TypeQuery


def knn_clause(vector: QueryVector, *, k: int | None = None, min_score: float | None = None,
               filter: dict | None = None, expand_nested_docs: bool = True) -> dict:
    """The ``knn`` clause on the mention vectors: top ``k`` documents, or radial with ``min_score``
    (``neural`` with ``query_text`` for a :class:`NeuralText`)."""
    if (k is None) == (min_score is None):
        raise ValueError("a knn clause takes exactly one of k and min_score")
    kind = "neural" if isinstance(vector, NeuralText) else "knn"
    spec: dict[str, Any] = vector.spec() if isinstance(vector, NeuralText) else {"vector": list(vector)}
    if k is not None:
        spec["k"] = int(k)
    else:
        spec["min_score"] = float(min_score)
    if filter is not None:
        spec["filter"] = filter
    if expand_nested_docs:
        spec["expand_nested_docs"] = True
    return {kind: {VECTOR_FIELD: spec}}


def nested_knn_query(vector: QueryVector, *, k: int | None = None, min_score: float | None = None,
                     filter: dict | None = None, inner_hits_size: int = 3) -> dict:
    """Documents scored by their best mention, with the mentions themselves as ``inner_hits``.

    Radial search matches every mention above the threshold by itself, so it needs no
    ``expand_nested_docs``; top-k search sets it so that all mentions of a hit get scored.
    """
    return {
        "nested": {
            "path": MENTIONS_PATH,
            "score_mode": "max",
            "query": knn_clause(vector, k=k, min_score=min_score, filter=filter,
                                expand_nested_docs=min_score is None),
            "inner_hits": {"size": int(inner_hits_size), "_source": SOURCE_WITHOUT_VECTORS},
        }
    }


def bm25_query(description: str, filter: dict | None = None, *, safe: bool = True) -> dict:
    """BM25 on the document text against the description (filters applied as a non-scoring clause).
    ``safe`` (hybrid search's leg): stopwords dropped from the description, every other word required
    (see :data:`BM25_ANALYZER`); not safe: the plain ``match`` (the eval's BM25 baseline)."""
    options = {"analyzer": BM25_ANALYZER, "minimum_should_match": BM25_MINIMUM_SHOULD_MATCH} if safe else {}
    match = {"match": {TEXT_FIELD: {"query": description, **options}}}
    if filter is None:
        return match
    return {"bool": {"must": [match], "filter": [filter]}}


def _body(query: dict, size: int) -> dict:
    return {"size": int(size), "_source": SOURCE_WITHOUT_VECTORS, "query": query}


def knn_search_body(vector: QueryVector, query: TypeQuery) -> dict:
    """The k-NN leg (and the whole request in knn and radial modes)."""
    filter = filter_clause(query.filters)
    if query.min_score is not None:
        clause = nested_knn_query(vector, min_score=query.min_score, filter=filter,
                                  inner_hits_size=query.mention_limit)
        return _body(clause, query.window)
    clause = nested_knn_query(vector, k=query.knn_k, filter=filter, inner_hits_size=query.mentions_per_hit)
    size = query.depth if query.hybrid else query.window
    return _body(clause, size)


def bm25_search_body(query: TypeQuery) -> dict:
    """The BM25 leg of client-side fusion."""
    return _body(bm25_query(query.description, filter_clause(query.filters)), query.depth)


def hybrid_search_body(vector: QueryVector, query: TypeQuery) -> dict:
    """One request the neural-search plugin fuses (send it with ``search_pipeline``).

    ``hybrid`` stays the top-level query and takes no filter of its own: each sub-query carries
    the filter (inside the nested knn clause for the k-NN leg). The ``inner_hits`` it asks for come
    back from neural-search 3.0 on; 2.19 drops them and :func:`type_search_steps` fetches them.
    """
    filter = filter_clause(query.filters)
    return {
        "size": query.window,
        "_source": SOURCE_WITHOUT_VECTORS,
        "query": {
            "hybrid": {
                "queries": [
                    bm25_query(query.description, filter),
                    nested_knn_query(vector, k=query.knn_k, filter=filter, inner_hits_size=query.mentions_per_hit),
                ],
                "pagination_depth": query.depth,
            }
        },
    }


def page_body(vector: QueryVector, ids: Sequence[str], mention_limit: int, *, by_doc_id: bool = False) -> dict:
    """The documents of a fused page: their source (no vectors) and their mentions scored as ``inner_hits``.

    The id filter holds only a root condition, so it can sit inside the nested knn clause; ``k``
    covers every listed document. ``by_doc_id``: the ids are ``doc_id`` values, not ``_id``s.
    """
    ids = list(ids)
    filter = {"terms": {DOC_ID_FIELD: ids}} if by_doc_id else {"ids": {"values": ids}}
    clause = nested_knn_query(vector, k=max(1, len(ids)), filter=filter, inner_hits_size=mention_limit)
    return {"size": len(ids), "_source": SOURCE_WITHOUT_VECTORS, "query": clause}


def ranking_body(body: dict, *, stored_ids: bool = False) -> dict:
    """``body`` cut down to what a ranking needs: ids and scores, no source, no inner hits.

    A ner-os document's stored ``_source`` holds every mention vector: loading stored fields (even
    just ``_id``) for the ``depth`` hits of a ranking costs several times the search itself (on
    100,000 mentions: 60-100 ms against 2-3 ms), so the ids come from the ``doc_id`` doc values.
    ``stored_ids``: from ``_id`` instead, for documents written without ``doc_id``.
    """
    out = {key: value for key, value in body.items() if key != "_source"}
    out["query"] = _without_inner_hits(body["query"])
    if stored_ids:
        out["_source"] = False
    else:
        out["stored_fields"] = "_none_"
        out["docvalue_fields"] = [DOC_ID_FIELD]
    return out


def _without_inner_hits(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _without_inner_hits(value) for key, value in node.items() if key != "inner_hits"}
    if isinstance(node, list):
        return [_without_inner_hits(value) for value in node]
    return node


def search_request_line(index: str, body: dict, params: Mapping[str, Any] | None = None) -> str:
    """The request as Dashboards Dev Tools takes it: ``GET index/_search?…`` then the JSON body."""
    query = "&".join(f"{key}={value}" for key, value in (params or {}).items())
    head = f"GET {index}/_search" + (f"?{query}" if query else "")
    return head + "\n" + json.dumps(body, indent=2)


def template_params(vector: QueryVector, query: TypeQuery) -> dict:
    return {"vector": list(vector), "k": query.knn_k, "size": query.window, "mentions": query.mentions_per_hit}


def template_request_line(index: str, template_id: str, vector: QueryVector, query: TypeQuery) -> str:
    body = {"id": template_id, "params": template_params(vector, query)}
    return f"GET {index}/_search/template\n" + json.dumps(body, indent=2)
