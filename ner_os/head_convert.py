"""The NER Retriever paper's projection checkpoint as a ner-os head.

The reference implementation (NER Retriever, Shachar et al. 2025, arXiv 2509.04011; its ``mlp.py``)
saves ``MLP().state_dict()`` of ``Sequential(Linear(1024, 500), SiLU(), Dropout(0.1), Linear(500, 500))``
held as ``net``: keys ``net.0.weight``, ``net.0.bias``, ``net.3.weight``, ``net.3.bias``, read from
Llama-3.1-8B block 17 ``v_proj``. :func:`convert_checkpoint` maps those (and the common layouts of
the same two layers) onto :data:`ner_os.head.PARAMETER_NAMES` and saves a format-2 head with no
input offsets, no query map and no skip: with it, ``--profile llama-3.1-8b --head DIR`` runs the
paper's pipeline (its output is L2-normalised here; cosine ranking is unchanged by that). torch is
imported only to read the checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from ner_os.digest import weights_digest
from ner_os.errors import ConfigError
from ner_os.head import PARAMETER_NAMES, ProjectionHead
from ner_os.profiles import resolve_profile

REFERENCE_PROFILE = "llama-3.1-8b"
# (first Linear, second Linear) prefixes: the reference MLP's ``net`` Sequential first
LAYOUTS = (("net.0", "net.3"), ("0", "3"), ("mlp.0", "mlp.3"), ("linear1", "linear2"), ("fc1", "fc2"),
           ("hidden", "output"))
WRAPPERS = ("state_dict", "model", "model_state_dict")
STRIPPED_PREFIXES = ("module.", "_orig_mod.")


def read_checkpoint(path: str | Path) -> dict[str, np.ndarray]:
    """The tensors of a ``torch.save``-d state dict as float32 numpy arrays (weights only: no code runs)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint {path}: not found")
    try:
        loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - pickle, zip and torch's own errors alike: one line
        reason = (str(error).splitlines() or [""])[0][:200]
        raise ConfigError(f"checkpoint {path}: not a PyTorch state dict ({type(error).__name__}: {reason})") from None
    return {name: tensor.detach().float().numpy() for name, tensor in unwrap(loaded, path).items()}


def unwrap(loaded, path) -> dict:
    """The state dict inside a checkpoint: itself, or under ``state_dict`` / ``model``; ``module.`` prefixes dropped."""
    if not isinstance(loaded, Mapping):
        raise ConfigError(f"checkpoint {path}: holds a {type(loaded).__name__}, not a state dict")
    for key in WRAPPERS:
        if isinstance(loaded.get(key), Mapping):
            loaded = loaded[key]
            break
    tensors = {}
    for name, value in loaded.items():
        if not hasattr(value, "detach"):
            continue
        for prefix in STRIPPED_PREFIXES:
            name = name[len(prefix):] if name.startswith(prefix) else name
        tensors[name] = value
    return tensors


def head_weights(tensors: Mapping[str, np.ndarray], path="the checkpoint") -> dict[str, np.ndarray]:
    """``tensors`` (one of :data:`LAYOUTS`) as ``hidden.*`` / ``output.*``; ConfigError naming the keys found otherwise."""
    for first, second in LAYOUTS:
        names = [f"{first}.weight", f"{first}.bias", f"{second}.weight", f"{second}.bias"]
        if all(name in tensors for name in names):
            return {ours: np.asarray(tensors[theirs], dtype=np.float32) for ours, theirs in zip(PARAMETER_NAMES, names)}
    found = ", ".join(sorted(tensors)[:12]) + (", ..." if len(tensors) > 12 else "") if tensors else "no tensors"
    expected = "; ".join(f"{a}.weight/bias + {b}.weight/bias" for a, b in LAYOUTS[:5])
    raise ConfigError(f"{path}: no Linear -> SiLU -> Dropout -> Linear layout among its keys ({found}); expected {expected}")


def check_shapes(weights: Mapping[str, np.ndarray], d_v: int | None, path="the checkpoint") -> None:
    """One line saying what is wrong: 2-d weights, matching biases, chained widths, the input width d_v."""
    hidden_w, hidden_b = weights["hidden.weight"], weights["hidden.bias"]
    output_w, output_b = weights["output.weight"], weights["output.bias"]
    shapes = (f"first Linear {tuple(hidden_w.shape)} + bias {tuple(hidden_b.shape)}, "
              f"second Linear {tuple(output_w.shape)} + bias {tuple(output_b.shape)}")
    if hidden_w.ndim != 2 or output_w.ndim != 2:
        raise ConfigError(f"{path}: the Linear weights must be 2-d matrices: {shapes}")
    if hidden_b.shape != (hidden_w.shape[0],) or output_b.shape != (output_w.shape[0],):
        raise ConfigError(f"{path}: a bias does not match its Linear's output width: {shapes}")
    if output_w.shape[1] != hidden_w.shape[0]:
        raise ConfigError(f"{path}: the second Linear reads {output_w.shape[1]} values but the first gives "
                          f"{hidden_w.shape[0]}: {shapes}")
    if d_v is not None and hidden_w.shape[1] != d_v:
        raise ConfigError(f"{path}: the first Linear reads {hidden_w.shape[1]}-d vectors but the profile's value "
                          f"vectors are {d_v}-d (pass the --profile/--layer the head was trained for): {shapes}")


def convert_checkpoint(checkpoint: str | Path, out: str | Path, profile: str = REFERENCE_PROFILE,
                       model: str | None = None, layer: int | None = None) -> ProjectionHead:
    """Read ``checkpoint``, check it against the profile (``model``/``layer`` as ``--model``/``--layer``),
    save the head to ``out`` and return it (loaded back, as ``--head out`` will read it)."""
    resolved = resolve_profile(profile, model=model, layer=layer)
    tensors = read_checkpoint(checkpoint)
    weights = head_weights(tensors, checkpoint)
    check_shapes(weights, resolved.d_v, checkpoint)
    head = ProjectionHead(weights, reference_manifest(resolved, model, weights, checkpoint))
    return ProjectionHead.load(head.save(out))


def reference_manifest(profile, model: str | None, weights: Mapping[str, np.ndarray], checkpoint) -> dict:
    """The manifest of a converted head: the encoder it reads and where its weights came from.

    The model is recorded only when given: the profile, layer and width tie the head to its encoder,
    so that a local copy of the same weights (``--model PATH``) fits it too."""
    return {
        "encoder": {"profile": profile.name, "model": model, "layer": int(profile.layer),
                    "d_v": int(weights["hidden.weight"].shape[1])},
        "architecture": {"dropout": "present in training, identity at inference"},
        "training": {
            "method": "converted: NER Retriever reference projection head (Shachar et al. 2025, arXiv 2509.04011)",
            "checkpoint": Path(checkpoint).name,
            "checkpoint_digest": weights_digest(dict(weights)),
        },
    }
