"""What the :class:`~ner_os.encoder.encoder.Encoder` needs from a backend: the ``Runner`` protocol.

A runner takes padded token ids and returns value vectors of the layers asked for. One module per
backend implements it: :mod:`ner_os.encoder.onnx_runner` (ONNX Runtime over an export) and
:mod:`ner_os.encoder.torch_runner` (the truncated module, or the full model with hooks). Each also
builds a :class:`Backend`: the runner with the tokenizer, value width and window that go with it.
A runner may also have ``start()``: begin loading in the background (the encoder calls it before
tokenising a call's texts, so that the model and the vocabulary load at the same time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Runner(Protocol):
    """Value vectors for batches of token ids."""

    def check_layers(self, layers: list[int]) -> None:
        """Raise a ConfigError unless this runner can give every layer in ``layers``."""

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray, layers: list[int]) -> dict[int, np.ndarray]:
        """``{layer: float32 [batch, sequence, d_v]}`` for int64 ``input_ids`` / ``attention_mask`` [batch, sequence]."""


@dataclass
class Backend:
    """A runner and what comes with it: the tokenizer, the value width, the model's longest input."""

    runner: Runner
    tokenizer: Any
    d_v: int
    window: int  # max_position_embeddings of the model (1 << 30 when it gives none)
    dtype: str = "fp32"  # the numerics it computes in (fp32 | fp16 | int8)
