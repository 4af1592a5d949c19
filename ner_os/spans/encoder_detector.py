"""Mention detection from the encoder's own forward pass: a small token classifier over value vectors.

The loader already computes the layer-L value vectors of every token; this detector reads them
(no second model, no extra forward pass). Each token gets three probabilities -- it *begins* a
mention, it *ends* one, it is *inside* one -- from a one-hidden-layer MLP over a window of
neighbouring tokens' vectors (a value vector only sees its left context; the next tokens' vectors
tell whether the name goes on). Ends above a threshold become spans; each end takes the best
start to its left (:func:`decode`), spans never cut a word and never overlap.

The weights are a directory with ``spans.safetensors`` and ``manifest.json`` (shipped for a
profile under ``ner_os/heads/<profile>/spans/``); they are applied with numpy. Training lives in
:mod:`ner_os.training.spans`. The detector is type-agnostic: it was trained on every entity of
Few-NERD's 36 train types, spaCy's spans where those sentences leave an entity unlabelled,
wikigold and the Broad Twitter Corpus, each also lowercased.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ner_os.digest import weights_digest
from ner_os.errors import ConfigError
from ner_os.spans.base import Span, SpanDetector

WEIGHTS_FILE = "spans.safetensors"
MANIFEST_FILE = "manifest.json"
FORMAT = "ner-os-span-detector"
FORMAT_VERSION = 1
SHIPPED = Path(__file__).resolve().parents[1] / "heads"
OUTPUTS = ("begin", "end", "inside")
PARAMETER_NAMES = ("input.mean", "input.scale", "hidden.weight", "hidden.bias", "output.weight", "output.bias")
# characters stripped from a span's edges (a mention never starts or ends on them)
EDGE_PUNCTUATION = frozenset(".,;:!?\"'`()[]{}<>«»“”‘’—–-/\\|*#@&+=~^")  # "_" stays: "@user_" 
# edges that may stay: "Corp." and "U.S." end on a dot, "(band)" on a bracket, "@user" starts on @
KEEP_END = frozenset(".)")
KEEP_START = frozenset("@#(")
POSSESSIVES = ("'s", "’s", "'S", "’S")


class Encoded(Protocol):
    """What the detector reads of an encoded text (``ner_os.encoder.EncodedText`` fits)."""

    vectors: np.ndarray  # float32 [n_tokens, d_v]
    offsets: np.ndarray  # int [n_tokens, 2] character [start, end)


# --- the token classifier ---------------------------------------------------------------------


class SpanTagger:
    """Per-token begin/end/inside probabilities: standardise, stack a window, MLP, sigmoid."""

    def __init__(self, tensors: Mapping[str, np.ndarray], window: Sequence[int], activation: str = "gelu"):
        missing = [name for name in PARAMETER_NAMES if name not in tensors]
        if missing:
            raise ConfigError(f"span detector weights lack {', '.join(missing)}")
        self.tensors = {name: np.asarray(tensors[name], dtype=np.float32) for name in PARAMETER_NAMES}
        self.window = tuple(int(shift) for shift in window)
        if activation not in ("gelu", "relu"):
            raise ConfigError(f"span detector activation {activation!r}: expected gelu or relu")
        self.activation = activation
        self.d_v = int(self.tensors["input.mean"].shape[0])
        expected = self.d_v * len(self.window) + len(EXTRA_FEATURES)
        if self.tensors["hidden.weight"].shape[1] != expected:
            raise ConfigError(f"span detector hidden layer takes {self.tensors['hidden.weight'].shape[1]} inputs, expected {expected}")

    def features(self, vectors: np.ndarray, offsets: np.ndarray, text: str) -> np.ndarray:
        return token_features(vectors, offsets, text, self.tensors["input.mean"], self.tensors["input.scale"], self.window)

    def probabilities(self, vectors: np.ndarray, offsets: np.ndarray, text: str) -> np.ndarray:
        """float32 ``[n_tokens, 3]``: P(begin), P(end), P(inside) of each token."""
        if len(vectors) == 0:
            return np.zeros((0, len(OUTPUTS)), np.float32)
        return self._apply(self.features(vectors, offsets, text))

    def probabilities_many(self, items: Sequence[tuple[np.ndarray, np.ndarray, str]], rows: int = 8192) -> list[np.ndarray]:
        """:meth:`probabilities` of many ``(vectors, offsets, text)`` at once: the MLP runs on
        stacked batches of about ``rows`` tokens instead of once per text."""
        out: list[np.ndarray] = []
        batch: list[np.ndarray] = []
        for vectors, offsets, text in items:
            batch.append(self.features(vectors, offsets, text) if len(vectors) else np.zeros((0, self.tensors["hidden.weight"].shape[1]), np.float32))
            if sum(len(x) for x in batch) >= rows:
                out += self._split(batch)
                batch = []
        return out + self._split(batch)

    def _split(self, batch: list[np.ndarray]) -> list[np.ndarray]:
        if not batch:
            return []
        p = self._apply(np.concatenate(batch))
        return np.split(p, np.cumsum([len(x) for x in batch])[:-1])

    def _apply(self, x: np.ndarray) -> np.ndarray:
        h = x @ self.tensors["hidden.weight"].T + self.tensors["hidden.bias"]
        h = _gelu(h) if self.activation == "gelu" else np.maximum(h, 0)
        logits = h @ self.tensors["output.weight"].T + self.tensors["output.bias"]
        return (1.0 / (1.0 + np.exp(-np.clip(logits, -30, 30)))).astype(np.float32)


def _gelu(x: np.ndarray) -> np.ndarray:
    """tanh approximation (what the trainer uses: ``nn.GELU(approximate="tanh")``)."""
    return 0.5 * x * (1.0 + np.tanh(0.7978845608 * (x + 0.044715 * x * x * x)))


# Two cheap surface facts per token, read from the text at its offsets: whether a word starts at
# the token and whether a word ends with it. The vectors know the word pieces; these make the
# word boundaries (where spans may start and end) explicit.
EXTRA_FEATURES = ("word_start", "word_end")


def word_edges(offsets: np.ndarray, text: str) -> tuple[np.ndarray, np.ndarray]:
    """Booleans ``[n]``: a word starts at the token / a word ends with the token.

    A token starts a word when the character before it is not a letter or digit (or it is the
    first character); it ends one when the character after it is not a letter or digit.
    Punctuation tokens are words of their own.
    """
    n = len(offsets)
    starts = np.zeros(n, bool)
    ends = np.zeros(n, bool)
    for i, (a, b) in enumerate(np.asarray(offsets, dtype=np.int64)):
        if b <= a:
            continue
        first, last = text[a], text[b - 1]
        starts[i] = a == 0 or not text[a - 1].isalnum() or not first.isalnum()
        ends[i] = b >= len(text) or not text[b].isalnum() or not last.isalnum()
    return starts, ends


def token_features(vectors, offsets, text, mean, scale, window) -> np.ndarray:
    """float32 ``[n, d_v * len(window) + 2]``: standardised vectors at each shift (zeros past the
    edges), then the word-start and word-end flags."""
    x = (np.asarray(vectors, dtype=np.float32) - mean) * scale
    n, d = x.shape
    out = np.zeros((n, d * len(window) + len(EXTRA_FEATURES)), np.float32)
    for k, shift in enumerate(window):
        block = out[:, k * d : (k + 1) * d]
        if shift >= 0:
            block[: n - shift] = x[shift:] if shift < n else 0
        else:
            block[-shift:] = x[: n + shift] if -shift < n else 0
    starts, ends = word_edges(offsets, text)
    out[:, -2] = starts
    out[:, -1] = ends
    return out


# --- decoding: probabilities -> spans ---------------------------------------------------------


def decode(
    probabilities: np.ndarray,
    offsets: np.ndarray,
    text: str,
    end_threshold: float = 0.5,
    max_tokens: int = 16,
) -> list[Span]:
    """Spans from per-token probabilities: sorted, non-overlapping, on word boundaries.

    Every token that ends a word and whose P(end) passes ``end_threshold`` is an end. Ends are
    taken best first; each picks the start ``s`` (a word start at most ``max_tokens`` back, not
    inside a span already taken) that maximises ``log P(begin[s]) + sum log P(inside[s..e]) +
    sum log(1 - P(begin[s+1..e]))``. An end inside a span already taken is dropped.
    """
    n = len(offsets)
    if n == 0:
        return []
    p = np.clip(probabilities.astype(np.float64), 1e-6, 1 - 1e-6)
    log_begin, log_inside, log_not_begin = np.log(p[:, 0]), np.log(p[:, 2]), np.log1p(-p[:, 0])
    starts, ends = word_edges(offsets, text)
    real = offsets[:, 1] > offsets[:, 0]
    candidates = np.flatnonzero((p[:, 1] >= end_threshold) & ends & real)
    taken = np.zeros(n, bool)
    chosen: list[tuple[int, int]] = []
    for e in candidates[np.argsort(-p[candidates, 1], kind="stable")]:
        if taken[e]:
            continue
        best, best_score = None, -np.inf
        tail = 0.0  # sum over s+1..e of log P(inside) + log(1 - P(begin))
        for s in range(e, max(-1, e - max_tokens), -1):
            if taken[s]:
                break
            if starts[s] and real[s]:
                score = log_begin[s] + log_inside[s] + tail
                if score > best_score:
                    best, best_score = s, score
            tail += log_inside[s] + log_not_begin[s]
        if best is None:
            continue
        taken[best : e + 1] = True
        chosen.append((best, e))
    spans = (_clean_span(text, int(offsets[s, 0]), int(offsets[e, 1])) for s, e in chosen)
    return sorted(span for span in spans if span is not None)


def _clean_span(text: str, start: int, end: int) -> Span | None:
    """Strip whitespace, edge punctuation and a trailing possessive; None when nothing is left."""
    while True:
        before = (start, end)
        while start < end and (text[start].isspace() or (text[start] in EDGE_PUNCTUATION and text[start] not in KEEP_START)):
            start += 1
        while end > start and (text[end - 1].isspace() or (text[end - 1] in EDGE_PUNCTUATION and text[end - 1] not in KEEP_END)):
            end -= 1
        for mark in POSSESSIVES:
            if text.endswith(mark, start, end) and end - len(mark) > start:
                end -= len(mark)
        if text[start:end].endswith(")") and "(" not in text[start:end]:
            end -= 1
        if (start, end) == before:
            break
    if not any(c.isalnum() for c in text[start:end]):
        return None
    return Span(start, end)


# --- the detector -----------------------------------------------------------------------------


class EncoderSpanDetector(SpanDetector):
    """Spans read from the encoder's value vectors. Built with :meth:`load` / :meth:`for_profile`.

    :meth:`detect_encoded` takes texts with their :class:`Encoded` vectors (what the loader
    already has); :meth:`detect` encodes first and needs the ``encoder`` given at construction.
    """

    name = "encoder"

    def __init__(self, tagger: SpanTagger, manifest: Mapping[str, Any], *, end_threshold: float | None = None,
                 encoder: Any = None):
        self.tagger = tagger
        self.manifest = dict(manifest)
        decoding = self.manifest.get("decoding", {})
        self.end_threshold = float(end_threshold if end_threshold is not None else decoding.get("end_threshold", 0.5))
        self.max_tokens = int(decoding.get("max_tokens", 16))
        self.encoder = encoder
        self.name = f"encoder[{self.manifest.get('digest', '?')[:12]}]"

    @classmethod
    def load(cls, directory: str | Path, **options: Any) -> "EncoderSpanDetector":
        from safetensors.numpy import load_file

        directory = Path(directory)
        manifest = read_manifest(directory)
        tensors = load_file(str(directory / WEIGHTS_FILE))
        if weights_digest(tensors) != manifest.get("digest"):
            raise ConfigError(f"span detector weights in {directory} do not match their manifest digest")
        architecture = manifest["architecture"]
        tagger = SpanTagger(tensors, architecture["window"], architecture.get("activation", "gelu"))
        return cls(tagger, manifest, **options)

    @classmethod
    def for_profile(cls, profile: str, **options: Any) -> "EncoderSpanDetector":
        """The detector shipped for an encoder profile (``ner_os/heads/<profile>/spans``)."""
        directory = shipped_directory(profile)
        if not (directory / MANIFEST_FILE).exists():
            raise ConfigError(f"no span detector ships for profile {profile!r} (looked in {directory})")
        return cls.load(directory, **options)

    def check_encoder(self, profile: str, layer: int, d_v: int) -> None:
        """Raise unless the encoder (profile, layer, d_v) is the one the detector was trained on."""
        trained = self.manifest.get("encoder", {})
        if (trained.get("profile"), trained.get("layer"), trained.get("d_v")) != (profile, layer, d_v):
            raise ConfigError(f"span detector trained on {trained}, not on profile={profile} layer={layer} d_v={d_v}")

    def probabilities(self, text: str, encoded: Encoded) -> np.ndarray:
        return self.tagger.probabilities(encoded.vectors, np.asarray(encoded.offsets), text)

    def spans(self, text: str, encoded: Encoded) -> list[Span]:
        offsets = np.asarray(encoded.offsets)
        return decode(self.probabilities(text, encoded), offsets, text, self.end_threshold, self.max_tokens)

    def detect_encoded(self, texts: Sequence[str], encoded: Sequence[Encoded]) -> list[list[Span]]:
        """One sorted, non-overlapping span list per text, from its encoded vectors and offsets."""
        if len(texts) != len(encoded):
            raise ValueError(f"{len(texts)} texts but {len(encoded)} encoded texts")
        offsets = [np.asarray(item.offsets) for item in encoded]
        probabilities = self.tagger.probabilities_many([(item.vectors, o, t) for item, o, t in zip(encoded, offsets, texts)])
        return [decode(p, o, t, self.end_threshold, self.max_tokens) for p, o, t in zip(probabilities, offsets, texts)]

    def detect(self, texts: Sequence[str]) -> list[list[Span]]:
        if self.encoder is None:
            raise ConfigError("EncoderSpanDetector.detect needs an encoder: pass encoder=..., or call detect_encoded")
        return self.detect_encoded(texts, self.encoder.encode(list(texts)))


def union_spans(primary: Iterable[Span], secondary: Iterable[Span]) -> list[Span]:
    """``primary`` plus each ``secondary`` span that ends elsewhere and overlaps none of them, or holds
    whole the ones it overlaps (a phrase around a name: "Ovarian cancer" around "Ovarian").

    A mention vector is read at a span's last token, so two spans with one end are one mention:
    the primary's start is kept. Sorted; spans nest only where a secondary span holds others.
    """
    kept = sorted(primary)
    ends = {span.end for span in kept}
    merged = list(kept)
    for span in sorted(secondary):
        if span.end in ends:
            continue
        overlapped = [k for k in merged if span.overlaps(k)]
        if all(span.start <= k.start and k.end < span.end for k in overlapped):
            merged.append(span)
            ends.add(span.end)
    return sorted(merged)


# --- weights on disk --------------------------------------------------------------------------


def shipped_directory(profile: str) -> Path:
    return SHIPPED / profile / "spans"


def read_manifest(directory: str | Path) -> dict:
    path = Path(directory) / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise ConfigError(f"no span detector manifest at {path}") from error
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise ConfigError(f"{path} is not a {FORMAT} v{FORMAT_VERSION} manifest")
    return manifest


def save_detector(directory: str | Path, tensors: Mapping[str, np.ndarray], manifest: Mapping[str, Any],
                  dtype: str = "float16") -> Path:
    """Write ``spans.safetensors`` (weights stored as ``dtype``) and ``manifest.json``; the
    manifest gains the format fields and the digest of the stored weights."""
    from safetensors.numpy import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stored = {name: np.ascontiguousarray(np.asarray(tensors[name]).astype(dtype)) for name in PARAMETER_NAMES}
    save_file(stored, str(directory / WEIGHTS_FILE))
    full = {"format": FORMAT, "format_version": FORMAT_VERSION, **manifest, "weights_dtype": dtype,
            "digest": weights_digest(stored)}
    (directory / MANIFEST_FILE).write_text(json.dumps(full, indent=2, sort_keys=True) + "\n")
    return directory
