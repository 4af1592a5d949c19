"""Export the truncated decoder through Optimum to ONNX, with the tokenizer and a manifest.

An export directory holds ``model.onnx`` (plus ``model.onnx_data`` when the graph is over 2 GB),
the tokenizer files and ``manifest.json`` (model identity, layer, d_v, dtype, opset, library
versions). Inputs ``input_ids`` and ``attention_mask`` [batch, sequence]; output ``value_vectors``
[batch, sequence, d_v]; nothing after block L's v_proj is in the graph.

dtype: ``fp32``; ``fp16`` (the model is loaded and traced in half precision); ``int8`` (the fp32
graph quantized by ONNX Runtime, see :func:`quantize_int8`).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import logging
import shutil
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from ner_os.atomic import replacing_directory
from ner_os.digest import file_sha256
from ner_os.encoder.calibration import CALIBRATION_TEXTS
from ner_os.encoder.tokens import start_token_id
from ner_os.encoder.weights import load_model, weights_location
from ner_os.errors import ConfigError
from ner_os.profiles import DTYPES, Profile, resolve_profile

OPSET = 18
GRAPH = "model.onnx"
MANIFEST = "manifest.json"
TOKENIZER_JSON = "tokenizer.json"
MANIFEST_FORMAT = 1
OUTPUT = "value_vectors"


# where exports live and what they must match ---------------------------------------------------


def default_export_dir(profile: Profile, dtype: str, cache_dir: str | Path, identity: dict) -> Path:
    """``<cache_dir>/exports/<profile>-<model hash>-l<layer>-<dtype>``."""
    model_hash = hashlib.sha256(json.dumps(_identity_key(identity), sort_keys=True).encode()).hexdigest()[:10]
    return Path(cache_dir) / "exports" / f"{profile.name}-{model_hash}-l{profile.layer}-{dtype}"


def read_manifest(directory: str | Path) -> dict:
    path = Path(directory) / MANIFEST
    if not path.exists():
        raise ConfigError(f"{directory}: no {MANIFEST}; not an ner-os export (run `ner-os export`)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}: not valid JSON ({error})") from None


def content_digests(directory: str | Path) -> dict[str, str]:
    """The sha256 of the export's graph and tokenizer.json, by file name: what its bytes are, whenever it
    was made (recorded in the manifest at export time; computed for an export made before that)."""
    manifest = read_manifest(directory)
    return manifest.get("content") or _file_digests(Path(directory), (manifest.get("graph", GRAPH), TOKENIZER_JSON))


def _file_digests(directory: Path, names) -> dict[str, str]:
    return {name: file_sha256(directory / name) for name in names if (directory / name).is_file()}


def check_manifest(manifest: dict, directory: str | Path, profile: Profile, dtype: str, identity: dict | None) -> None:
    """A ConfigError naming each field where the export in ``directory`` differs from the request."""
    wanted = {"profile": profile.name, "layer": profile.layer, "dtype": dtype}
    if dtype == "int8":
        wanted["int8 recipe version"] = INT8_RECIPE["version"]
    if profile.d_v is not None:
        wanted["d_v"] = profile.d_v
    if identity is not None:
        wanted["identity"] = _identity_key(identity)
    found = dict(manifest, identity=_identity_key(manifest.get("identity", {})))
    found["int8 recipe version"] = _recipe_version(manifest)
    differences = [f"{key} {found.get(key)!r} (wanted {value!r})" for key, value in wanted.items() if found.get(key) != value]
    if differences:
        raise ConfigError(f"export {directory} does not match the request: " + ", ".join(differences))


def _identity_key(identity: dict) -> dict:
    # the revision of a hub model is only known after loading it: not part of the match
    return {key: value for key, value in identity.items() if key != "revision"}


# building ------------------------------------------------------------------------------------


def export_encoder(settings, out: str | Path | None = None, force: bool = False) -> Path:
    """The export for the settings' profile/model/layer/dtype: built (rebuilt with ``force``) or reused."""
    profile = resolve_profile(settings.profile, model=settings.model, layer=settings.layer)
    if force:
        return export_profile(profile, dtype=settings.numerics, cache_dir=settings.cache_dir, out=out)
    return ensure_export(profile, dtype=settings.numerics, cache_dir=settings.cache_dir, out=out)


def ensure_export(profile: Profile, dtype: str = "fp32", cache_dir: str | Path = ".", out: str | Path | None = None) -> Path:
    """The export directory for profile/layer/dtype: ``out`` or the cache's, built if missing, checked if present."""
    _check_dtype(dtype)
    _, identity = weights_location(profile, cache_dir)
    directory = Path(out) if out is not None else default_export_dir(profile, dtype, cache_dir, identity)
    if (directory / MANIFEST).exists():
        manifest = read_manifest(directory)
        if out is None and _older_recipe(manifest, dtype):  # the cache's own: rebuilt in the current recipe
            return export_profile(profile, dtype=dtype, cache_dir=cache_dir, out=directory)
        check_manifest(manifest, directory, profile, dtype, identity)
        return directory
    if directory.is_dir() and any(directory.iterdir()):
        read_manifest(directory)  # a directory with other things in it: say it is not an export
    return export_profile(profile, dtype=dtype, cache_dir=cache_dir, out=directory)


def export_profile(profile: Profile, dtype: str = "fp32", cache_dir: str | Path = ".", out: str | Path | None = None, opset: int = OPSET) -> Path:
    """Export ``profile`` truncated at its layer to ``out`` (default: the cache's export dir); returns it."""
    _check_dtype(dtype)
    _, identity = weights_location(profile, cache_dir)
    directory = Path(out) if out is not None else default_export_dir(profile, dtype, cache_dir, identity)
    with replacing_directory(directory) as scratch:
        loaded = load_model(profile, cache_dir, dtype="fp16" if dtype == "fp16" else "fp32")
        if dtype == "int8":
            d_v = export_int8_graph(loaded, profile.layer, scratch / GRAPH, opset=opset)
        else:
            d_v = export_graph(loaded.model, profile.layer, scratch / GRAPH, opset=opset)
        loaded.tokenizer.save_pretrained(scratch)
        manifest = _manifest(profile, loaded, d_v, dtype, opset)
        manifest["external_data"] = (scratch / (GRAPH + "_data")).exists()
        manifest["content"] = _file_digests(scratch, (GRAPH, TOKENIZER_JSON))
        manifest["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        (scratch / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return directory


def export_graph(model, layer: int, path: Path, opset: int = OPSET) -> int:
    """Trace the model truncated at ``layer`` to ``path`` through Optimum's exporter; returns d_v."""
    from optimum.exporters.onnx.convert import export

    from ner_os.encoder.truncated import TruncatedDecoder  # imports torch

    wrapper = ValueVectorsModule(TruncatedDecoder(model, layer)).eval()
    export(model=wrapper, config=value_vectors_onnx_config(model.config), output=path, opset=opset)
    return int(wrapper.truncated.v_projs[0].out_features)


def value_vectors_onnx_config(config):
    """An Optimum OnnxConfig: input_ids / attention_mask in, value_vectors out, batch and sequence dynamic."""
    from optimum.exporters.onnx.config import TextEncoderOnnxConfig
    from optimum.utils.normalized_config import NormalizedTextConfig

    class ValueVectorsOnnxConfig(TextEncoderOnnxConfig):
        NORMALIZED_CONFIG_CLASS = NormalizedTextConfig
        DEFAULT_ONNX_OPSET = OPSET

        @property
        def inputs(self):
            axes = {0: "batch_size", 1: "sequence_length"}
            return {"input_ids": dict(axes), "attention_mask": dict(axes)}

        @property
        def outputs(self):
            return {OUTPUT: {0: "batch_size", 1: "sequence_length"}}

    return ValueVectorsOnnxConfig(config, task="feature-extraction")


def _value_vectors_module():
    import torch

    class ValueVectorsModule(torch.nn.Module):
        """The truncated decoder with a named output; exposes ``config`` as the exporter requires."""

        def __init__(self, truncated):
            super().__init__()
            self.truncated = truncated
            self.config = truncated.config

        def forward(self, input_ids, attention_mask):
            return {OUTPUT: self.truncated(input_ids, attention_mask)}

    return ValueVectorsModule


def ValueVectorsModule(truncated):  # noqa: N802 - builds the nn.Module class lazily (torch import)
    return _value_vectors_module()(truncated)


# int8 ------------------------------------------------------------------------------------------

INT8_RECIPE = {
    "version": 2,  # 1: activations per tensor (a text's vectors depended on the texts batched with it)
    "method": "SmoothQuant rescaling folded into the fp32 weights, then ONNX Runtime dynamic quantization "
              "with each activation row quantized on its own",
    "smoothing_alpha": 0.8,
    "weights": "int8, per output channel",
    "activations": "int8, dynamic, per token (symmetric; fed to MatMulInteger as uint8 with zero point 128)",
    "kept_fp32": ["mlp.down_proj (its input has the strongest channel outliers)", "embedding", "attention"],
}
KEPT_FP32 = ("down_proj",)
PER_TOKEN = "ner_os_per_token/"  # the names of what quantize_activations_per_token adds


def export_int8_graph(loaded, layer: int, path: Path, opset: int = OPSET) -> int:
    """Smooth, export fp32, quantize: the recipe in INT8_RECIPE (value cosine to fp32 ~0.997 on Gemma 3 270M)."""
    from ner_os.encoder.smoothing import smooth_for_int8  # imports torch

    tokenizer = loaded.tokenizer
    start = start_token_id(tokenizer)
    calibration = [[start, *tokenizer(text, add_special_tokens=False)["input_ids"]] for text in CALIBRATION_TEXTS]
    smooth_for_int8(loaded.model, layer, calibration, alpha=INT8_RECIPE["smoothing_alpha"])
    smoothed = path.parent / "smoothed" / GRAPH
    smoothed.parent.mkdir()
    d_v = export_graph(loaded.model, layer, smoothed, opset=opset)
    quantize_int8(smoothed, path)
    shutil.rmtree(smoothed.parent)
    return d_v


def numerics_id(dtype: str) -> str:
    """The numerics as the caches of vectors name them: an int8 export's recipe version is part of it."""
    return f"int8:{INT8_RECIPE['version']}" if dtype == "int8" else dtype


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 of every weight MatMul in ``source`` except those named in KEPT_FP32, activations per token."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(source), load_external_data=False).graph
    kept = [node.name for node in graph.node if node.op_type == "MatMul" and any(name in node.name for name in KEPT_FP32)]
    with _without_preprocessing_advice():
        quantize_dynamic(
            str(source),
            str(target),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
            nodes_to_exclude=kept,
            use_external_data_format=(source.parent / (source.name + "_data")).exists(),
            extra_options={"MatMulConstBOnly": True},
        )
    quantize_activations_per_token(target)


def quantize_activations_per_token(path: Path) -> int:
    """Replace each ``DynamicQuantizeLinear`` in the graph at ``path`` by a per-row quantization; returns how many.

    ONNX Runtime's dynamic quantization takes one scale for a whole activation tensor, so a text's vectors
    depended on the other texts and the padding of its batch (cosine 0.993 on average, down to 0.87, between a
    sentence read in a batch and alone). Here each row (token) gets its own scale ``max|x| / 127``: symmetric
    int8 shifted to uint8 with zero point 128, which the ``MatMulInteger`` that follows takes as it did, and the
    scale, now ``[..., 1]``, broadcasts through the ``Mul`` by the weight scales. Plain ONNX ops (opset 18), so
    ML Commons' ONNX Runtime runs it too; initializers are not rewritten, so external data stays valid.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path), load_external_data=False)
    graph = model.graph
    constants = {"axes": np.array([-1], dtype=np.int64), "eps": np.array(1e-8, dtype=np.float32),
                 "levels": np.array(127.0, dtype=np.float32), "low": np.array(-127.0, dtype=np.float32),
                 "high": np.array(127.0, dtype=np.float32), "shift": np.array(128.0, dtype=np.float32),
                 "zero_point": np.array(128, dtype=np.uint8)}
    name = {key: f"{PER_TOKEN}{key}" for key in constants}
    nodes, replaced = [], 0
    for node in graph.node:
        if node.op_type != "DynamicQuantizeLinear":
            nodes.append(node)
            continue
        replaced += 1
        (x,), (quantized, scale, zero_point) = node.input, node.output
        at = f"{PER_TOKEN}{replaced}/"
        steps = [("Abs", [x], "abs", {}), ("ReduceMax", [at + "abs", name["axes"]], "max", {"keepdims": 1}),
                 ("Max", [at + "max", name["eps"]], "max_eps", {}), ("Div", [at + "max_eps", name["levels"]], scale, {}),
                 ("Div", [x, scale], "scaled", {}), ("Round", [at + "scaled"], "rounded", {}),
                 ("Clip", [at + "rounded", name["low"], name["high"]], "clipped", {}),
                 ("Add", [at + "clipped", name["shift"]], "shifted", {}),
                 ("Cast", [at + "shifted"], quantized, {"to": TensorProto.UINT8}),
                 ("Identity", [name["zero_point"]], zero_point, {})]
        for op, inputs, output, attributes in steps:
            output = output if output in node.output else at + output
            nodes.append(helper.make_node(op, inputs, [output], name=output, **attributes))
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(numpy_helper.from_array(value, name[key]) for key, value in constants.items())
    onnx.save(model, str(path))
    return replaced


@contextlib.contextmanager
def _without_preprocessing_advice():
    """ONNX Runtime advises its shape-inference pre-processing on the root logger at every quantization; the
    recipe was measured without it, and int8 is a first load's default, so the advice is not shown."""
    def advice(record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Please consider to run pre-processing")

    root = logging.getLogger()
    root.addFilter(advice)
    try:
        yield
    finally:
        root.removeFilter(advice)


# helpers ---------------------------------------------------------------------------------------


def _manifest(profile: Profile, loaded, d_v: int, dtype: str, opset: int) -> dict:
    from ner_os.encoder.truncated import text_config  # imports torch

    config = text_config(loaded.model)
    return {
        "format": MANIFEST_FORMAT,
        "profile": profile.name,
        "model": loaded.identity["model"],
        "identity": loaded.identity,
        "architecture": config.model_type,
        "layer": profile.layer,
        "num_hidden_layers": config.num_hidden_layers,
        "d_v": d_v,
        "dtype": dtype,
        "opset": opset,
        "graph": GRAPH,
        "inputs": ["input_ids", "attention_mask"],
        "output": OUTPUT,
        "max_position_embeddings": getattr(config, "max_position_embeddings", None),
        "versions": _library_versions(),
        **({"quantization": INT8_RECIPE} if dtype == "int8" else {}),
    }


def _library_versions() -> dict:
    versions = {}
    for package in ("ner-os", "torch", "transformers", "optimum", "optimum-onnx", "onnx", "onnxruntime"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return versions


def _recipe_version(manifest: dict) -> int | None:
    if manifest.get("dtype") != "int8":
        return None
    return (manifest.get("quantization") or {}).get("version", 1)


def _older_recipe(manifest: dict, dtype: str) -> bool:
    return dtype == "int8" and _recipe_version(manifest) not in (None, INT8_RECIPE["version"])


def _check_dtype(dtype: str) -> None:
    if dtype not in DTYPES:
        raise ConfigError(f"dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
