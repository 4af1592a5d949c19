"""One way to fingerprint things: canonical JSON for values, raw bytes for tensors and files.

Cache directories, checkpoint names, head identities and report fields all hash through here, so
that two parts of ner-os never disagree on what "the same input" means.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np


def _canonical(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot fingerprint a {type(value).__name__}")


def digest(value: Any) -> str:
    """The sha256 (hex) of ``value`` as canonical JSON: sorted keys, compact, UTF-8."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_canonical)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def weights_digest(tensors: Mapping[str, np.ndarray], length: int = 16) -> str:
    """A short sha256 of named tensors (names, shapes, float32 values): equal digests project alike."""
    hasher = hashlib.sha256()
    for name, tensor in sorted(tensors.items()):
        hasher.update(f"{name}{tensor.shape}".encode())
        hasher.update(np.ascontiguousarray(tensor, dtype=np.float32).tobytes())
    return hasher.hexdigest()[:length]


def file_sha256(path: str | Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()
