"""``Encoder``: raw text -> per-token value vectors of one layer, with ONNX Runtime or torch behind it.

Each text is tokenised as BOS + its tokens (no prompt); the BOS row is dropped from the result.
Long texts are cut into overlapping chunks and chunks packed into token-budget batches
(:mod:`ner_os.encoder.tokens`); results come back in input order. The work on token ids is done by
a :class:`~ner_os.encoder.runner.Runner`: :mod:`~ner_os.encoder.onnx_runner` or
:mod:`~ner_os.encoder.torch_runner`, imported when one is built (they import onnxruntime / torch).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ner_os.config import Settings
from ner_os.encoder.export import ensure_export
from ner_os.encoder.runner import Backend, Runner
from ner_os.encoder.tokens import (Chunk, padded_batch, start_token_id, text_chunks, token_budget_batches, tokenizable,
                                   trimmed_offsets)
from ner_os.errors import ConfigError
from ner_os.profiles import Profile, default_dtype, resolve_profile

BACKENDS = ("onnx", "torch")
DEVICES = ("cpu", "cuda")
TORCH_MODES = ("truncated", "reference")


@dataclass
class EncodedText:
    vectors: np.ndarray  # float32 [n_tokens, d_v]
    offsets: np.ndarray  # int32 [n_tokens, 2]: character [start, end) of each token


class LayeredText(dict):
    """``{layer: float32 [n_tokens, d_v]}`` for one text, with the token ``offsets`` as an attribute."""

    def __init__(self, vectors: dict, offsets: np.ndarray):
        super().__init__(vectors)
        self.offsets = offsets


class Encoder:
    """Value vectors of ``layer`` for raw texts. Build it with :meth:`load` or :meth:`from_settings`."""

    def __init__(
        self,
        profile: Profile,
        tokenizer,
        runner: Runner,
        *,
        d_v: int,
        batch_tokens: int = 2048,
        max_tokens: int | None = None,
        chunk_context: int = 128,
        dtype: str = "fp32",
    ):
        self.profile = profile
        self.dtype = dtype  # the runner's numerics
        self.layer = profile.layer
        self.tokenizer = tokenizer
        self.runner = runner
        self.d_v = d_v
        self.batch_tokens = batch_tokens
        self.max_tokens = max_tokens or profile.max_tokens
        if self.max_tokens < 3:
            raise ConfigError(f"max_tokens {self.max_tokens}: must be at least 3 (BOS + context + a token)")
        self.chunk_context = min(chunk_context, (self.max_tokens - 1) // 2)
        self.start_token_id = start_token_id(tokenizer)
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    # construction ---------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        profile: str | Profile = "gemma3-270m",
        *,
        model: str | None = None,
        layer: int | None = None,
        backend: str = "onnx",
        device: str = "cpu",
        dtype: str | None = None,
        batch_tokens: int = 2048,
        cache_dir: str | Path | None = None,
        mode: str = "truncated",
        export_dir: str | Path | None = None,
        max_tokens: int | None = None,
        threads: int | None = None,
        spin: bool = False,
    ) -> "Encoder":
        """An encoder for ``profile`` (a name or a :class:`Profile`), building what is missing.

        backend="onnx" finds or builds the export for profile/layer/dtype under the cache dir (or
        uses ``export_dir``); ``dtype`` None: :func:`ner_os.profiles.default_dtype` (int8 through ONNX on a
        CPU for gemma3-270m's own weights and layer, else fp32); backend="torch" runs the truncated module, or with mode="reference"
        the full model with a forward hook on ``v_proj`` (for parity checks and the benchmark).
        ``spin``: ONNX Runtime's threads busy-wait between operators, for a process that runs little
        beside the encoder and encodes short texts (a query client: a description in ~3 ms less).
        """
        check_choices(backend, device, mode)
        if not isinstance(profile, Profile):
            profile = resolve_profile(profile, model=model, layer=layer)
        dtype = dtype or default_dtype(profile, backend, device)
        cache_dir = Path(cache_dir or Settings.resolve().cache_dir)
        if backend == "torch":
            from ner_os.encoder.torch_runner import torch_backend  # imports torch

            built = torch_backend(profile, cache_dir, device=device, dtype=dtype, mode=mode, threads=threads)
        else:
            from ner_os.encoder.onnx_runner import onnx_backend  # imports onnxruntime

            directory = ensure_export(profile, dtype=dtype, cache_dir=cache_dir, out=export_dir)
            built = onnx_backend(directory, device=device, threads=threads, spin=spin)
        return cls.from_backend(profile, built, batch_tokens=batch_tokens, max_tokens=max_tokens)

    @classmethod
    def from_backend(cls, profile: Profile, built: Backend, *, batch_tokens: int = 2048, max_tokens: int | None = None) -> "Encoder":
        """An encoder over a built backend; its window is the smaller of ``max_tokens`` (or the profile's) and the model's."""
        window = min(max_tokens or profile.max_tokens, built.window)
        return cls(profile, built.tokenizer, built.runner, d_v=built.d_v, batch_tokens=batch_tokens, max_tokens=window,
                   dtype=built.dtype)

    @classmethod
    def from_settings(cls, settings, **overrides) -> "Encoder":
        """The encoder the settings describe (profile, model, layer, backend, device, dtype, batch_tokens, cache_dir)."""
        options = dict(
            model=settings.model,
            layer=settings.layer,
            backend=settings.backend,
            device=settings.device,
            dtype=settings.numerics,
            batch_tokens=settings.batch_tokens,
            cache_dir=settings.cache_dir,
        )
        options.update(overrides)
        return cls.load(settings.profile, **options)

    def start(self) -> None:
        """Begin loading what loads lazily (the ONNX session, the whole vocabulary) in background threads;
        returns at once. For a caller about to encode many texts (the loader), to overlap the loading
        with other work; a short query needs neither the whole vocabulary nor this call."""
        for part in (self.runner, self.tokenizer):
            start = getattr(part, "start", None)
            if start is not None:
                start()

    # encoding --------------------------------------------------------------------------------

    def encode(self, texts: Sequence[str]) -> list[EncodedText]:
        """Value vectors of ``self.layer`` for each text, in input order."""
        layered = self._encode(texts, [self.layer])
        return [EncodedText(vectors=item[self.layer], offsets=item.offsets) for item in layered]

    def encode_layers(self, texts: Sequence[str], layers: Sequence[int]) -> list[LayeredText]:
        """Value vectors of several layers from one truncated pass (torch backend)."""
        return self._encode(texts, sorted(set(int(layer) for layer in layers)))

    def tokenize(self, text: str) -> tuple[list[int], np.ndarray]:
        """Token ids (no BOS) and int32 [n, 2] character offsets, leading whitespace left out of each token."""
        encoded = self.tokenizer(tokenizable(text), add_special_tokens=False, return_offsets_mapping=True)
        return list(encoded["input_ids"]), trimmed_offsets(text, encoded["offset_mapping"])

    def tokenize_many(self, texts: Sequence[str]) -> list[tuple[list[int], np.ndarray]]:
        """:meth:`tokenize` of each text, in one tokenizer call: a long list is read by the whole
        tokenizer at once rather than, text by text, by a short text's restricted one
        (:class:`~ner_os.encoder.text_tokenizer.TextTokenizer`), which costs tens of milliseconds each."""
        if not texts:
            return []
        encoded = self.tokenizer([tokenizable(text) for text in texts], add_special_tokens=False,
                                 return_offsets_mapping=True)
        return [(list(ids), trimmed_offsets(text, offsets))
                for text, ids, offsets in zip(texts, encoded["input_ids"], encoded["offset_mapping"])]

    def chunks(self, text_index: int, ids: list[int]) -> list[Chunk]:
        """Windows of at most ``max_tokens`` (BOS included) covering ``ids``, each token kept once."""
        return text_chunks(
            text_index, ids, start_id=self.start_token_id, max_tokens=self.max_tokens, context=self.chunk_context
        )

    def _encode(self, texts: Sequence[str], layers: list[int]) -> list[LayeredText]:
        if isinstance(texts, str):
            raise TypeError("encode takes a list of texts, not one string")
        self.runner.check_layers(layers)
        start = getattr(self.runner, "start", None)  # a lazy runner loads beside the tokenising
        if start is not None:
            start()
        tokenized = self.tokenize_many(texts)
        results = [
            LayeredText({layer: np.zeros((len(ids), self.d_v), np.float32) for layer in layers}, offsets)
            for ids, offsets in tokenized
        ]
        chunks = [chunk for index, (ids, _) in enumerate(tokenized) for chunk in self.chunks(index, ids)]
        for batch in token_budget_batches(chunks, self.batch_tokens):
            outputs = self.runner.run(*padded_batch(batch, self.pad_token_id), layers)
            for row, chunk in enumerate(batch):
                kept = slice(chunk.keep_from, len(chunk.token_ids))
                count = kept.stop - kept.start
                for layer in layers:
                    target = results[chunk.text_index][layer]
                    target[chunk.write_at : chunk.write_at + count] = outputs[layer][row, kept]
        return results


def check_choices(backend: str, device: str, mode: str) -> None:
    """A ConfigError for a backend, device or torch mode that is not one of the choices."""
    if backend not in BACKENDS:
        raise ConfigError(f"backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    if device not in DEVICES:
        raise ConfigError(f"device {device!r}: expected one of {', '.join(DEVICES)}")
    if mode not in TORCH_MODES or (backend == "onnx" and mode != "truncated"):
        raise ConfigError(f"mode {mode!r}: 'truncated', or 'reference' with backend=torch")
