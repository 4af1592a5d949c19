"""A type search as a generator of requests that receives each response.

What to ask stays apart from how requests travel: :func:`type_search_steps` yields
:class:`SearchRequest` and :class:`MultiSearchRequest` objects and returns the
:class:`ner_os.query.model.TypeResults`; :class:`ner_os.client.NerOs` drives it with the sync
client through :mod:`ner_os.store.search` (an async driver would be a loop around ``AsyncOpenSearch``).
Hybrid search fuses on the server through the neural-search ``hybrid`` query and a search pipeline
where the plugin is present, here otherwise: both give the same result shape and scores.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Generator, Mapping, Sequence

from ner_os.errors import NerOsError
from ner_os.fields import DOC_ID_FIELD
from ner_os.query.bodies import (bm25_search_body, hybrid_search_body, knn_search_body, page_body, ranking_body,
                                 search_request_line)
from ner_os.query.model import BM25_WEIGHT, QueryVector, TypeHit, TypeQuery, TypeResults
from ner_os.query.results import parse_mentions, ranked_hits, ranking, rrf_fuse, took_ms
from ner_os.store.schema import pipeline_name


@dataclass(frozen=True)
class SearchRequest:
    body: dict
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class MultiSearchRequest:
    bodies: tuple[dict, ...]


Steps = Generator["SearchRequest | MultiSearchRequest", Any, TypeResults]


def hybrid_pipeline(index: str) -> str:
    """The RRF search pipeline ``ner-os templates install`` puts up for ``index`` (neural-search only)."""
    return pipeline_name(index, "rrf")


def type_search_steps(vector: QueryVector, query: TypeQuery, *, index: str,
                      server_hybrid: bool, pipeline: str | None = None) -> Steps:
    """Yields the requests of one type query and returns its :class:`TypeResults`.

    A driver sends each yielded request (``SearchRequest`` -> ``_search``, ``MultiSearchRequest``
    -> ``_msearch``, answered with the list of responses) and sends the response back in.

    k-NN and radial: one request returns the page with its mentions. Hybrid: the rankings come
    back as bare ids and scores (fused on the server, or here by RRF), then one request fetches
    the page's documents and scores their mentions.
    """
    if not query.hybrid:
        response = yield SearchRequest(knn_search_body(vector, query))
        by_id = {hit["_id"]: hit for hit in ranked_hits(response)}
        page = [(by_id[doc_id], score) for doc_id, score in ranking(response)[query.offset:query.window]]
        return _results(query, index, query.mode, page, took_ms(response))
    if server_hybrid:
        params = {"search_pipeline": pipeline or hybrid_pipeline(index)}
        (fused,), took, by_doc_id = yield from _rankings([hybrid_search_body(vector, query)], params)
        mode = "hybrid-server"
    else:
        (knn, bm25), took, by_doc_id = yield from _rankings([knn_search_body(vector, query), bm25_search_body(query)])
        fused = rrf_fuse([[doc_id for doc_id, _ in knn], [doc_id for doc_id, _ in bm25]], weights=(1.0, BM25_WEIGHT))
        mode = "hybrid-client"
    wanted = fused[query.offset:query.window]
    if not wanted:
        return _results(query, index, mode, [], took)
    response = yield SearchRequest(page_body(vector, [doc_id for doc_id, _ in wanted], query.mention_limit,
                                             by_doc_id=by_doc_id))
    took += took_ms(response)
    fetched = {(hit["_source"].get(DOC_ID_FIELD) if by_doc_id else hit["_id"]): hit for hit in ranked_hits(response)}
    # a document deleted between the two requests drops out of the page
    page = [(fetched[doc_id], score) for doc_id, score in wanted if doc_id in fetched]
    return _results(query, index, mode, page, took)


def _rankings(bodies: Sequence[dict], params: Mapping[str, Any] | None = None):
    """Sub-steps: each body's ranking as (id, score) pairs, the time taken, and whether the ids are doc_ids."""
    took = 0.0
    for stored_ids in (False, True):
        requests = [ranking_body(body, stored_ids=stored_ids) for body in bodies]
        if len(requests) == 1:
            responses = [(yield SearchRequest(requests[0], dict(params or {})))]
        else:
            responses = yield MultiSearchRequest(tuple(requests))
        took += sum(took_ms(response) for response in responses)
        rankings = [ranking(response) for response in responses]
        if all(ranked is not None for ranked in rankings):
            return rankings, took, not stored_ids
    raise NerOsError("the search returned hits without ids")  # _id is always there with stored fields


def _results(query: TypeQuery, index: str, mode: str, page: Sequence[tuple[Mapping[str, Any], float]],
             took: float) -> TypeResults:
    hits = tuple(TypeHit(id=str(hit["_id"]), score=score, source=dict(hit.get("_source") or {}),
                         mentions=parse_mentions(hit, query.mention_limit, query.kept_margin))
                 for hit, score in page)
    return TypeResults(description=query.description, index=index, mode=mode, offset=query.offset, hits=hits,
                       took_ms=took)


def dsl_request(vector: QueryVector, query: TypeQuery, *, index: str, server_hybrid: bool,
                pipeline: str | None = None) -> str:
    """The one request Dev Tools needs for this query (without server-side fusion, the k-NN one)."""
    if query.hybrid and server_hybrid:
        return search_request_line(index, hybrid_search_body(vector, query),
                                   {"search_pipeline": pipeline or hybrid_pipeline(index)})
    knn_only = dataclasses.replace(query, hybrid=False)
    return search_request_line(index, knn_search_body(vector, knn_only))


def drive(steps: Steps, send: Callable[["SearchRequest | MultiSearchRequest"], Any]) -> TypeResults:
    """Run a query's steps: each request they yield goes through ``send`` (the caller's I/O, e.g.
    :func:`ner_os.store.search.send`) and its answer goes back in; returns the steps' result."""
    try:
        request = next(steps)
        while True:
            request = steps.send(send(request))
    except StopIteration as stop:
        return stop.value
