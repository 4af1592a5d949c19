"""Thresholds on a type's k-NN score, bare or relative to what the index holds (docs/queries.md).

A bare score (``(1 + cosine) / 2``) means different things for different descriptions: some lie
near every mention ("dinosaur" gives "Late Jurassic" 0.85), some near few. A relative threshold is
placed on the type's own score distribution over the index's mentions, estimated from a sample:

- ``score`` ``0.8``: the bare k-NN score;
- ``percentile`` ``p99.5``: keep the sampled mentions in the top 0.5 %; the cut lies halfway between
  the last one kept and the first one left out, so no sampled mention sits on it;
- ``sigma`` ``z3``: the sample's mean plus this many standard deviations.

The sample (:func:`sample_body`) is a seeded random draw of documents with every mention scored
exactly on the cluster (the k-NN ``knn_score`` script): no vector travels. :data:`DEFAULT_THRESHOLD`
was chosen on the Few-NERD dev folds by ``bench/queries_boolean.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ner_os.errors import NerOsError
from ner_os.fields import MAX_INNER_HITS, MENTIONS_PATH, VECTOR_FIELD
from ner_os.query.steps import SearchRequest

KINDS = ("score", "percentile", "sigma")
SAMPLE_DOCUMENTS = 1000  # documents drawn for the estimate (all of them in a smaller index)
SAMPLE_SEED = 0  # the same draw on every call: one query gives the same thresholds each time
MIN_SAMPLE = 20  # fewer sampled mentions place no relative threshold


@dataclass(frozen=True)
class Threshold:
    """How a type's k-NN score threshold is chosen: ``kind`` in :data:`KINDS` and its value."""

    kind: str
    value: float

    def __post_init__(self):
        if self.kind not in KINDS:
            raise NerOsError(f"threshold kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        value = self.value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise NerOsError(f"threshold value must be a number, got {value!r}")
        low, high = {"score": (0.0, 1.0), "percentile": (0.0, 100.0), "sigma": (-10.0, 10.0)}[self.kind]
        closed = self.kind == "score"  # a bare score of 1 is allowed (only identical vectors)
        if not (low < value < high or (closed and value == high)):
            raise NerOsError(f"a {self.kind} threshold must lie in ({low:g}, {high:g}{']' if closed else ')'}, "
                             f"got {value!r}")
        object.__setattr__(self, "value", float(value))

    @property
    def relative(self) -> bool:
        return self.kind != "score"

    def spec(self) -> str:
        """The text :func:`parse_threshold` reads back: ``0.8``, ``p99.5``, ``z3``."""
        return {"score": "", "percentile": "p", "sigma": "z"}[self.kind] + f"{self.value:g}"

    def resolve(self, sample: np.ndarray | None = None) -> float:
        """The k-NN score this threshold stands for, given the type's sampled mention scores."""
        if not self.relative:
            return self.value
        sample = np.asarray(sample if sample is not None else [], dtype=np.float64)
        if len(sample) < MIN_SAMPLE:
            raise NerOsError(f"a relative threshold ({self.spec()}) needs at least {MIN_SAMPLE} mentions in the "
                             f"index, found {len(sample)}: give a bare score (e.g. 0.8) instead")
        if self.kind == "sigma":
            return float(min(1.0, sample.mean() + self.value * sample.std()))
        ranked = np.sort(sample)[::-1]
        kept = min(len(ranked) - 1, max(1, math.ceil((100.0 - self.value) / 100.0 * len(ranked))))
        return float((ranked[kept - 1] + ranked[kept]) / 2.0)


DEFAULT_THRESHOLD = Threshold("sigma", 2.5)  # a combined query's clauses
DEFAULT_TAG_THRESHOLD = Threshold("sigma", 2.5)  # types add without --min-score
TAG_FALLBACK = Threshold("score", 0.8)  # ... on an index too small to place it: (1 + cosine) / 2 >= 0.8


def parse_threshold(spec: Any) -> Threshold:
    """``0.8`` (bare score), ``p99.5`` (percentile), ``z3`` (sigmas), a number, or a Threshold."""
    if isinstance(spec, Threshold):
        return spec
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return Threshold("score", float(spec))
    text = str(spec).strip().lower()
    kind = {"p": "percentile", "z": "sigma"}.get(text[:1], "score")
    number = text[1:] if kind != "score" else text
    try:
        value = float(number)
    except ValueError:
        raise NerOsError(f"threshold {spec!r}: expected a score (0.8), a percentile (p99.5) or sigmas (z3)") from None
    return Threshold(kind, value)


def exact_mention_scores(vector: Sequence[float], min_score: float | None = None) -> dict:
    """Every mention scored exactly (the k-NN ``knn_score`` script, brute force), those below ``min_score`` out."""
    query: dict[str, Any] = {
        "script_score": {
            "query": {"match_all": {}},
            "script": {"source": "knn_score", "lang": "knn",
                       "params": {"field": VECTOR_FIELD, "query_value": [float(x) for x in vector],
                                  "space_type": "cosinesimil"}},
        }
    }
    if min_score is not None:
        query["script_score"]["min_score"] = float(min_score)
    return query


def sample_body(vector: Sequence[float], size: int = SAMPLE_DOCUMENTS, seed: int = SAMPLE_SEED) -> dict:
    """A seeded random draw of ``size`` documents, each with its mentions' exact scores as ``inner_hits``."""
    nested = {"nested": {"path": MENTIONS_PATH, "score_mode": "max", "query": exact_mention_scores(vector),
                         "inner_hits": {"size": MAX_INNER_HITS, "_source": False}}}
    return {"size": int(size), "_source": False, "track_total_hits": False,
            "query": {"function_score": {"query": nested, "boost_mode": "replace",
                                         "random_score": {"seed": int(seed), "field": "_seq_no"}}}}


def sample_scores(response: Mapping[str, Any]) -> np.ndarray:
    """The mention scores of a :func:`sample_body` response."""
    scores = [float(item["_score"])
              for hit in response.get("hits", {}).get("hits", [])
              for item in (hit.get("inner_hits") or {}).get(MENTIONS_PATH, {}).get("hits", {}).get("hits", [])]
    return np.asarray(scores, dtype=np.float64)


def threshold_steps(vector: Sequence[float], threshold: Threshold, fallback: Threshold | None = None):
    """Yields the sample request a relative threshold needs (none for a bare score) and returns
    ``(rule, score)``: the rule applied and the k-NN score it comes to -- ``fallback`` when the index
    holds too few mentions to place the relative rule (drive it with :func:`ner_os.query.steps.drive`)."""
    if not threshold.relative:
        return threshold, threshold.resolve()
    sample = sample_scores((yield SearchRequest(sample_body(vector))))
    rule = fallback if fallback is not None and len(sample) < MIN_SAMPLE else threshold
    return rule, rule.resolve(sample)
