"""The torch backend: the truncated module (mode='truncated') or the full model with hooks (mode='reference')."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ner_os.encoder.runner import Backend
from ner_os.encoder.truncated import TruncatedDecoder, text_config, value_projection
from ner_os.encoder.weights import load_model
from ner_os.errors import ConfigError
from ner_os.profiles import Profile

TORCH_DTYPES = ("fp32", "fp16")


class TorchRunner:
    """Runs the truncated module (mode='truncated') or the full model with hooks (mode='reference')."""

    def __init__(self, model, device: str = "cpu", mode: str = "truncated"):
        self.model = model
        self.device = device
        self.mode = mode
        self._truncated: dict[tuple[int, ...], object] = {}

    def value_width(self, layer: int) -> int:
        return int(value_projection(self.model, layer).out_features)

    def check_layers(self, layers: list[int]) -> None:
        for layer in layers:
            value_projection(self.model, layer)

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray, layers: list[int]) -> dict[int, np.ndarray]:
        ids = torch.from_numpy(input_ids).to(self.device)
        mask = torch.from_numpy(attention_mask).to(self.device)
        with torch.inference_mode():
            if self.mode == "reference":
                values = self._hooked_forward(ids, mask, layers)
            else:
                values = self._truncated_forward(ids, mask, layers)
        return {layer: value.float().cpu().numpy() for layer, value in zip(layers, values)}

    def _truncated_forward(self, ids, mask, layers):
        key = tuple(layers)
        if key not in self._truncated:
            self._truncated[key] = TruncatedDecoder(self.model, list(key)).eval()
        values = self._truncated[key](ids, mask)
        return values if isinstance(values, tuple) else (values,)

    def _hooked_forward(self, ids, mask, layers):
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


def torch_backend(
    profile: Profile,
    cache_dir: str | Path,
    *,
    device: str = "cpu",
    dtype: str = "fp32",
    mode: str = "truncated",
    threads: int | None = None,
) -> Backend:
    """The profile's model loaded (weights cached under ``cache_dir``) behind a :class:`TorchRunner`."""
    if dtype not in TORCH_DTYPES:
        raise ConfigError(f"dtype {dtype!r} with backend=torch: use fp32 or fp16 (int8 is for backend=onnx)")
    check_device(device)
    if threads:
        torch.set_num_threads(threads)
    loaded = load_model(profile, cache_dir, dtype=dtype, device=device)
    runner = TorchRunner(loaded.model, device=device, mode=mode)
    d_v = runner.value_width(profile.layer)
    check_d_v(profile, d_v)
    return Backend(runner, loaded.tokenizer, d_v=d_v, window=model_window(loaded.model), dtype=dtype)


def check_d_v(profile: Profile, d_v: int) -> None:
    if profile.d_v is not None and profile.d_v != d_v:
        raise ConfigError(f"profile {profile.name} expects d_v={profile.d_v}, but the model's v_proj gives {d_v}")


def check_device(device: str) -> None:
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but torch sees no CUDA GPU")


def model_window(model) -> int:
    return int(getattr(text_config(model), "max_position_embeddings", None) or 1 << 30)
