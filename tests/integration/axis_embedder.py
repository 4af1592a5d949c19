"""The embedder of the hand-made integration corpora: type vectors from a table, no model behind them."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Mapping

import numpy as np


class AxisEmbedder:
    """Embeds a description by looking it up in ``type_vectors`` (description -> vector)."""

    head = None

    def __init__(self, type_vectors: Mapping[str, np.ndarray]):
        self.type_vectors = dict(type_vectors)
        self.dim = len(next(iter(self.type_vectors.values())))
        self.encoder = SimpleNamespace(profile=SimpleNamespace(name="hand-made"), layer=0, d_v=self.dim)

    def embed_type(self, description: str) -> np.ndarray:
        return self.type_vectors[description]
