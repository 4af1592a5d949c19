"""Type queries: the query builder, the search steps, and :func:`search_type`.

A type query finds the documents whose mentions lie nearest to the type description's vector
(DESIGN §4): a ``nested`` query on ``mentions`` with ``score_mode: max`` (a document scores as its
best mention) around a ``knn`` clause with ``expand_nested_docs`` (every mention of a hit document
is scored, so ``inner_hits`` can show them best first). Hybrid mode adds BM25 on ``text`` against
the description and fuses the two rankings by reciprocal rank fusion (RRF): on the server through
the neural-search ``hybrid`` query and a search pipeline where the plugin is present, in this
module otherwise. Both give the same result shape, and the same scores for the same rankings.

Rules the builders keep (each one is a known server pitfall):

- filters go inside the nested ``knn`` clause (``knn.filter``), never on the ``hybrid`` query: a
  hybrid-level filter is not pushed into a nested knn sub-query (neural-search #1759);
- a filter holds root-level conditions only: mixing root and nested conditions in one efficient
  k-NN filter returns nothing (k-NN #3047);
- ``hybrid`` is always the top-level query, never wrapped in another one;
- vectors never come back: ``_source`` and ``inner_hits`` exclude ``mentions.vector``.

The search itself is a generator of requests (:func:`type_search_steps`) that receives each
response: what to ask stays apart from how requests travel (:class:`ner_os.client.NerOs` drives it
with the sync client; an async driver would be a loop around ``AsyncOpenSearch``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Generator, Iterable, Mapping, Sequence

import numpy as np

from ner_os.checks import check_description, check_fraction
from ner_os.errors import NerOsError

MENTIONS_PATH = "mentions"
DOC_ID_FIELD = "doc_id"  # a keyword copy of _id that ner-os load writes into every document
VECTOR_FIELD = "mentions.vector"
TEXT_FIELD = "text"
RRF_RANK_CONSTANT = 60  # the rank_constant ner_os.store.index gives the RRF search pipeline, used by client-side fusion too
MAX_WINDOW = 10_000  # index.max_result_window and the k-NN plugin's largest k
MAX_INNER_HITS = 100  # index.max_inner_result_window's default
DEFAULT_DEPTH = 100  # documents each ranking contributes before fusion (and the default k)
SOURCE_WITHOUT_VECTORS = {"excludes": [VECTOR_FIELD]}
RANGE_OPERATORS = frozenset({"gt", "gte", "lt", "lte"})
# a hit keeps the mentions scoring at least its best one's score minus this: chosen on held-out train
# types by bench/highlight.py (F1 of the kept mentions being of the query's type: 0.72 keeping all
# three -> 0.83; on the test types' detected spans 0.75 -> 0.76, precision 0.60 -> 0.68)
MENTION_MARGIN = 0.1


# ---------------------------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class MentionMatch:
    """One mention of a hit document and how well it fits the type (k-NN score, higher is closer)."""

    surface: str
    start: int
    end: int
    score: float
    position: int  # index of the mention in the document's ``mentions`` array
    types: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"surface": self.surface, "start": self.start, "end": self.end, "score": self.score,
                "position": self.position, "types": list(self.types)}


@dataclass(frozen=True)
class TypeHit:
    """A document that mentions an entity of the type, with its matched mentions best first."""

    id: str
    score: float
    source: dict[str, Any]
    mentions: tuple[MentionMatch, ...]

    @property
    def text(self) -> str:
        return str(self.source.get(TEXT_FIELD, ""))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "score": self.score, "source": self.source,
                "mentions": [mention.to_dict() for mention in self.mentions]}


@dataclass(frozen=True)
class TypeResults:
    """One page of a type query."""

    description: str
    index: str
    mode: str  # knn | radial | hybrid-server | hybrid-client
    offset: int
    hits: tuple[TypeHit, ...]
    took_ms: float = 0.0  # the cluster's own time (sum of the requests' ``took``)

    def __iter__(self):
        return iter(self.hits)

    def __len__(self) -> int:
        return len(self.hits)

    def __getitem__(self, item):
        return self.hits[item]

    @property
    def ids(self) -> list[str]:
        return [hit.id for hit in self.hits]


# ---------------------------------------------------------------------------------------------
# what the user asks for


@dataclass(frozen=True)
class TypeQuery:
    """A checked type query: what to look for and which page of results to return.

    ``min_score`` switches to radial search: every mention scoring at least that much (k-NN score,
    ``(1 + cosine) / 2`` for the ``cosinesimil`` space) comes back, k-NN only (no BM25).
    ``mention_margin``: of a hit's best ``mentions_per_hit`` mentions, those scoring less than the best
    one minus this are left out (most documents also mention entities of other types); None keeps
    them. Radial search ignores it: its ``min_score`` already says which mentions match.
    """

    description: str
    size: int = 10
    offset: int = 0
    k: int | None = None
    hybrid: bool = True
    min_score: float | None = None
    filters: Mapping[str, Any] | None = None
    mentions_per_hit: int = 3
    mention_margin: float | None = MENTION_MARGIN

    def __post_init__(self):
        object.__setattr__(self, "description", check_description(self.description))
        for name, low in (("size", 1), ("offset", 0), ("mentions_per_hit", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise NerOsError(f"{name} must be an integer >= {low}, got {value!r}")
        if self.offset + self.size > MAX_WINDOW:
            raise NerOsError(f"offset + size must be at most {MAX_WINDOW}, got {self.offset + self.size}")
        if self.k is not None and (isinstance(self.k, bool) or not isinstance(self.k, int)
                                   or not 1 <= self.k <= MAX_WINDOW):
            raise NerOsError(f"k must be an integer in [1, {MAX_WINDOW}], got {self.k!r}")
        if self.min_score is not None:
            object.__setattr__(self, "min_score", check_fraction("min_score", self.min_score, " (k-NN score)"))
            object.__setattr__(self, "hybrid", False)
        if self.mention_margin is not None:
            object.__setattr__(self, "mention_margin", check_fraction("mention_margin", self.mention_margin, " or None"))
        if self.mentions_per_hit > MAX_INNER_HITS:
            raise NerOsError(f"mentions_per_hit must be at most {MAX_INNER_HITS}, got {self.mentions_per_hit}")
        object.__setattr__(self, "filters", dict(self.filters) if self.filters else None)
        filter_clause(self.filters)  # checked now, so that a bad filter fails before any request

    @property
    def window(self) -> int:
        """How many ranked documents the page needs: everything up to its end."""
        return self.offset + self.size

    @property
    def depth(self) -> int:
        """Documents per ranking before fusion (and the k-NN ``k``).

        It stays the same from page to page (until the page runs past it), so that paging never
        reshuffles the fused ranking (neural-search pagination_depth).
        """
        return min(MAX_WINDOW, max(self.k or DEFAULT_DEPTH, self.window))

    @property
    def mention_limit(self) -> int:
        """Mentions returned per document: radial search returns every one above the threshold."""
        return MAX_INNER_HITS if self.min_score is not None else self.mentions_per_hit

    @property
    def kept_margin(self) -> float | None:
        """The margin applied to a hit's mentions: none in radial search."""
        return None if self.min_score is not None else self.mention_margin

    @property
    def mode(self) -> str:
        if self.min_score is not None:
            return "radial"
        return "hybrid" if self.hybrid else "knn"


def filter_clause(filters: Mapping[str, Any] | None) -> dict | None:
    """Root-level metadata conditions as one ``bool.filter`` clause (None when there are none).

    ``{"lang": "en"}`` -> term, ``{"lang": ["en", "de"]}`` -> terms, ``{"year": {"gte": 2000}}`` ->
    range. Conditions on ``mentions.*`` are refused: they would mix nested and root conditions in
    one efficient k-NN filter, which matches nothing (k-NN #3047).
    """
    if not filters:
        return None
    clauses = []
    for name, value in sorted(filters.items()):
        if not isinstance(name, str) or not name.strip():
            raise NerOsError(f"a filter needs a field name, got {name!r}")
        if name == MENTIONS_PATH or name.startswith(MENTIONS_PATH + "."):
            raise NerOsError(f"filter on {name!r}: filters apply to document fields only, not to "
                             f"{MENTIONS_PATH}.* (nested and root conditions cannot share a k-NN filter)")
        if isinstance(value, Mapping):
            unknown = set(value) - RANGE_OPERATORS
            if unknown or not value:
                raise NerOsError(f"filter on {name!r}: a range takes {', '.join(sorted(RANGE_OPERATORS))}, "
                                 f"got {sorted(map(str, value)) or 'nothing'}")
            clauses.append({"range": {name: dict(value)}})
        elif isinstance(value, (list, tuple, set, frozenset)):
            if not value:
                raise NerOsError(f"filter on {name!r}: an empty list matches nothing")
            clauses.append({"terms": {name: sorted(value, key=str) if isinstance(value, (set, frozenset)) else list(value)}})
        elif value is None:
            raise NerOsError(f"filter on {name!r}: no value given")
        else:
            clauses.append({"term": {name: value}})
    return {"bool": {"filter": clauses}}


FILTER_OPERATORS = ((">=", "gte"), ("<=", "lte"), (">", "gt"), ("<", "lt"), ("=", None))


def parse_filter_args(args: Iterable[str]) -> dict[str, Any]:
    """``FIELD=VALUE`` (repeat a field for any of several values), ``FIELD>=VALUE``, ``>``, ``<=``, ``<``."""
    filters: dict[str, Any] = {}
    for arg in args:
        for symbol, operator in FILTER_OPERATORS:
            name, found, value = arg.partition(symbol)
            if found:
                break
        else:
            raise NerOsError(f"filter {arg!r}: expected FIELD=VALUE (or FIELD>=VALUE, >, <=, <)")
        name, value = name.strip(), value.strip()
        if not name or not value:
            raise NerOsError(f"filter {arg!r}: expected FIELD=VALUE with both sides non-empty")
        if operator is not None:
            filters.setdefault(name, {})
            if not isinstance(filters[name], dict):
                raise NerOsError(f"filter on {name!r}: cannot combine = with a range")
            filters[name][operator] = value
        elif name in filters:
            if isinstance(filters[name], dict):
                raise NerOsError(f"filter on {name!r}: cannot combine = with a range")
            previous = filters[name]
            filters[name] = (previous if isinstance(previous, list) else [previous]) + [value]
        else:
            filters[name] = value
    return filters


# ---------------------------------------------------------------------------------------------
# query clauses


def knn_clause(vector: Sequence[float], *, k: int | None = None, min_score: float | None = None,
               filter: dict | None = None, expand_nested_docs: bool = True) -> dict:
    """The ``knn`` clause on the mention vectors: top ``k`` documents, or radial with ``min_score``."""
    if (k is None) == (min_score is None):
        raise ValueError("a knn clause takes exactly one of k and min_score")
    spec: dict[str, Any] = {"vector": list(vector)}
    if k is not None:
        spec["k"] = int(k)
    else:
        spec["min_score"] = float(min_score)
    if filter is not None:
        spec["filter"] = filter
    if expand_nested_docs:
        spec["expand_nested_docs"] = True
    return {"knn": {VECTOR_FIELD: spec}}


def nested_knn_query(vector: Sequence[float], *, k: int | None = None, min_score: float | None = None,
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


def bm25_query(description: str, filter: dict | None = None) -> dict:
    """BM25 on the document text against the description (filters applied as a non-scoring clause)."""
    match = {"match": {TEXT_FIELD: {"query": description}}}
    if filter is None:
        return match
    return {"bool": {"must": [match], "filter": [filter]}}


def _body(query: dict, size: int) -> dict:
    return {"size": int(size), "_source": SOURCE_WITHOUT_VECTORS, "query": query}


def knn_search_body(vector: Sequence[float], query: TypeQuery) -> dict:
    """The k-NN leg (and the whole request in knn and radial modes)."""
    filter = filter_clause(query.filters)
    if query.min_score is not None:
        clause = nested_knn_query(vector, min_score=query.min_score, filter=filter,
                                  inner_hits_size=query.mention_limit)
        return _body(clause, query.window)
    clause = nested_knn_query(vector, k=query.depth, filter=filter, inner_hits_size=query.mentions_per_hit)
    size = query.depth if query.hybrid else query.window
    return _body(clause, size)


def bm25_search_body(query: TypeQuery) -> dict:
    """The BM25 leg of client-side fusion."""
    return _body(bm25_query(query.description, filter_clause(query.filters)), query.depth)


def hybrid_search_body(vector: Sequence[float], query: TypeQuery) -> dict:
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
                    nested_knn_query(vector, k=query.depth, filter=filter, inner_hits_size=query.mentions_per_hit),
                ],
                "pagination_depth": query.depth,
            }
        },
    }


def page_body(vector: Sequence[float], ids: Sequence[str], mention_limit: int, *, by_doc_id: bool = False) -> dict:
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


# ---------------------------------------------------------------------------------------------
# the stored search template (Dev Tools sends only the vector)

SEARCH_TEMPLATE_FILE = Path(__file__).resolve().parents[2] / "index_templates" / "search_templates" / "type_query.json"


def search_template_id(index: str) -> str:
    return f"{index}-type-query"


def search_template_script() -> dict:
    """The stored script body (``{"script": {"lang": "mustache", "source": ...}}``)."""
    if not SEARCH_TEMPLATE_FILE.is_file():
        raise NerOsError(f"search template file {SEARCH_TEMPLATE_FILE} is missing (run ner-os from a clone)")
    return {"script": json.loads(SEARCH_TEMPLATE_FILE.read_text())["script"]}


def install_search_template(client, index: str) -> str:
    """Store the type-query template as ``<index>-type-query`` (idempotent); its id."""
    from opensearchpy import exceptions as os_errors

    from ner_os.errors import ClusterError

    template_id = search_template_id(index)
    try:
        client.put_script(id=template_id, body=search_template_script())
    except os_errors.TransportError as error:
        hint = " (the cluster lacks the lang-mustache module)" if "mustache" in str(error) else ""
        raise ClusterError(f"storing search template {template_id} failed{hint}: {error}") from None
    return template_id


def template_params(vector: Sequence[float], query: TypeQuery) -> dict:
    return {"vector": list(vector), "k": query.depth, "size": query.window, "mentions": query.mentions_per_hit}


def template_request_line(index: str, template_id: str, vector: Sequence[float], query: TypeQuery) -> str:
    body = {"id": template_id, "params": template_params(vector, query)}
    return f"GET {index}/_search/template\n" + json.dumps(body, indent=2)


# ---------------------------------------------------------------------------------------------
# responses


def parse_mentions(hit: Mapping[str, Any], limit: int | None = None,
                   margin: float | None = None) -> tuple[MentionMatch, ...]:
    """The mentions in a hit's ``inner_hits``, best first (ties by position); () when absent.

    ``limit``: at most that many; ``margin``: only those scoring at least the best one's score minus it.
    """
    inner = (hit.get("inner_hits") or {}).get(MENTIONS_PATH)
    if not inner:
        return ()
    mentions = []
    for item in inner.get("hits", {}).get("hits", []):
        source = item.get("_source") or {}
        mentions.append(MentionMatch(
            surface=str(source.get("surface", "")),
            start=int(source.get("start", -1)),
            end=int(source.get("end", -1)),
            score=float(item.get("_score") or 0.0),
            position=int((item.get("_nested") or {}).get("offset", -1)),
            types=tuple(_as_list(source.get("types"))),
        ))
    mentions.sort(key=lambda mention: (-mention.score, mention.position))
    if margin is not None and mentions:
        kept = within_margin(np.asarray([mention.score for mention in mentions]), margin)
        mentions = [mention for mention, keep in zip(mentions, kept) if keep]
    return tuple(mentions[:limit] if limit is not None else mentions)


def within_margin(scores: np.ndarray, margin: float) -> np.ndarray:
    """Per score of one hit's mentions, best first: at least the best one's minus ``margin``."""
    return scores >= scores[0] - margin - 1e-9  # scores arrive as float32 rounded to JSON


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def ranked_hits(response: Mapping[str, Any]) -> list[dict]:
    return list(response.get("hits", {}).get("hits", []))


def hit_id(hit: Mapping[str, Any]) -> str | None:
    """``_id``, or the ``doc_id`` doc value of a hit fetched without stored fields."""
    if hit.get("_id") is not None:
        return str(hit["_id"])
    values = (hit.get("fields") or {}).get(DOC_ID_FIELD) or [None]
    return None if values[0] is None else str(values[0])


def ranking(response: Mapping[str, Any]) -> list[tuple[str, float]] | None:
    """(id, score) pairs, score descending, ties broken by id: the same order on every page and
    every run. None when a hit has no id to give (a document written without ``doc_id``)."""
    pairs = []
    for hit in ranked_hits(response):
        doc_id = hit_id(hit)
        if doc_id is None:
            return None
        pairs.append((doc_id, float(hit.get("_score") or 0.0)))
    return sorted(pairs, key=lambda pair: (-pair[1], pair[0]))


def rrf_fuse(rankings: Sequence[Sequence[str]], rank_constant: int = RRF_RANK_CONSTANT) -> list[tuple[str, float]]:
    """Reciprocal rank fusion: each document scores sum(1 / (rank_constant + rank)), rank from 1.

    Ties are broken by id. This is the formula of neural-search's score-ranker-processor, so
    client-side and server-side fusion rank alike.
    """
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, doc_id in enumerate(ranking, start=1):
            scores[doc_id] = scores.get(doc_id, 0.0) + 1.0 / (rank_constant + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def _took(response: Mapping[str, Any]) -> float:
    return float(response.get("took") or 0.0)


def highlight(text: str, mentions: Sequence[MentionMatch], mark: Callable[[str], str],
              width: int | None = 300) -> str:
    """The text with each mention's span passed through ``mark`` (spans that overlap a better one are
    left plain); cut to about ``width`` characters around the best mention when longer."""
    chosen: list[MentionMatch] = []
    for mention in mentions:  # best first
        inside = 0 <= mention.start < mention.end <= len(text)
        if inside and all(mention.end <= other.start or mention.start >= other.end for other in chosen):
            chosen.append(mention)
    begin, end = 0, len(text)
    if width is not None and len(text) > width and chosen:
        centre = (chosen[0].start + chosen[0].end) // 2
        begin = max(0, min(centre - width // 2, len(text) - width))
        end = begin + width
    pieces, cursor = [], begin
    for mention in sorted(chosen, key=lambda m: m.start):
        if mention.start < begin or mention.end > end:
            continue
        pieces += [text[cursor:mention.start], mark(text[mention.start:mention.end])]
        cursor = mention.end
    pieces.append(text[cursor:end])
    return ("…" if begin > 0 else "") + "".join(pieces) + ("…" if end < len(text) else "")


def format_results(results: TypeResults, mark: Callable[[str], str]) -> list[str]:
    """Readable lines: rank, score and id, the highlighted text, then the mentions with their scores."""
    if not results.hits:
        return [f"no document of index {results.index!r} mentions a {results.description!r}"]
    lines = []
    for rank, hit in enumerate(results.hits, start=results.offset + 1):
        lines.append(f"{rank}. {hit.score:.4f}  {hit.id}")
        lines.append("   " + highlight(hit.text.replace("\n", " "), hit.mentions, mark))
        lines.append("   " + ", ".join(f"{m.surface} {m.score:.3f} [{m.start}:{m.end}]" for m in hit.mentions))
    return lines


# ---------------------------------------------------------------------------------------------
# the search as a sequence of requests


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
    from ner_os.store.index import pipeline_name

    return pipeline_name(index, "rrf")


def type_search_steps(vector: Sequence[float], query: TypeQuery, *, index: str,
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
        return _results(query, index, query.mode, page, _took(response))
    if server_hybrid:
        params = {"search_pipeline": pipeline or hybrid_pipeline(index)}
        (fused,), took, by_doc_id = yield from _rankings([hybrid_search_body(vector, query)], params)
        mode = "hybrid-server"
    else:
        (knn, bm25), took, by_doc_id = yield from _rankings([knn_search_body(vector, query), bm25_search_body(query)])
        fused = rrf_fuse([[doc_id for doc_id, _ in knn], [doc_id for doc_id, _ in bm25]])
        mode = "hybrid-client"
    wanted = fused[query.offset:query.window]
    if not wanted:
        return _results(query, index, mode, [], took)
    response = yield SearchRequest(page_body(vector, [doc_id for doc_id, _ in wanted], query.mention_limit,
                                             by_doc_id=by_doc_id))
    took += _took(response)
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
        took += sum(_took(response) for response in responses)
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


def dsl_request(vector: Sequence[float], query: TypeQuery, *, index: str, server_hybrid: bool,
                pipeline: str | None = None) -> str:
    """The one request Dev Tools needs for this query (without server-side fusion, the k-NN one)."""
    if query.hybrid and server_hybrid:
        return search_request_line(index, hybrid_search_body(vector, query),
                                   {"search_pipeline": pipeline or hybrid_pipeline(index)})
    knn_only = dataclasses.replace(query, hybrid=False)
    return search_request_line(index, knn_search_body(vector, knn_only))


def search_type(description: str, *, index: str | None = None, size: int = 10, k: int | None = None,
                hybrid: bool = True, filters: Mapping[str, Any] | None = None, offset: int = 0,
                min_score: float | None = None, mentions_per_hit: int = 3,
                mention_margin: float | None = MENTION_MARGIN, **settings: Any) -> TypeResults:
    """Documents that mention an entity of the described type, best first.

    ``settings`` are :class:`ner_os.config.Settings` fields (``opensearch_url``, ``profile``,
    ``head``…). The client behind it (connection, encoder, head, cached type vectors) is built once
    per distinct settings and reused; hold a :class:`ner_os.client.NerOs` yourself for more control.
    """
    from ner_os.client import shared_client

    return shared_client(**settings).search_type(
        description, index=index, size=size, k=k, hybrid=hybrid, filters=filters, offset=offset,
        min_score=min_score, mentions_per_hit=mentions_per_hit, mention_margin=mention_margin)
