"""Training the encoder-state span detector (:mod:`ner_os.spans.encoder_detector`).

Data: sentences with their mention spans (gold, plus silver spans where the gold leaves entities
unlabelled), encoded once -- each also lowercased, since lowercasing changes the tokenisation;
labels are aligned through character offsets, which lowercasing keeps (:func:`lower_same_length`).
Each token is labelled *begin* / *end* / *inside* by the same rule the mention embedder uses to
find a span's last token (the last token starting before the span's end). The model is one
hidden layer over a window of standardised value vectors, trained with a binary cross-entropy per
output in torch and saved as numpy-ready float16 weights with a manifest.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ner_os.spans import Span
from ner_os.spans.encoder_detector import (
    EXTRA_FEATURES, EncoderSpanDetector, SpanTagger, save_detector, word_edges,
)

DEFAULT_WINDOW = (-2, -1, 0, 1, 2)


# --- data -------------------------------------------------------------------------------------


def lower_same_length(text: str) -> str:
    """``text.lower()`` where that keeps every character's offset (it does not for "İ"); characters
    whose lower case is longer stay as they are."""
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


def join_handles(text: str, spans: Iterable[Any]) -> list[tuple[int, int]]:
    """BTC as distributed splits "@user" into "@" (B-PER) and "user" (B-PER): two gold mentions
    where the tweet has one. Join a lone "@" or "#" span with the span right after it."""
    pairs = sorted((int(s.start), int(s.end)) if hasattr(s, "start") else (int(s[0]), int(s[1])) for s in spans)
    out: list[tuple[int, int]] = []
    for a, b in pairs:
        if out and text[out[-1][0] : out[-1][1]] in ("@", "#") and not text[out[-1][1] : a].strip():
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def merge_silver(gold: Iterable[Any], silver: Iterable[Any]) -> list[tuple[int, int]]:
    """Gold spans plus each silver span that overlaps none of them, sorted."""
    kept = sorted((int(s.start), int(s.end)) if hasattr(s, "start") else (int(s[0]), int(s[1])) for s in gold)
    extra = []
    for span in silver:
        a, b = (int(span.start), int(span.end)) if hasattr(span, "start") else (int(span[0]), int(span[1]))
        if not any(a < e and s < b for s, e in kept):
            extra.append((a, b))
    return sorted(kept + extra)


def token_labels(offsets: np.ndarray, spans: Iterable[Any]) -> np.ndarray:
    """uint8 ``[n_tokens, 3]``: begin, end, inside. The end token of a span is the last token that
    starts before its end (as in ``ner_os.mentions``); its begin token the first ending after its
    start. Zero-width tokens get no label."""
    offsets = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    labels = np.zeros((len(offsets), 3), np.uint8)
    real = np.flatnonzero(offsets[:, 1] > offsets[:, 0])
    if not len(real):
        return labels
    for span in spans:
        a, b = (int(span.start), int(span.end)) if hasattr(span, "start") else (int(span[0]), int(span[1]))
        last = np.searchsorted(offsets[real, 0], b, side="left") - 1
        first = np.searchsorted(offsets[real, 1], a, side="right")
        if last < 0 or first >= len(real) or first > last:
            continue
        labels[real[first], 0] = 1
        labels[real[last], 1] = 1
        labels[real[first : last + 1], 2] = 1
    return labels


@dataclass
class TokenSet:
    """Encoded texts flattened: vectors ``[N, d_v]``, labels ``[N, 3]``, word edges, and where each
    text's tokens start (``bounds[i]:bounds[i+1]``)."""

    vectors: np.ndarray
    labels: np.ndarray
    word_starts: np.ndarray
    word_ends: np.ndarray
    bounds: np.ndarray
    weights: np.ndarray  # float32 [N]: per-token loss weight (a corpus's share)

    @classmethod
    def build(cls, texts: Sequence[str], vectors: Sequence[np.ndarray], offsets: Sequence[np.ndarray],
              spans: Sequence[Iterable[Any]], weight: float = 1.0) -> "TokenSet":
        labels, starts, ends = [], [], []
        for text, offs, text_spans in zip(texts, offsets, spans):
            labels.append(token_labels(offs, text_spans))
            s, e = word_edges(offs, text)
            starts.append(s)
            ends.append(e)
        lengths = np.array([len(v) for v in vectors], dtype=np.int64)
        return cls(
            vectors=np.concatenate(vectors).astype(np.float16) if len(vectors) else np.zeros((0, 0), np.float16),
            labels=np.concatenate(labels),
            word_starts=np.concatenate(starts),
            word_ends=np.concatenate(ends),
            bounds=np.r_[0, np.cumsum(lengths)],
            weights=np.full(int(lengths.sum()), weight, np.float32),
        )

    @classmethod
    def concat(cls, parts: Sequence["TokenSet"]) -> "TokenSet":
        bounds, shift = [np.zeros(1, np.int64)], 0
        for part in parts:
            bounds.append(part.bounds[1:] + shift)
            shift += part.bounds[-1]
        return cls(
            vectors=np.concatenate([p.vectors for p in parts]),
            labels=np.concatenate([p.labels for p in parts]),
            word_starts=np.concatenate([p.word_starts for p in parts]),
            word_ends=np.concatenate([p.word_ends for p in parts]),
            bounds=np.concatenate(bounds),
            weights=np.concatenate([p.weights for p in parts]),
        )

    def neighbours(self, window: Sequence[int]) -> np.ndarray:
        """int64 ``[N, len(window)]``: row of each token's neighbour at each shift, -1 past its text."""
        n = len(self.vectors)
        text_of = np.repeat(np.arange(len(self.bounds) - 1), np.diff(self.bounds))
        rows = np.arange(n)
        out = np.full((n, len(window)), -1, np.int64)
        for k, shift in enumerate(window):
            target = rows + shift
            ok = (target >= 0) & (target < n)
            ok[ok] &= text_of[target[ok]] == text_of[ok]
            out[ok, k] = target[ok]
        return out


# --- fitting ----------------------------------------------------------------------------------


@dataclass
class SpanTrainConfig:
    window: tuple[int, ...] = DEFAULT_WINDOW
    hidden_dim: int = 256
    activation: str = "gelu"
    epochs: int = 6
    batch_size: int = 1024
    lr: float = 1e-3
    weight_decay: float = 1e-4
    dropout: float = 0.2
    input_dropout: float = 0.1
    seed: int = 0
    threads: int = 2


def standardiser(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and 1/std of value vectors (the input transform shipped with the weights)."""
    x = np.asarray(vectors, dtype=np.float32)
    mean = x.mean(axis=0)
    scale = 1.0 / np.maximum(x.std(axis=0), 1e-3)
    return mean.astype(np.float32), scale.astype(np.float32)


def fit_tagger(data: TokenSet, config: SpanTrainConfig, log=print,
               init: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Train the MLP on ``data``; returns the numpy tensors :class:`SpanTagger` reads. ``init``: start
    from these tensors (a trained detector's, same architecture), its standardiser kept, to fine-tune."""
    import torch  # the trainer only: inference is numpy

    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    if init is not None:
        mean, scale = (np.asarray(init[name], np.float32) for name in ("input.mean", "input.scale"))
    else:
        mean, scale = standardiser(data.vectors)
    base = torch.from_numpy((data.vectors.astype(np.float32) - mean) * scale)
    base = torch.cat([base, torch.zeros(1, base.shape[1])])  # row -1: past the text's edge
    neighbours = torch.from_numpy(data.neighbours(config.window))
    edges = torch.from_numpy(np.stack([data.word_starts, data.word_ends], 1).astype(np.float32))
    labels = torch.from_numpy(data.labels.astype(np.float32))
    weights = torch.from_numpy(data.weights)
    d_in = base.shape[1] * len(config.window) + len(EXTRA_FEATURES)
    act = torch.nn.GELU(approximate="tanh") if config.activation == "gelu" else torch.nn.ReLU()
    model = torch.nn.Sequential(
        torch.nn.Dropout(config.input_dropout), torch.nn.Linear(d_in, config.hidden_dim), act,
        torch.nn.Dropout(config.dropout), torch.nn.Linear(config.hidden_dim, 3),
    )
    if init is not None:
        _start_from(model, init)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    n = len(labels)
    steps = config.epochs * ((n + config.batch_size - 1) // config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.lr, total_steps=steps, pct_start=0.1)
    generator = torch.Generator().manual_seed(config.seed)
    for epoch in range(config.epochs):
        model.train()
        order = torch.randperm(n, generator=generator)
        total, started = 0.0, time.time()
        for first in range(0, n, config.batch_size):
            rows = order[first : first + config.batch_size]
            x = torch.cat([base[neighbours[rows]].flatten(1), edges[rows]], 1)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), labels[rows], reduction="none")
            loss = (loss.sum(1) * weights[rows]).sum() / weights[rows].sum()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += float(loss.detach()) * len(rows)
        log(f"epoch {epoch + 1}/{config.epochs}: loss {total / n:.4f} ({time.time() - started:.0f}s)")
    hidden, output = model[1], model[4]
    return {
        "input.mean": mean,
        "input.scale": scale,
        "hidden.weight": hidden.weight.detach().numpy().copy(),
        "hidden.bias": hidden.bias.detach().numpy().copy(),
        "output.weight": output.weight.detach().numpy().copy(),
        "output.bias": output.bias.detach().numpy().copy(),
    }


def _start_from(model, init: Mapping[str, np.ndarray]) -> None:
    """Copy a trained detector's hidden and output layers into ``model`` (a ConfigError on a shape mismatch)."""
    import torch

    from ner_os.errors import ConfigError

    for position, name in ((1, "hidden"), (4, "output")):
        for part in ("weight", "bias"):
            target = getattr(model[position], part)
            source = torch.from_numpy(np.asarray(init[f"{name}.{part}"], np.float32))
            if tuple(source.shape) != tuple(target.shape):
                raise ConfigError(f"the detector to start from has {name}.{part} {tuple(source.shape)}, "
                                  f"this training expects {tuple(target.shape)}")
            with torch.no_grad():
                target.copy_(source)


def tagger_from(tensors: Mapping[str, np.ndarray], config: SpanTrainConfig) -> SpanTagger:
    return SpanTagger(tensors, config.window, config.activation)


@dataclass
class DetectorRecord:
    """What goes into the manifest besides the weights: encoder, data, figures."""

    encoder: dict
    data: dict
    decoding: dict = field(default_factory=lambda: {"end_threshold": 0.5, "max_tokens": 16})
    figures: dict = field(default_factory=dict)


def save_trained(directory: str | Path, tensors: Mapping[str, np.ndarray], config: SpanTrainConfig,
                 record: DetectorRecord) -> EncoderSpanDetector:
    """Write the detector directory and load it back (so what is returned is what was shipped)."""
    manifest = {
        "architecture": {"window": list(config.window), "hidden_dim": config.hidden_dim,
                         "activation": config.activation, "outputs": ["begin", "end", "inside"],
                         "extra_features": list(EXTRA_FEATURES), "d_v": int(tensors["input.mean"].shape[0])},
        "encoder": record.encoder,
        "decoding": record.decoding,
        "training": {"config": asdict(config), "data": record.data,
                     "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")},
        "figures": record.figures,
    }
    save_detector(directory, tensors, manifest)
    return EncoderSpanDetector.load(directory)


def spans_as_pairs(spans: Iterable[Span]) -> list[list[int]]:
    return [[int(s.start), int(s.end)] for s in spans]
