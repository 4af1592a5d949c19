"""Relevance feedback: hits of a result marked right or wrong refine the type vector (Rocchio).

``refined = normalise(query + RIGHT_WEIGHT * mean(right) - WRONG_WEIGHT * mean(wrong))``, each marked hit
standing for its best mention's stored vector (:func:`ner_os.query.examples.mention_vector_steps`). The
weights were chosen on the Few-NERD dev folds by ``bench/queries_beyond.py``: one round of feedback on the
top 5 hits, marked from gold labels (docs/queries.md). Moving away from the hits marked wrong did not
help there, so :data:`WRONG_WEIGHT` is 0: pass other weights to :func:`rocchio` to try it.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ner_os.errors import NerOsError
from ner_os.query.examples import check_hit_number, unit
from ner_os.query.model import TypeHit, TypeResults

# bench/queries_beyond.py, dev folds (grids 0.25-8 and 0-1): R-Precision 0.763 -> 0.773 after one round of
# 5 marked hits. Pushing away from the hits marked wrong raised it at no right weight tried (right 0.5:
# 0.773 -> 0.769 at 0.25, 0.761 at 0.5, lower on each fold): hits marked wrong move nothing by default.
RIGHT_WEIGHT = 0.5
WRONG_WEIGHT = 0.0


def rocchio(query: np.ndarray, right: Sequence[np.ndarray] = (), wrong: Sequence[np.ndarray] = (),
            right_weight: float = RIGHT_WEIGHT, wrong_weight: float = WRONG_WEIGHT) -> np.ndarray:
    """The query vector moved towards the mean of ``right`` and away from the mean of ``wrong`` (unit vectors)."""
    moved = np.asarray(query, dtype=np.float64).copy()
    if len(right):
        moved += right_weight * np.mean(np.asarray(right, dtype=np.float64), axis=0)
    if len(wrong):
        moved -= wrong_weight * np.mean(np.asarray(wrong, dtype=np.float64), axis=0)
    return unit(moved, "the query and the marked hits")


def marked_hits(results: TypeResults, marks: Sequence[Any]) -> list[TypeHit]:
    """Hits of ``results`` by number as printed (from ``offset + 1``), or hits given as they are."""
    hits = []
    for mark in marks:
        if isinstance(mark, TypeHit):
            hits.append(mark)
            continue
        number = check_hit_number(mark)
        position = number - results.offset - 1
        if not 0 <= position < len(results.hits):
            shown = (f"hits {results.offset + 1}-{results.offset + len(results.hits)}" if results.hits
                     else "no hits")
            raise NerOsError(f"hit {number}: the result on index {results.index!r} has {shown}")
        hits.append(results.hits[position])
    return hits


def check_marks(right: Sequence[Any], wrong: Sequence[Any]) -> None:
    """A hit marked both right and wrong is a mistake worth saying."""
    both = {_key(mark) for mark in right} & {_key(mark) for mark in wrong}
    if both:
        raise NerOsError(f"hits marked both right and wrong: {', '.join(sorted(map(str, both)))}")


def _key(mark: Any) -> Any:
    return mark.id if isinstance(mark, TypeHit) else mark
