"""``Encoder``: raw text -> per-token value vectors of one layer, with ONNX Runtime or torch behind it.

Each text is tokenised as BOS + its tokens (no prompt); the BOS row is dropped from the result.
Texts longer than the window are cut into overlapping chunks: every chunk starts with BOS, and
every token takes its vector from exactly one chunk, one where it has ``chunk_context`` tokens of
left context (or the start of the text). Chunks are sorted by length and packed into batches of at
most ``batch_tokens`` padded tokens; results come back in input order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ner_os.errors import ConfigError
from ner_os.profiles import Profile, resolve_profile

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


@dataclass
class Chunk:
    text_index: int
    token_ids: list[int]  # BOS first
    keep_from: int  # first row of token_ids (BOS = row 0) whose vector is kept
    write_at: int  # where row keep_from goes in the text's token rows


class Encoder:
    """Value vectors of ``layer`` for raw texts. Build it with :meth:`load` or :meth:`from_settings`."""

    def __init__(
        self,
        profile: Profile,
        tokenizer,
        runner,
        *,
        d_v: int,
        batch_tokens: int = 2048,
        max_tokens: int | None = None,
        chunk_context: int = 128,
    ):
        self.profile = profile
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
        dtype: str = "fp32",
        batch_tokens: int = 2048,
        cache_dir: str | Path | None = None,
        mode: str = "truncated",
        export_dir: str | Path | None = None,
        max_tokens: int | None = None,
        threads: int | None = None,
    ) -> "Encoder":
        """An encoder for ``profile`` (a name or a :class:`Profile`), building what is missing.

        backend="onnx" finds or builds the export for profile/layer/dtype under the cache dir (or
        uses ``export_dir``); backend="torch" runs the truncated module, or with mode="reference"
        the full model with a forward hook on ``v_proj`` (for parity checks and the benchmark).
        """
        from ner_os.config import Settings

        if backend not in BACKENDS:
            raise ConfigError(f"backend {backend!r}: expected one of {', '.join(BACKENDS)}")
        if device not in DEVICES:
            raise ConfigError(f"device {device!r}: expected one of {', '.join(DEVICES)}")
        if mode not in TORCH_MODES or (backend == "onnx" and mode != "truncated"):
            raise ConfigError(f"mode {mode!r}: 'truncated', or 'reference' with backend=torch")
        if not isinstance(profile, Profile):
            profile = resolve_profile(profile, model=model, layer=layer)
        cache_dir = Path(cache_dir or Settings.resolve().cache_dir)
        if backend == "torch":
            return cls._load_torch(profile, device, dtype, batch_tokens, cache_dir, mode, max_tokens, threads)
        from ner_os.encoder.export import ensure_export

        directory = ensure_export(profile, dtype=dtype, cache_dir=cache_dir, out=export_dir)
        return cls._load_onnx(profile, directory, device, batch_tokens, max_tokens, threads)

    @classmethod
    def from_settings(cls, settings, **overrides) -> "Encoder":
        """The encoder the settings describe (profile, model, layer, backend, device, dtype, batch_tokens, cache_dir)."""
        options = dict(
            model=settings.model,
            layer=settings.layer,
            backend=settings.backend,
            device=settings.device,
            dtype=settings.dtype,
            batch_tokens=settings.batch_tokens,
            cache_dir=settings.cache_dir,
        )
        options.update(overrides)
        return cls.load(settings.profile, **options)

    @classmethod
    def _load_torch(cls, profile, device, dtype, batch_tokens, cache_dir, mode, max_tokens, threads):
        from ner_os.encoder.weights import load_model

        if dtype not in ("fp32", "fp16"):
            raise ConfigError(f"dtype {dtype!r} with backend=torch: use fp32 or fp16 (int8 is for backend=onnx)")
        check_device(device)
        if threads:
            import torch

            torch.set_num_threads(threads)
        loaded = load_model(profile, cache_dir, dtype=dtype, device=device)
        runner = TorchRunner(loaded.model, device=device, mode=mode)
        d_v = runner.value_width(profile.layer)
        check_d_v(profile, d_v)
        window = min(max_tokens or profile.max_tokens, model_window(loaded.model))
        return cls(profile, loaded.tokenizer, runner, d_v=d_v, batch_tokens=batch_tokens, max_tokens=window)

    @classmethod
    def _load_onnx(cls, profile, directory, device, batch_tokens, max_tokens, threads):
        from ner_os.encoder.export import read_manifest
        from ner_os.encoder.weights import load_tokenizer

        manifest = read_manifest(directory)
        runner = OnnxRunner(Path(directory) / manifest["graph"], manifest["layer"], device=device, threads=threads)
        tokenizer = load_tokenizer(str(directory))
        window = min(max_tokens or profile.max_tokens, manifest.get("max_position_embeddings") or 1 << 30)
        return cls(profile, tokenizer, runner, d_v=manifest["d_v"], batch_tokens=batch_tokens, max_tokens=window)

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
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return list(encoded["input_ids"]), trimmed_offsets(text, encoded["offset_mapping"])

    def _encode(self, texts: Sequence[str], layers: list[int]) -> list[LayeredText]:
        if isinstance(texts, str):
            raise TypeError("encode takes a list of texts, not one string")
        self.runner.check_layers(layers)
        tokenized = [self.tokenize(text) for text in texts]
        results = [
            LayeredText({layer: np.zeros((len(ids), self.d_v), np.float32) for layer in layers}, offsets)
            for ids, offsets in tokenized
        ]
        chunks = [chunk for index, (ids, _) in enumerate(tokenized) for chunk in self.chunks(index, ids)]
        for batch in token_budget_batches(chunks, self.batch_tokens):
            input_ids, attention_mask = self._pad(batch)
            outputs = self.runner.run(input_ids, attention_mask, layers)
            for row, chunk in enumerate(batch):
                kept = slice(chunk.keep_from, len(chunk.token_ids))
                count = kept.stop - kept.start
                for layer in layers:
                    target = results[chunk.text_index][layer]
                    target[chunk.write_at : chunk.write_at + count] = outputs[layer][row, kept]
        return results

    def chunks(self, text_index: int, ids: list[int]) -> list[Chunk]:
        """Windows of at most ``max_tokens`` (BOS included) covering ``ids``, each token kept once."""
        room = self.max_tokens - 1
        out = []
        start, covered = 0, 0  # window start in ids; tokens already given a vector
        while covered < len(ids):
            window = ids[start : start + room]
            out.append(Chunk(text_index, [self.start_token_id, *window], 1 + covered - start, covered))
            covered = start + len(window)
            start = covered - self.chunk_context
        return out

    def _pad(self, batch: list[Chunk]) -> tuple[np.ndarray, np.ndarray]:
        width = max(len(chunk.token_ids) for chunk in batch)
        input_ids = np.full((len(batch), width), self.pad_token_id, dtype=np.int64)
        attention_mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, chunk in enumerate(batch):
            input_ids[row, : len(chunk.token_ids)] = chunk.token_ids
            attention_mask[row, : len(chunk.token_ids)] = 1
        return input_ids, attention_mask


# batching and tokens -------------------------------------------------------------------------


MAX_PADDING = 0.1  # a batch closes early once padding would pass 10% of its real tokens ...
MIN_BATCH_TOKENS = 256  # ... provided it already holds this many: enough rows for efficient matmuls


def token_budget_batches(chunks: list[Chunk], batch_tokens: int) -> list[list[Chunk]]:
    """Chunks sorted longest first, packed so that rows x longest row <= batch_tokens (>= 1 row).

    Among short texts one budget spans very different lengths; a batch also closes when padding
    would exceed MAX_PADDING of its real tokens and it holds MIN_BATCH_TOKENS real tokens already.
    """
    ordered = sorted(chunks, key=lambda chunk: len(chunk.token_ids), reverse=True)
    batches: list[list[Chunk]] = []
    real = 0
    for chunk in ordered:
        length = len(chunk.token_ids)
        if batches:
            padded = (len(batches[-1]) + 1) * len(batches[-1][0].token_ids)
            too_padded = real >= MIN_BATCH_TOKENS and padded > (1 + MAX_PADDING) * (real + length)
            if padded <= batch_tokens and not too_padded:
                batches[-1].append(chunk)
                real += length
                continue
        batches.append([chunk])
        real = length
    return batches


def start_token_id(tokenizer) -> int:
    """BOS; models trained without one (Qwen) start documents with their end-of-text token instead."""
    for candidate in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    raise ConfigError(f"{type(tokenizer).__name__} has neither a BOS nor an EOS token to start a text with")


def trimmed_offsets(text: str, offsets) -> np.ndarray:
    """int32 [n, 2] offsets; a token's leading whitespace (SentencePiece's '▁') is not part of its span."""
    out = np.asarray(offsets, dtype=np.int32).reshape(-1, 2).copy()
    for row in out:
        start, end = int(row[0]), int(row[1])
        while start < end - 1 and text[start].isspace():
            start += 1
        row[0] = start
    return out


def check_d_v(profile: Profile, d_v: int) -> None:
    if profile.d_v is not None and profile.d_v != d_v:
        raise ConfigError(f"profile {profile.name} expects d_v={profile.d_v}, but the model's v_proj gives {d_v}")


def check_device(device: str) -> None:
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("device=cuda but torch sees no CUDA GPU")


def model_window(model) -> int:
    from ner_os.encoder.truncated import text_config

    return int(getattr(text_config(model), "max_position_embeddings", None) or 1 << 30)


def cpu_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# backends ------------------------------------------------------------------------------------


class TorchRunner:
    """Runs the truncated module (mode='truncated') or the full model with hooks (mode='reference')."""

    def __init__(self, model, device: str = "cpu", mode: str = "truncated"):
        self.model = model
        self.device = device
        self.mode = mode
        self._truncated: dict[tuple[int, ...], object] = {}

    def value_width(self, layer: int) -> int:
        from ner_os.encoder.truncated import value_projection

        return int(value_projection(self.model, layer).out_features)

    def check_layers(self, layers: list[int]) -> None:
        from ner_os.encoder.truncated import value_projection

        for layer in layers:
            value_projection(self.model, layer)

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray, layers: list[int]) -> dict[int, np.ndarray]:
        import torch

        ids = torch.from_numpy(input_ids).to(self.device)
        mask = torch.from_numpy(attention_mask).to(self.device)
        with torch.inference_mode():
            if self.mode == "reference":
                values = self._hooked_forward(ids, mask, layers)
            else:
                values = self._truncated_forward(ids, mask, layers)
        return {layer: value.float().cpu().numpy() for layer, value in zip(layers, values)}

    def _truncated_forward(self, ids, mask, layers):
        from ner_os.encoder.truncated import TruncatedDecoder

        key = tuple(layers)
        if key not in self._truncated:
            self._truncated[key] = TruncatedDecoder(self.model, list(key)).eval()
        values = self._truncated[key](ids, mask)
        return values if isinstance(values, tuple) else (values,)

    def _hooked_forward(self, ids, mask, layers):
        from ner_os.encoder.truncated import value_projection

        captured: dict[int, object] = {}
        handles = [
            value_projection(self.model, layer).register_forward_hook(
                lambda module, args, output, layer=layer: captured.__setitem__(layer, output)
            )
            for layer in layers
        ]
        try:
            self.model(input_ids=ids, attention_mask=mask, use_cache=False)
        finally:
            for handle in handles:
                handle.remove()
        return [captured[layer] for layer in layers]


class OnnxRunner:
    """An ONNX Runtime session over an exported truncated graph (one layer)."""

    def __init__(self, graph: str | Path, layer: int, device: str = "cpu", threads: int | None = None):
        import onnxruntime as ort

        self.layer = layer
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = threads or cpu_threads()
        options.inter_op_num_threads = 1
        # no busy-waiting between ops: the loader runs span detection and indexing beside the encoder
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = ["CPUExecutionProvider"]
        if device == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ConfigError("device=cuda with backend=onnx needs onnxruntime-gpu (pip install 'ner-os[gpu]')")
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(str(graph), sess_options=options, providers=providers)

    def check_layers(self, layers: list[int]) -> None:
        if layers != [self.layer]:
            raise ConfigError(f"this ONNX export reads layer {self.layer} only; use backend=torch to read layers {layers}")

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray, layers: list[int]) -> dict[int, np.ndarray]:
        (values,) = self.session.run(["value_vectors"], {"input_ids": input_ids, "attention_mask": attention_mask})
        return {self.layer: values.astype(np.float32, copy=False)}
