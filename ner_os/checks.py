"""Checks of user-supplied values shared by queries and registered types: one error message each."""

from __future__ import annotations

from typing import Any

import numpy as np

from ner_os.errors import NerOsError

MAX_DESCRIPTION_CHARS = 256


def check_fraction(name: str, value: Any, what: str = "", *, above_zero: bool = False) -> float:
    """``value`` as a float when it is a number in [0, 1] (in (0, 1] with ``above_zero``); else an
    error that names it (``what``: more words on what it is)."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not is_number or not (0.0 < value if above_zero else 0.0 <= value) or not value <= 1.0:
        raise NerOsError(f"{name} must be a number in {'(0, 1]' if above_zero else '[0, 1]'}{what}, got {value!r}")
    return float(value)


def check_description(description: Any) -> str:
    """The description, stripped; a one-line error when it is not usable text."""
    if not isinstance(description, str):
        raise NerOsError(f"a type description must be text, got {type(description).__name__}")
    stripped = " ".join(description.split())
    if not stripped:
        raise NerOsError("the type description is empty: say what to look for, e.g. \"dinosaur\"")
    if len(stripped) > MAX_DESCRIPTION_CHARS:
        raise NerOsError(f"the type description has {len(stripped)} characters; at most "
                         f"{MAX_DESCRIPTION_CHARS} are accepted (a type is a few words, e.g. \"river in Africa\")")
    return stripped


def check_vector(vector: Any, dim: int | None = None) -> list[float]:
    """A vector as a list of floats, checked for finiteness and (when given) the index dimension."""
    array = np.asarray(vector, dtype=np.float32)
    if array.ndim != 1 or array.size == 0:
        raise NerOsError(f"a type vector must be one non-empty row of numbers, got shape {array.shape}")
    if dim is not None and array.size != dim:
        raise NerOsError(f"the type vector has {array.size} dimensions but the index stores {dim}-d mention "
                         "vectors: query with the model and head the index was loaded with")
    if not np.all(np.isfinite(array)):
        raise NerOsError("the type vector holds NaN or infinite values")
    return [float(x) for x in array]
