"""Several types in one query: ``all_of``, ``any_of`` and ``none_of`` over type descriptions or examples.

The request is one ``bool`` of nested clauses on ``mentions``, one per type, each with its own
threshold on the k-NN score (:mod:`ner_os.query.thresholds`): a document matches a clause when one
of its mentions scores at least the clause's threshold. ``all_of`` clauses go in ``must``, ``any_of``
in ``should`` (at least one), ``none_of`` in ``must_not``; a document's score is the sum, over the
``all_of`` and ``any_of`` clauses it matches, of its best mention's score. Each positive clause's
``inner_hits`` (named after it) shows which mentions matched which type.

A clause scores every mention exactly (the k-NN ``knn_score`` script, brute force: the answer is
the one :func:`brute_force_ids` computes in numpy, the same rule registered types tag with), or,
``approximate``, by a radial k-NN search on the HNSW graph (``min_score``), which scales to large
indices but may miss a mention near the threshold. Relative thresholds are resolved first, from
one sample request per clause (one ``_msearch``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ner_os.checks import check_description
from ner_os.errors import NerOsError
from ner_os.fields import MAX_INNER_HITS, MAX_WINDOW, MENTIONS_PATH, SOURCE_WITHOUT_VECTORS, TEXT_FIELD
from ner_os.query.bodies import knn_clause
from ner_os.query.examples import parse_example, query_label, split_examples
from ner_os.query.filters import filter_clause
from ner_os.query.model import MentionMatch
from ner_os.query.results import parse_mentions, ranked_hits, took_ms
from ner_os.query.steps import MultiSearchRequest, SearchRequest
from ner_os.query.thresholds import (DEFAULT_THRESHOLD, Threshold, exact_mention_scores, parse_threshold,
                                     sample_body, sample_scores)

ROLES = ("all_of", "any_of", "none_of")
CLAUSE_SEPARATOR = "@"  # "political party@p99.5": a clause's own threshold on the command line
LIKE_PREFIX, EXAMPLE_SEPARATOR = "like:", ";"  # "like:Nile;Danube@z2.5": a clause given by examples


@dataclass(frozen=True)
class TypeClause:
    """One type of a combined query: its role, description and/or examples (as ``search_type`` takes
    them: surfaces, mentions in the index) and threshold."""

    role: str
    description: str | None
    threshold: Threshold
    examples: tuple = ()

    def __post_init__(self):
        if self.description is None and not self.examples:
            raise NerOsError(f"a {self.role} type needs a description or examples")
        split_examples(self.examples)  # HIT:N and malformed examples fail here, before any request

    @property
    def label(self) -> str:
        return f"{self.role}:{query_label(self.description, self.examples)}"

    @property
    def positive(self) -> bool:
        return self.role != "none_of"


@dataclass(frozen=True)
class CombinedQuery:
    """A checked combined query (build it with :meth:`of`)."""

    clauses: tuple[TypeClause, ...]
    size: int = 10
    filters: Mapping[str, Any] | None = None
    approximate: bool = False
    mentions_per_clause: int = 3

    def __post_init__(self):
        if not self.clauses:
            raise NerOsError("a combined query needs at least one type (all_of, any_of or none_of)")
        labels = [clause.label for clause in self.clauses]
        if len(set(labels)) != len(labels):
            raise NerOsError(f"a type is given twice: {sorted({x for x in labels if labels.count(x) > 1})}")
        for name, value, high in (("size", self.size, MAX_WINDOW), ("mentions_per_clause", self.mentions_per_clause,
                                                                      MAX_INNER_HITS)):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
                raise NerOsError(f"{name} must be an integer in [1, {high}], got {value!r}")
        object.__setattr__(self, "filters", dict(self.filters) if self.filters else None)
        filter_clause(self.filters)

    @classmethod
    def of(cls, all_of: Iterable = (), any_of: Iterable = (), none_of: Iterable = (), *,
           threshold: Any = None, **options: Any) -> "CombinedQuery":
        """Each type is a description, ``(description, threshold)`` or ``"description@threshold"``;
        ``threshold`` (default :data:`DEFAULT_THRESHOLD`) applies to the types without their own."""
        default = parse_threshold(threshold) if threshold is not None else DEFAULT_THRESHOLD
        clauses = [clause(role, item, default) for role, items in zip(ROLES, (all_of, any_of, none_of))
                   for item in ([items] if isinstance(items, str) else items)]
        return cls(tuple(clauses), **options)


def clause(role: str, item: Any, default: Threshold) -> TypeClause:
    """A type as given: a description, ``(description, threshold)``, ``"description@threshold"``,
    ``"like:EXAMPLE;EXAMPLE[@threshold]"`` or ``{"description": ..., "examples": [...], "threshold": ...}``."""
    if isinstance(item, Mapping):
        unknown = set(item) - {"description", "examples", "threshold"}
        if unknown:
            raise NerOsError(f"a {role} type takes description, examples and threshold, not {sorted(unknown)}")
        description = item.get("description")
        threshold = parse_threshold(item["threshold"]) if item.get("threshold") is not None else default
        return TypeClause(role, None if description is None else check_description(description), threshold,
                          tuple(item.get("examples") or ()))
    if isinstance(item, (tuple, list)):
        description, threshold = item
        return TypeClause(role, check_description(description), parse_threshold(threshold))
    description, threshold = str(item), default
    if CLAUSE_SEPARATOR in description:
        description, _, spec = description.rpartition(CLAUSE_SEPARATOR)
        threshold = parse_threshold(spec)
    if description.startswith(LIKE_PREFIX):
        examples = [parse_example(x) for x in description[len(LIKE_PREFIX):].split(EXAMPLE_SEPARATOR) if x.strip()]
        return TypeClause(role, None, threshold, tuple(examples))
    return TypeClause(role, check_description(description), threshold)


@dataclass(frozen=True)
class CombinedHit:
    """A document that satisfies the query, with the mentions each positive clause matched (best first)."""

    id: str
    score: float
    source: dict[str, Any]
    matches: tuple[tuple[str, tuple[MentionMatch, ...]], ...]  # (clause label, mentions)

    @property
    def text(self) -> str:
        return str(self.source.get(TEXT_FIELD, ""))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "score": self.score, "source": self.source,
                "matches": {label: [mention.to_dict() for mention in mentions] for label, mentions in self.matches}}


@dataclass(frozen=True)
class CombinedResults:
    """The documents of a combined query, the k-NN score each clause's threshold came to, the total."""

    index: str
    clauses: tuple[TypeClause, ...]
    thresholds: tuple[float, ...]  # per clause, the k-NN score it was resolved to
    total: int
    hits: tuple[CombinedHit, ...]
    took_ms: float = 0.0

    def __iter__(self):
        return iter(self.hits)

    def __len__(self) -> int:
        return len(self.hits)

    @property
    def ids(self) -> list[str]:
        return [hit.id for hit in self.hits]


def clause_query(vector: Sequence[float], min_score: float, *, approximate: bool, name: str | None = None,
                 inner_hits_size: int = 3) -> dict:
    """Documents with a mention scoring >= ``min_score``; ``name``: its ``inner_hits`` under that name."""
    inner = (knn_clause(vector, min_score=min_score, expand_nested_docs=False) if approximate
             else exact_mention_scores(vector, min_score))
    nested: dict[str, Any] = {"path": MENTIONS_PATH, "score_mode": "max", "query": inner}
    if name is not None:
        nested["inner_hits"] = {"name": name, "size": int(inner_hits_size), "_source": SOURCE_WITHOUT_VECTORS}
    return {"nested": nested}


def inner_hits_name(position: int) -> str:
    return f"clause-{position}"


def combined_body(vectors: Sequence[Sequence[float]], thresholds: Sequence[float], query: CombinedQuery) -> dict:
    """The one ``bool`` request (``vectors`` and ``thresholds``: one per clause, in order)."""
    parts: dict[str, list] = {"all_of": [], "any_of": [], "none_of": []}
    for position, (item, vector, score) in enumerate(zip(query.clauses, vectors, thresholds, strict=True)):
        name = inner_hits_name(position) if item.positive else None
        parts[item.role].append(clause_query(vector, score, approximate=query.approximate, name=name,
                                             inner_hits_size=query.mentions_per_clause))
    bool_query: dict[str, Any] = {"must": parts["all_of"] or ([] if parts["any_of"] else [{"match_all": {}}])}
    if parts["any_of"]:
        bool_query.update(should=parts["any_of"], minimum_should_match=1)
    if parts["none_of"]:
        bool_query["must_not"] = parts["none_of"]
    if query.filters:
        bool_query["filter"] = [filter_clause(query.filters)]
    return {"size": query.size, "_source": SOURCE_WITHOUT_VECTORS, "track_total_hits": True,
            "query": {"bool": bool_query}}


def combined_search_steps(vectors: Sequence[Sequence[float]], query: CombinedQuery, *, index: str):
    """Yields the sample requests (relative thresholds, one ``_msearch``) and the ``bool`` search; returns
    :class:`CombinedResults` (drive it with :func:`ner_os.query.steps.drive`)."""
    relative = [position for position, item in enumerate(query.clauses) if item.threshold.relative]
    samples: dict[int, np.ndarray] = {}
    took = 0.0
    if relative:
        responses = yield MultiSearchRequest(tuple(sample_body(vectors[position]) for position in relative))
        samples = {position: sample_scores(response) for position, response in zip(relative, responses)}
        took += sum(took_ms(response) for response in responses)
    thresholds = tuple(resolve(item, samples.get(position)) for position, item in enumerate(query.clauses))
    response = yield SearchRequest(combined_body(vectors, thresholds, query))
    hits = tuple(_hit(hit, query) for hit in ranked_hits(response))
    total = int(((response.get("hits") or {}).get("total") or {}).get("value", len(hits)))
    return CombinedResults(index=index, clauses=query.clauses, thresholds=thresholds, total=total, hits=hits,
                           took_ms=took + took_ms(response))


def resolve(item: TypeClause, sample: np.ndarray | None) -> float:
    try:
        return item.threshold.resolve(sample)
    except NerOsError as error:
        raise NerOsError(f"{item.label}: {error}") from None


def _hit(hit: Mapping[str, Any], query: CombinedQuery) -> CombinedHit:
    inner = hit.get("inner_hits") or {}
    matches = tuple((item.label, parse_mentions({"inner_hits": {MENTIONS_PATH: inner.get(inner_hits_name(position))}},
                                                query.mentions_per_clause))
                    for position, item in enumerate(query.clauses) if item.positive)
    return CombinedHit(id=str(hit["_id"]), score=float(hit.get("_score") or 0.0),
                       source=dict(hit.get("_source") or {}), matches=matches)


def brute_force_ids(mentions: Mapping[str, np.ndarray], vectors: Sequence[np.ndarray], thresholds: Sequence[float],
                    roles: Sequence[str]) -> set[str]:
    """What the ``bool`` means, in numpy: the ids whose mention vectors (``[n, dim]`` unit rows per document)
    satisfy every ``all_of`` clause, at least one ``any_of`` clause (when there is one) and no ``none_of``."""
    out = set()
    for doc_id, rows in mentions.items():
        rows = np.asarray(rows, dtype=np.float64)
        fits = [rows.size > 0 and float(((1 + rows @ np.asarray(v, dtype=np.float64)) / 2).max()) >= t
                for v, t in zip(vectors, thresholds)]
        by_role = {role: [fit for fit, r in zip(fits, roles) if r == role] for role in ROLES}
        if all(by_role["all_of"]) and (not by_role["any_of"] or any(by_role["any_of"])) \
                and not any(by_role["none_of"]):
            out.add(doc_id)
    return out
