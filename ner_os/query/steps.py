"""A type search as a generator of requests that receives each response.

What to ask stays apart from how requests travel: :func:`type_search_steps` yields
:class:`SearchRequest` and :class:`MultiSearchRequest` objects and returns the
:class:`ner_os.query.model.TypeResults`; :class:`ner_os.client.NerOs` drives it with the sync
client through :mod:`ner_os.store.search`, :class:`ner_os.client.AsyncNerOs` drives the same steps with
:func:`drive_async` over ``AsyncOpenSearch``, and :func:`batch_steps` runs several queries' steps side by
side so that each round is one ``_msearch`` (``search_types``).
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
from ner_os.query.results import fused_total, hits_total, parse_mentions, ranked_hits, ranking, rrf_fuse, took_ms
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
        return _results(query, index, query.mode, page, took_ms(response), hits_total(response))
    if server_hybrid:
        params = {"search_pipeline": pipeline or hybrid_pipeline(index)}
        (fused,), took, by_doc_id, (total,) = yield from _rankings([hybrid_search_body(vector, query)], params)
        mode = "hybrid-server"
    else:
        rankings, took, by_doc_id, totals = yield from _rankings([knn_search_body(vector, query),
                                                                  bm25_search_body(query)])
        fused = rrf_fuse([[doc_id for doc_id, _ in ranked] for ranked in rankings], weights=(1.0, BM25_WEIGHT))
        mode, total = "hybrid-client", fused_total(totals, rankings, fused)
    wanted = fused[query.offset:query.window]
    if not wanted:
        return _results(query, index, mode, [], took, total)
    response = yield SearchRequest(page_body(vector, [doc_id for doc_id, _ in wanted], query.mention_limit,
                                             by_doc_id=by_doc_id))
    took += took_ms(response)
    fetched = {(hit["_source"].get(DOC_ID_FIELD) if by_doc_id else hit["_id"]): hit for hit in ranked_hits(response)}
    # a document deleted between the two requests drops out of the page
    page = [(fetched[doc_id], score) for doc_id, score in wanted if doc_id in fetched]
    return _results(query, index, mode, page, took, total)


def _rankings(bodies: Sequence[dict], params: Mapping[str, Any] | None = None):
    """Sub-steps: each body's ranking as (id, score) pairs, the time taken, whether the ids are doc_ids,
    and each body's ``hits.total``."""
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
            return rankings, took, not stored_ids, [hits_total(response) for response in responses]
    raise NerOsError("the search returned hits without ids")  # _id is always there with stored fields


def _results(query: TypeQuery, index: str, mode: str, page: Sequence[tuple[Mapping[str, Any], float]],
             took: float, total: tuple[int | None, str]) -> TypeResults:
    """The page's hits, each scored by its best mention (the one scale, SCORE_SCALE) and ranked by ``rank_score``."""
    hits = []
    for hit, rank_score in page:
        mentions = parse_mentions(hit, query.mention_limit, query.kept_margin)
        best = max((mention.score for mention in mentions), default=rank_score if mode in ("knn", "radial") else 0.0)
        hits.append(TypeHit(id=str(hit["_id"]), score=best, source=dict(hit.get("_source") or {}), mentions=mentions,
                            rank_score=rank_score))
    return TypeResults(description=query.description, index=index, mode=mode, offset=query.offset, hits=tuple(hits),
                       took_ms=took, total=total[0], total_relation=total[1])


def dsl_request(vector: QueryVector, query: TypeQuery, *, index: str, server_hybrid: bool,
                pipeline: str | None = None) -> str:
    """The one request Dev Tools needs for this query (without server-side fusion, the k-NN one)."""
    if query.hybrid and server_hybrid:
        return search_request_line(index, hybrid_search_body(vector, query),
                                   {"search_pipeline": pipeline or hybrid_pipeline(index)})
    knn_only = dataclasses.replace(query, hybrid=False)
    return search_request_line(index, knn_search_body(vector, knn_only))


def with_vector(steps: Steps, vector: Any) -> Steps:
    """``steps`` whose results carry ``vector`` (the type vector searched with, what feedback refines)."""
    results = yield from steps
    return dataclasses.replace(results, vector=vector)


@dataclass(frozen=True)
class BatchRequest:
    """The requests several queries' steps wait on at once: ``(index, request)`` pairs, which
    :func:`ner_os.store.search.send_batch` sends together and answers in order (an error for a failed one)."""

    requests: tuple[tuple[str, "SearchRequest | MultiSearchRequest"], ...]


def batch_steps(searches: Sequence[tuple[str, Generator]]) -> Generator[BatchRequest, Sequence[Any], list[Any]]:
    """Several queries' steps (``(index, steps)`` pairs) run side by side: each round yields one
    :class:`BatchRequest` of every query's next request and feeds each its answer (a
    :class:`ner_os.errors.NerOsError` answer is raised inside that query's steps). Returns per query,
    in order, its result or the error that ended it."""
    outcomes: list[Any] = [None] * len(searches)
    pending: dict[int, Any] = {}

    def advance(number: int, answer: Any) -> None:  # answer None: start the steps
        steps = searches[number][1]
        try:
            pending[number] = steps.throw(answer) if isinstance(answer, NerOsError) else steps.send(answer)
        except StopIteration as stop:
            outcomes[number] = stop.value
            pending.pop(number, None)
        except NerOsError as error:
            outcomes[number] = error
            pending.pop(number, None)

    for number in range(len(searches)):
        advance(number, None)
    while pending:
        order = sorted(pending)
        answers = yield BatchRequest(tuple((searches[number][0], pending[number]) for number in order))
        for number, answer in zip(order, answers, strict=True):
            advance(number, answer)
    return outcomes


async def drive_async(steps: Generator, send: Callable[[Any], Any]) -> Any:
    """:func:`drive` with an async ``send`` (e.g. :func:`ner_os.store.async_connection.send`): the same steps."""
    try:
        request = next(steps)
        while True:
            request = steps.send(await send(request))
    except StopIteration as stop:
        return stop.value


def drive(steps: Steps, send: Callable[["SearchRequest | MultiSearchRequest"], Any]) -> TypeResults:
    """Run a query's steps: each request they yield goes through ``send`` (the caller's I/O, e.g.
    :func:`ner_os.store.search.send`) and its answer goes back in; returns the steps' result."""
    try:
        request = next(steps)
        while True:
            request = steps.send(send(request))
    except StopIteration as stop:
        return stop.value
