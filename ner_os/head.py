"""The projection head: a small MLP that maps value vectors into a type-aware space.

``Linear(d_v -> hidden) -> SiLU -> Linear(hidden -> out)``, output L2-normalised. Two optional
parts (format 2): an input transform per role -- the mean value vector of training mentions is
taken from a mention, the mean of training type descriptions from a description (a description
read alone sits in another region of value space than a mention read in its sentence), and,
where the head has one, a linear map fit from phrases read alone to the same phrases read in
context is applied to a description after that -- and a skip: the centred input, L2-normalised,
concatenated to the MLP output with weight ``skip_weight`` (cosine in the joint space = ``w`` *
raw cosine + ``(1-w)`` * MLP cosine), so the head keeps the raw geometry that separates types it
never saw. It is applied with numpy (no torch import: the loader and the query path stay light);
training lives in :mod:`ner_os.training.fit`. A head is a directory with ``head.safetensors`` and
``manifest.json``; the manifest ties it to the encoder it was trained on (profile, model, layer,
d_v) and records how it was trained.
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ner_os.digest import weights_digest
from ner_os.errors import ConfigError

WEIGHTS_FILE = "head.safetensors"
MANIFEST_FILE = "manifest.json"
FORMAT = "ner-os-projection-head"
FORMAT_VERSION = 2
log = logging.getLogger(__name__)
SHIPPED_HEADS = Path(__file__).parent / "heads"
# how the descriptions a head was trained on were read (ner_os.mentions.positions.description_text); heads
# trained before it was recorded read them as the first token of a text
DESCRIPTIONS_READ = "after one space"
# the parameter names shared with the torch module in ner_os.training.fit
PARAMETER_NAMES = ("hidden.weight", "hidden.bias", "output.weight", "output.bias")
# rms: each input row divided by its root mean square (scale-free, entries of order 1)
INPUT_NORMS = ("none", "rms")
# what a value vector was read from: a mention in its text, or a type description read alone
ROLES = ("mention", "query")
# optional per-role input transform, applied first: x - offset, then x @ map
OFFSET_NAMES = {role: f"offset.{role}" for role in ROLES}
MAP_NAMES = {role: f"map.{role}" for role in ROLES}


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, np.float32(1e-12))


def transform_input(x: np.ndarray, tensors: Mapping[str, np.ndarray], role: str) -> np.ndarray:
    """The per-role input transform: ``x - offset.<role>``, then ``@ map.<role>``, each where present."""
    if role not in ROLES:
        raise ConfigError(f"projection head role {role!r}: expected one of {', '.join(ROLES)}")
    if OFFSET_NAMES[role] in tensors:
        x = x - tensors[OFFSET_NAMES[role]]
    if MAP_NAMES[role] in tensors:
        x = x @ tensors[MAP_NAMES[role]]
    return x


def silu(x: np.ndarray) -> np.ndarray:
    # x * sigmoid(x), written so that large negative x neither overflows nor warns
    return x * (0.5 * (1.0 + np.tanh(0.5 * x)))


def encoder_identity(encoder) -> dict[str, Any]:
    """What a head must match in an encoder: profile, model, layer and value dimension."""
    profile = encoder.profile
    return {
        "profile": profile.name,
        "model": _model_id(encoder),
        "layer": int(encoder.layer),
        "d_v": int(encoder.d_v),
    }


def _model_id(encoder) -> str | None:
    for owner, attribute in ((encoder, "model_id"), (encoder.profile, "model_id"), (encoder.profile, "model")):
        value = getattr(owner, attribute, None)
        if isinstance(value, str):
            return value
    return None


class ProjectionHead:
    """An MLP head held as numpy arrays, with the manifest that says what it belongs to."""

    def __init__(self, weights: Mapping[str, np.ndarray], manifest: Mapping[str, Any]):
        missing = [name for name in PARAMETER_NAMES if name not in weights]
        if missing:
            raise ConfigError(f"projection head weights lack {', '.join(missing)}")
        self.weights = {name: np.asarray(weights[name], dtype=np.float32) for name in PARAMETER_NAMES}
        self.manifest = dict(manifest)
        self.input_tensors = {name: np.asarray(weights[name], dtype=np.float32)
                              for name in (*OFFSET_NAMES.values(), *MAP_NAMES.values()) if name in weights}
        self.offsets = {role: self.input_tensors[name] for role, name in OFFSET_NAMES.items() if name in weights}
        self.maps = {role: self.input_tensors[name] for role, name in MAP_NAMES.items() if name in weights}
        hidden_w, hidden_b = self.weights["hidden.weight"], self.weights["hidden.bias"]
        output_w, output_b = self.weights["output.weight"], self.weights["output.bias"]
        if hidden_w.ndim != 2 or output_w.ndim != 2 or hidden_b.shape != (hidden_w.shape[0],) \
                or output_w.shape[1] != hidden_w.shape[0] or output_b.shape != (output_w.shape[0],):
            raise ConfigError(
                f"projection head weights do not chain: hidden {hidden_w.shape}+{hidden_b.shape}, "
                f"output {output_w.shape}+{output_b.shape}"
            )
        d_v = hidden_w.shape[1]
        wrong = [f"{OFFSET_NAMES[role]} {offset.shape}" for role, offset in self.offsets.items() if offset.shape != (d_v,)]
        wrong += [f"{MAP_NAMES[role]} {map_.shape}" for role, map_ in self.maps.items() if map_.shape != (d_v, d_v)]
        if wrong:
            raise ConfigError(f"projection head input transforms must be {d_v}-d: got {', '.join(wrong)}")
        architecture = self.manifest.get("architecture", {})
        self.input_norm = architecture.get("input_norm", "none")
        if self.input_norm not in INPUT_NORMS:
            raise ConfigError(f"projection head input_norm {self.input_norm!r}: expected one of {', '.join(INPUT_NORMS)}")
        self.skip_weight = float(architecture.get("skip_weight", 0.0))
        if not 0 <= self.skip_weight < 1:
            raise ConfigError(f"projection head skip_weight {self.skip_weight}: expected 0 <= w < 1")
        # transposed once so that project() is two plain row-major matmuls
        self._hidden_wt = np.ascontiguousarray(hidden_w.T)
        self._output_wt = np.ascontiguousarray(output_w.T)

    @property
    def in_dim(self) -> int:
        return self.weights["hidden.weight"].shape[1]

    @property
    def hidden_dim(self) -> int:
        return self.weights["hidden.weight"].shape[0]

    @property
    def out_dim(self) -> int:
        """Width of the projected vector: the MLP output, plus the input's width when there is a skip."""
        return self.weights["output.weight"].shape[0] + (self.in_dim if self.skip_weight else 0)

    @property
    def encoder(self) -> dict[str, Any]:
        return dict(self.manifest.get("encoder", {}))

    @functools.cached_property
    def digest(self) -> str:
        """A short sha256 of every tensor (names, shapes, values): two heads with one digest project alike."""
        return weights_digest({**self.weights, **self.input_tensors})

    def project(self, x: np.ndarray, role: str = "mention") -> np.ndarray:
        """Value vectors ``[n, d_v]`` (or one ``[d_v]``) -> unit vectors ``[n, out]`` (or ``[out]``).

        ``role``: ``mention`` for vectors read at a mention in its text, ``query`` for type
        descriptions read alone; it picks the input transform (heads without one ignore it).
        """
        x = np.asarray(x, dtype=np.float32)
        if x.shape[-1] != self.in_dim:
            raise ConfigError(f"projection head expects {self.in_dim}-d vectors, got shape {x.shape}")
        x = transform_input(x, self.input_tensors, role)
        if self.input_norm == "rms":
            x = x / np.sqrt(np.mean(np.square(x), axis=-1, keepdims=True) + np.float32(1e-12))
        hidden = silu(x @ self._hidden_wt + self.weights["hidden.bias"])
        projected = l2_normalise(hidden @ self._output_wt + self.weights["output.bias"])
        if not self.skip_weight:
            return projected
        w = np.float32(self.skip_weight)
        return np.concatenate([np.sqrt(w) * l2_normalise(x), np.sqrt(1 - w) * projected], axis=-1)

    def check_compatible(self, encoder) -> None:
        """Raise ConfigError unless this head was trained on value vectors of this encoder."""
        wanted = self.encoder
        actual = encoder_identity(encoder)
        where = self.manifest.get("source", "this head")
        mismatches = [
            f"{key} {wanted[key]!r} (encoder has {actual[key]!r})"
            for key in ("profile", "layer", "d_v", "model")
            if wanted.get(key) is not None and actual.get(key) is not None and wanted[key] != actual[key]
        ]
        if actual["d_v"] != self.in_dim:
            mismatches.append(f"input size {self.in_dim} (encoder d_v is {actual['d_v']})")
        if mismatches:
            raise ConfigError(
                f"projection head {where} does not fit the encoder: it was trained for "
                + "; ".join(mismatches)
                + ". Pass --head for a matching head, --head none for raw vectors, or retrain with `ner-os train`."
            )

    def save(self, directory: str | Path) -> Path:
        from safetensors.numpy import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {**self.weights, **self.input_tensors}
        save_file({name: np.ascontiguousarray(array) for name, array in tensors.items()}, str(directory / WEIGHTS_FILE))
        manifest = {key: value for key, value in self.manifest.items() if key != "source"}
        manifest.update(format=FORMAT, format_version=FORMAT_VERSION)
        manifest["architecture"] = {
            "in_dim": self.in_dim, "hidden_dim": self.hidden_dim, "out_dim": self.out_dim,
            "activation": "silu", "output": "l2-normalised", "input_norm": self.input_norm,
            "input_offsets": sorted(self.offsets), "input_maps": sorted(self.maps), "skip_weight": self.skip_weight,
            **{k: v for k, v in manifest.get("architecture", {}).items() if k == "dropout"},
        }
        (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "ProjectionHead":
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        directory = Path(directory)
        weights_path, manifest_path = directory / WEIGHTS_FILE, directory / MANIFEST_FILE
        for path in (weights_path, manifest_path):
            if not path.is_file():
                raise ConfigError(f"projection head {directory}: {path.name} not found")
        try:
            manifest = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as error:
            raise ConfigError(f"{manifest_path}: not valid JSON ({error.msg}, line {error.lineno})") from None
        if manifest.get("format") != FORMAT:
            raise ConfigError(f"{manifest_path}: not a ner-os projection head manifest")
        if manifest.get("format_version", 0) > FORMAT_VERSION:
            raise ConfigError(f"{manifest_path}: format version {manifest['format_version']} is newer than this ner-os reads")
        try:
            weights = load_file(str(weights_path))
        except (SafetensorError, OSError) as error:
            raise ConfigError(f"{weights_path}: cannot read safetensors ({error})") from None
        manifest["source"] = str(directory)
        head = cls(weights, manifest)
        if head.maps and manifest.get("training", {}).get("descriptions_read") != DESCRIPTIONS_READ:
            log.warning("projection head %s maps descriptions read as the first token of a text; ner-os now reads "
                        "them after one space, so its query map misplaces them: retrain it with `ner-os train`",
                        directory)
        return head


def shipped_head_path(profile: str) -> Path | None:
    path = SHIPPED_HEADS / profile
    return path if (path / MANIFEST_FILE).is_file() else None


def head_for(settings, encoder) -> ProjectionHead | None:
    """The head the settings ask for: a directory, ``none`` (raw vectors), or the shipped default.

    With ``settings.head`` unset, the head shipped for the profile is used when it was trained on
    the encoder's layer and value size; otherwise mentions fall back to raw value vectors.
    """
    choice = settings.head
    if choice is not None and str(choice).lower() == "none":
        return None
    if choice is not None:
        head = ProjectionHead.load(choice)
        head.check_compatible(encoder)
        return head
    path = shipped_head_path(encoder.profile.name)
    if path is None:
        return None
    head = ProjectionHead.load(path)
    wanted, actual = head.encoder, encoder_identity(encoder)
    mismatched = [key for key in ("layer", "d_v", "model")
                  if wanted.get(key) is not None and actual[key] is not None and wanted[key] != actual[key]]
    if mismatched:
        log.warning("the head shipped for %s was trained for %s; using raw value vectors (train one with `ner-os train`)",
                    actual["profile"], ", ".join(f"{key} {wanted[key]}" for key in mismatched))
        return None
    return head
