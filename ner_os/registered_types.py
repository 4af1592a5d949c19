"""Registered types: a type stored under a name, and every mention that fits it tagged with that name.

``ner-os types add "dinosaur" --min-score 0.8`` stores the description, its vector and the threshold
in a small registry index (``ner_os_types``, one record per document index and type name; its name
matches no ``<index>-*`` template pattern) and writes ``"dinosaur"`` into ``mentions.types`` of every
mention whose score is at least the threshold. The loader tags documents loaded later with the same
rule (:func:`ner_os.store.types_index.tagger_for_index`), so that Dashboards users can filter and aggregate on
``mentions.types`` with no vector in sight.

The threshold may be relative to the index instead (``--threshold z2.5``, the default, or ``p99.5``:
:mod:`ner_os.query.thresholds`): it is placed on the index's mentions when the type is added (and again
by ``types refresh``), and the record keeps the rule with the score it came to.

Scores are k-NN scores of the ``cosinesimil`` space, ``(1 + cosine) / 2`` in [0, 1] — the scale of
``search_type``'s mention scores — computed exactly: by the k-NN plugin's ``knn_score`` script on
the cluster, and with numpy at load time.

This module is the model only: what a type is, the scores, the tagger and the query bodies. The
records and the tagging updates on the cluster are :mod:`ner_os.store.types_index`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ner_os.errors import NerOsError
from ner_os.checks import check_description, check_fraction, check_vector
from ner_os.fields import MAX_INNER_HITS, MENTIONS_PATH, VECTOR_FIELD

TYPES_FIELD = "mentions.types"
MAX_NAME_CHARS = 100
DEFAULT_MIN_SCORE = 0.8  # (1 + cosine) / 2 >= 0.8, i.e. cosine >= 0.6

Tagger = Callable[[np.ndarray], Sequence[Sequence[str]]]


@dataclass(frozen=True)
class RegisteredType:
    """A stored type: its name (the tag), the description it was embedded from, vector and threshold."""

    name: str
    description: str
    min_score: float
    vector: np.ndarray = field(repr=False, compare=False)
    encoder: Mapping[str, Any] = field(default_factory=dict)  # what produced the vector
    updated_at: str = ""
    threshold: str = ""  # the relative rule min_score was placed by (ner_os.query.thresholds spec); "": bare


    def to_source(self, index: str) -> dict[str, Any]:
        return {
            "index": index,
            "name": self.name,
            "description": self.description,
            "min_score": self.min_score,
            "vector": [float(x) for x in self.vector],
            "dim": int(len(self.vector)),
            "encoder": dict(self.encoder),
            "updated_at": self.updated_at or now(),
            **({"threshold": self.threshold} if self.threshold else {}),
        }

    def reembedded(self, vector: np.ndarray, encoder: Mapping[str, Any]) -> "RegisteredType":
        """The same type (name, description, threshold) with a vector from another model."""
        return dataclasses.replace(self, vector=np.asarray(check_vector(vector), dtype=np.float32),
                                   encoder=dict(encoder), updated_at=now())

    @classmethod
    def from_source(cls, source: Mapping[str, Any]) -> "RegisteredType":
        return cls(name=source["name"], description=source["description"], min_score=float(source["min_score"]),
                   vector=np.asarray(source["vector"], dtype=np.float32), encoder=source.get("encoder") or {},
                   updated_at=source.get("updated_at", ""), threshold=source.get("threshold") or "")


@dataclass(frozen=True)
class TagReport:
    """What tagging or untagging one type changed."""

    name: str
    documents: int  # documents rewritten
    mentions: int  # mentions that (now) carry the tag, or lost it
    min_score: float | None = None  # the threshold tagged with (when tagging)
    threshold: str = ""  # the relative rule it was placed by

    def describe(self, verb: str = "tagged") -> str:
        line = f"{self.name!r}: {verb} {self.mentions:,} mentions in {self.documents:,} documents"
        if self.min_score is None:
            return line
        rule = f" = {self.threshold} of the index's mentions" if self.threshold else ""
        return line + f" (min score {self.min_score:.4f}{rule})"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def check_name(name: Any) -> str:
    """A type name: the tag written into ``mentions.types``."""
    if not isinstance(name, str) or not name.strip():
        raise NerOsError("a registered type needs a non-empty name")
    name = " ".join(name.split())
    if len(name) > MAX_NAME_CHARS:
        raise NerOsError(f"type name {name[:40]!r}… has {len(name)} characters; at most {MAX_NAME_CHARS}")
    return name


def check_min_score(min_score: Any) -> float:
    return check_fraction("min_score", min_score, " (k-NN score, (1 + cosine) / 2)", above_zero=True)


def new_type(description: str, vector: np.ndarray, *, name: str | None = None,
             min_score: float = DEFAULT_MIN_SCORE, encoder: Mapping[str, Any] | None = None,
             threshold: str = "") -> RegisteredType:
    description = check_description(description)
    return RegisteredType(name=check_name(name if name is not None else description), description=description,
                          min_score=check_min_score(min_score), vector=np.asarray(check_vector(vector), dtype=np.float32),
                          encoder=dict(encoder or {}), updated_at=now(), threshold=str(threshold or ""))


# ---------------------------------------------------------------------------------------------
# scoring, shared by the cluster-side tagging and the loader


def knn_scores(vectors: np.ndarray, type_vectors: np.ndarray) -> np.ndarray:
    """``[n_mentions, n_types]`` k-NN scores of the cosinesimil space: (1 + cosine) / 2."""
    vectors = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1)
    type_vectors = np.asarray(type_vectors, dtype=np.float32).reshape(len(type_vectors), -1)
    return (1.0 + _unit(vectors) @ _unit(type_vectors).T) / 2.0


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), np.float32(1e-12))


def make_tagger(types: Sequence[RegisteredType]) -> Tagger | None:
    """The loader hook: mention vectors ``[n, dim]`` -> the names of the types each mention fits."""
    if not types:
        return None
    names = [registered.name for registered in types]
    matrix = np.stack([registered.vector for registered in types])
    thresholds = np.asarray([registered.min_score for registered in types], dtype=np.float32)

    def tag(vectors: np.ndarray) -> list[list[str]]:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.size == 0:
            return [[] for _ in range(len(vectors))]
        if vectors.shape[1] != matrix.shape[1]:
            raise NerOsError(f"registered types hold {matrix.shape[1]}-d vectors but the mentions are "
                             f"{vectors.shape[1]}-d: run `ner-os types refresh` with the current model")
        fits = knn_scores(vectors, matrix) >= thresholds
        return [[names[j] for j in np.flatnonzero(row)] for row in fits]

    return tag


# ---------------------------------------------------------------------------------------------
# the queries that find the mentions a type fits (sent by ner_os.store.types_index)


def matching_mentions_query(vector: Sequence[float], min_score: float) -> dict:
    """Documents with at least one mention scoring >= min_score; ``inner_hits`` lists those mentions.

    Exact scoring (the k-NN ``knn_score`` script, brute force over the mentions): tagging must not
    depend on how the HNSW graph happened to be built. On 2.19 ``knn_score`` gives the same
    ``(1 + cosine) / 2`` as the approximate search for the cosinesimil space, up to float rounding
    (~1e-6; the integration tests check it).
    """
    return {
        "nested": {
            "path": MENTIONS_PATH,
            "score_mode": "max",
            "query": {
                "script_score": {
                    "query": {"match_all": {}},
                    "script": {"source": "knn_score", "lang": "knn",
                               "params": {"field": VECTOR_FIELD, "query_value": list(vector),
                                          "space_type": "cosinesimil"}},
                    "min_score": float(min_score),
                }
            },
            "inner_hits": {"size": MAX_INNER_HITS, "_source": False},
        }
    }


def tagged_mentions_query(name: str) -> dict:
    return {"nested": {"path": MENTIONS_PATH, "query": {"term": {TYPES_FIELD: name}}}}


def matched_positions(hit: Mapping[str, Any]) -> tuple[list[int], bool]:
    """Nested offsets of the matching mentions, and whether inner_hits held them all."""
    inner = hit.get("inner_hits", {}).get(MENTIONS_PATH, {}).get("hits", {})
    positions = sorted(item["_nested"]["offset"] for item in inner.get("hits", []))
    total = inner.get("total", {}).get("value", len(positions))
    return positions, total <= len(positions)
