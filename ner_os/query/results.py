"""Reading search responses: a hit's mentions, rankings, and reciprocal rank fusion."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ner_os.fields import DOC_ID_FIELD, MENTIONS_PATH, as_list
from ner_os.query.model import RRF_RANK_CONSTANT, MentionMatch


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
            types=tuple(as_list(source.get("types"))),
        ))
    mentions.sort(key=lambda mention: (-mention.score, mention.position))
    if margin is not None and mentions:
        kept = within_margin(np.asarray([mention.score for mention in mentions]), margin)
        mentions = [mention for mention, keep in zip(mentions, kept) if keep]
    return tuple(mentions[:limit] if limit is not None else mentions)


def within_margin(scores: np.ndarray, margin: float) -> np.ndarray:
    """Per score of one hit's mentions, best first: at least the best one's minus ``margin``."""
    return scores >= scores[0] - margin - 1e-9  # scores arrive as float32 rounded to JSON


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


def rrf_fuse(rankings: Sequence[Sequence[str]], rank_constant: int = RRF_RANK_CONSTANT,
             weights: Sequence[float] | None = None) -> list[tuple[str, float]]:
    """Reciprocal rank fusion: each document scores sum(weight / (rank_constant + rank)), rank from 1
    (``weights``: one per ranking, default 1 each).

    Ties are broken by id. This is the formula of neural-search's score-ranker-processor, so
    client-side and server-side fusion rank alike.
    """
    scores: dict[str, float] = {}
    weights = [1.0] * len(rankings) if weights is None else [float(w) for w in weights]
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, doc_id in enumerate(ranking, start=1):
            scores[doc_id] = scores.get(doc_id, 0.0) + weight / (rank_constant + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def took_ms(response: Mapping[str, Any]) -> float:
    return float(response.get("took") or 0.0)


def hits_total(response: Mapping[str, Any]) -> tuple[int | None, str]:
    """``hits.total`` of a response: (documents matching, ``eq`` | ``gte``); (None, ``eq``) when not counted."""
    total = response.get("hits", {}).get("total")
    if total is None:
        return None, "eq"
    if isinstance(total, Mapping):
        return int(total.get("value", 0)), str(total.get("relation", "eq"))
    return int(total), "eq"


def fused_total(totals: Sequence[tuple[int | None, str]], rankings: Sequence[Sequence[Any]],
                fused: Sequence[Any]) -> tuple[int, str]:
    """The documents of a client-side fusion: exactly the fused list when every ranking came back whole,
    else at least the largest of the counts (the union is never smaller than either side)."""
    whole = all(value is not None and relation == "eq" and value <= len(ranked)
                for (value, relation), ranked in zip(totals, rankings, strict=True))
    if whole:
        return len(fused), "eq"
    return max([len(fused), *(value or 0 for value, _ in totals)]), "gte"
