"""Retrieval metrics per entity type, an exact cosine ranker, and span-detection scores.

A type's query returns a ranking of document ids, best first; its relevant documents are those
holding at least one gold mention of the type. R-Precision (precision of the top R, R = number of
relevant documents) is the headline, macro-averaged over types; P@10, Recall@100 and average
precision (whose macro is MAP) come with it. Documents missing from a short ranking count as not
retrieved.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

METRICS = ("r_precision", "p_at_10", "recall_at_100", "average_precision")

# Catch-all types: a coarse class's leftover bucket ("location_other", "MISC") or a bare coarse
# class name. Few-NERD's "other_livingthing", "other_medical", ... are specific fine types that
# sit under the coarse class "other", so "other_*" is not in this list.
CATCH_ALL_PATTERNS = (
    "*_other", "*-other", "other", "misc", "*_misc", "miscellaneous",
    "location", "organization", "organisation", "person", "product", "event", "building",
    "art", "work of art",
)


# --- per-query metrics ------------------------------------------------------------------------


def r_precision(ranking: Sequence[str], relevant: Collection[str]) -> float:
    """Share of relevant documents among the first R, R = ``len(relevant)``."""
    return _hits(ranking, relevant, len(relevant)) / _checked_size(relevant)


def precision_at(ranking: Sequence[str], relevant: Collection[str], k: int = 10) -> float:
    """Relevant documents among the first ``k``, divided by ``k`` (a short ranking is not excused)."""
    return _hits(ranking, relevant, k) / k


def recall_at(ranking: Sequence[str], relevant: Collection[str], k: int = 100) -> float:
    return _hits(ranking, relevant, k) / _checked_size(relevant)


def average_precision(ranking: Sequence[str], relevant: Collection[str]) -> float:
    """Mean over all relevant documents of the precision at its rank (0 where not retrieved)."""
    relevant = _as_set(relevant)
    found = 0
    total = 0.0
    for rank, doc_id in enumerate(_unique(ranking), start=1):
        if doc_id in relevant:
            found += 1
            total += found / rank
    return total / _checked_size(relevant)


def _hits(ranking: Sequence[str], relevant: Collection[str], k: int) -> int:
    relevant = _as_set(relevant)
    return sum(1 for doc_id in _unique(ranking)[:k] if doc_id in relevant)


def _unique(ranking: Sequence[str]) -> list[str]:
    """The ranking with repeats removed: a document counts once, at its best rank."""
    return list(dict.fromkeys(ranking))


def _as_set(relevant: Collection[str]) -> set[str] | frozenset[str]:
    return relevant if isinstance(relevant, (set, frozenset)) else set(relevant)


def _checked_size(relevant: Collection[str]) -> int:
    if not relevant:
        raise ValueError("a type with no relevant document cannot be scored")
    return len(relevant)


# --- per type and macro -----------------------------------------------------------------------


@dataclass(frozen=True)
class TypeScores:
    r_precision: float
    p_at_10: float
    recall_at_100: float
    average_precision: float
    n_relevant: int


def score_ranking(ranking: Sequence[str], relevant: Collection[str]) -> TypeScores:
    return TypeScores(
        r_precision=r_precision(ranking, relevant),
        p_at_10=precision_at(ranking, relevant, 10),
        recall_at_100=recall_at(ranking, relevant, 100),
        average_precision=average_precision(ranking, relevant),
        n_relevant=len(relevant),
    )


@dataclass
class RetrievalReport:
    per_type: dict[str, TypeScores]
    macro: dict[str, float]  # mean over all scored types; average_precision's macro is MAP
    macro_specific: dict[str, float]  # the same without the catch-all types
    catch_all: list[str] = field(default_factory=list)  # types left out of macro_specific
    unscored: list[str] = field(default_factory=list)  # types with no relevant document

    def to_dict(self) -> dict:
        return {
            "per_type": {name: asdict(scores) for name, scores in self.per_type.items()},
            "macro": self.macro,
            "macro_specific": self.macro_specific,
            "catch_all": self.catch_all,
            "unscored": self.unscored,
        }


def evaluate(
    rankings: Mapping[str, Sequence[str]],
    relevance: Mapping[str, Collection[str]],
    catch_all: Callable[[str], bool] | Iterable[str] | None = None,
) -> RetrievalReport:
    """Score each type of ``relevance`` against its ranking (a missing ranking retrieves nothing).

    ``catch_all`` picks the types left out of ``macro_specific``: a predicate on the type name,
    or a list of glob patterns (case-insensitive); None uses :data:`CATCH_ALL_PATTERNS`.
    """
    is_catch_all = _catch_all_predicate(catch_all)
    per_type: dict[str, TypeScores] = {}
    unscored: list[str] = []
    for name, relevant in relevance.items():
        if not relevant:
            unscored.append(name)
            continue
        per_type[name] = score_ranking(rankings.get(name, ()), relevant)
    catch_all_names = [name for name in per_type if is_catch_all(name)]
    specific = [scores for name, scores in per_type.items() if name not in catch_all_names]
    return RetrievalReport(
        per_type=per_type,
        macro=_macro(list(per_type.values())),
        macro_specific=_macro(specific),
        catch_all=catch_all_names,
        unscored=unscored,
    )


def is_catch_all_type(name: str, patterns: Iterable[str] = CATCH_ALL_PATTERNS) -> bool:
    lowered = name.strip().lower()
    return any(fnmatch.fnmatchcase(lowered, pattern.lower()) for pattern in patterns)


def _catch_all_predicate(catch_all: Callable[[str], bool] | Iterable[str] | None) -> Callable[[str], bool]:
    if catch_all is None:
        return is_catch_all_type
    if callable(catch_all):
        return catch_all
    if isinstance(catch_all, str):
        catch_all = [catch_all]
    patterns = tuple(catch_all)
    return lambda name: is_catch_all_type(name, patterns)


def _macro(scores: Sequence[TypeScores]) -> dict[str, float]:
    if not scores:
        return {metric: float("nan") for metric in METRICS}
    return {metric: float(np.mean([getattr(s, metric) for s in scores])) for metric in METRICS}


def relevance_from_mentions(documents: Iterable[tuple[str, Iterable[str]]]) -> dict[str, set[str]]:
    """``(doc_id, labels of its gold mentions)`` pairs -> label -> ids of documents holding it."""
    relevance: dict[str, set[str]] = {}
    for doc_id, labels in documents:
        for label in labels:
            relevance.setdefault(label, set()).add(doc_id)
    return relevance


# --- exact cosine ranking (documents scored by their best mention) ----------------------------


@dataclass(frozen=True)
class Ranking:
    doc_ids: list[str]  # best first
    scores: np.ndarray  # float32 [n]: each document's best mention cosine
    best_mentions: np.ndarray  # int64 [n]: row of that mention in the vectors given to the ranker


class ExactRanker:
    """Exact cosine search over mention vectors; a document's score is its best mention's."""

    def __init__(self, vectors: np.ndarray, doc_ids: Sequence[str]) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(doc_ids):
            raise ValueError(f"need one doc id per vector row: {vectors.shape} rows vs {len(doc_ids)} ids")
        if len(vectors) == 0:
            raise ValueError("no mention vectors to rank")
        names, owner = np.unique(np.asarray(doc_ids, dtype=object).astype(str), return_inverse=True)
        # Mentions of one document must be contiguous for np.maximum.reduceat.
        self._order = np.argsort(owner, kind="stable")
        self._starts = np.flatnonzero(np.r_[True, np.diff(owner[self._order]) != 0])
        self._doc_names = names
        self._vectors = _unit_rows(vectors)[self._order]

    @property
    def n_documents(self) -> int:
        return len(self._doc_names)

    def rank(self, query: np.ndarray, top_n: int = 100) -> Ranking:
        return self.rank_many(np.asarray(query, dtype=np.float32)[None, :], top_n)[0]

    def rank_many(self, queries: np.ndarray, top_n: int = 100, batch: int = 64) -> list[Ranking]:
        """One ranking per query row; ties are broken by document id for a stable order."""
        if top_n < 1:
            raise ValueError(f"top_n must be at least 1, got {top_n}")
        queries = _unit_rows(np.atleast_2d(np.asarray(queries, dtype=np.float32)))
        if queries.shape[1] != self._vectors.shape[1]:
            raise ValueError(f"query dim {queries.shape[1]} != mention dim {self._vectors.shape[1]}")
        rankings: list[Ranking] = []
        for first in range(0, len(queries), batch):  # bounds the [mentions, queries] score matrix
            mention_scores = self._vectors @ queries[first : first + batch].T
            doc_scores = np.maximum.reduceat(mention_scores, self._starts, axis=0)
            for column in range(mention_scores.shape[1]):
                rankings.append(self._top(mention_scores[:, column], doc_scores[:, column], top_n))
        return rankings

    def _top(self, mention_scores: np.ndarray, doc_scores: np.ndarray, top_n: int) -> Ranking:
        n = min(top_n, len(doc_scores))
        candidates = np.argpartition(-doc_scores, n - 1)[:n] if n < len(doc_scores) else np.arange(n)
        # argpartition may cut a tie at the boundary arbitrarily: take every document tied with the n-th
        threshold = doc_scores[candidates].min()
        candidates = np.flatnonzero(doc_scores >= threshold)
        order = candidates[np.lexsort((candidates, -doc_scores[candidates]))][:n]
        ends = np.r_[self._starts[1:], len(mention_scores)]
        best = np.array(
            [self._order[s + int(np.argmax(mention_scores[s:e]))] for s, e in zip(self._starts[order], ends[order])],
            dtype=np.int64,
        )
        return Ranking(doc_ids=[str(self._doc_names[i]) for i in order], scores=doc_scores[order], best_mentions=best)


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


# --- span detection against gold spans --------------------------------------------------------


@dataclass(frozen=True)
class SpanScores:
    """Detected spans against gold spans (anything with ``start`` and ``end``)."""

    recall_exact: float
    recall_same_end: float  # the end offset matches: the token a mention vector is read from
    recall_overlap: float
    precision_exact: float  # indicative where the gold labels only some types (Few-NERD INTER)
    precision_same_end: float
    spans_per_text: float
    gold_per_text: float
    n_gold: int
    n_detected: int


def span_scores(gold: Sequence[Sequence], detected: Sequence[Sequence]) -> SpanScores:
    if len(gold) != len(detected):
        raise ValueError(f"{len(gold)} gold lists but {len(detected)} detected lists")
    counts = np.zeros(5, dtype=np.int64)  # exact, same end, overlap, detected exact, detected same end
    n_gold = n_detected = 0
    for gold_spans, found_spans in zip(gold, detected):
        gold_pairs = {(s.start, s.end) for s in gold_spans}
        found_pairs = {(s.start, s.end) for s in found_spans}
        gold_ends = {end for _, end in gold_pairs}
        found_ends = {end for _, end in found_pairs}
        counts += (
            len(gold_pairs & found_pairs),
            sum(end in found_ends for _, end in gold_pairs),
            sum(any(a < end and start < b for a, b in found_pairs) for start, end in gold_pairs),
            len(found_pairs & gold_pairs),
            sum(end in gold_ends for _, end in found_pairs),
        )
        n_gold += len(gold_pairs)
        n_detected += len(found_pairs)
    recall = counts[:3] / max(n_gold, 1)
    precision = counts[3:] / max(n_detected, 1)
    texts = max(len(gold), 1)
    return SpanScores(
        recall_exact=float(recall[0]),
        recall_same_end=float(recall[1]),
        recall_overlap=float(recall[2]),
        precision_exact=float(precision[0]),
        precision_same_end=float(precision[1]),
        spans_per_text=n_detected / texts,
        gold_per_text=n_gold / texts,
        n_gold=n_gold,
        n_detected=n_detected,
    )
