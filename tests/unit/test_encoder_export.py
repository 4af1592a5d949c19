"""ONNX export of the truncated decoder: parity with the hook reference, graph contents, manifests."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from ner_os.encoder.export import GRAPH, INT8_RECIPE, MANIFEST, ensure_export, export_profile
from ner_os.encoder import Encoder
from ner_os.errors import ConfigError
from ner_os.profiles import resolve_profile
from test_encoder_tiny import ARCHITECTURES, CORPUS, LAYER, max_abs_diff, tiny_model_dir

pytestmark = pytest.mark.unit

_exports: dict = {}


def tiny_export(arch, tmp_path_factory, dtype="fp32"):
    """(profile, export dir) of the tiny ``arch`` model at LAYER, exported once per session."""
    if (arch, dtype) not in _exports:
        profile = resolve_profile("custom", model=tiny_model_dir(arch, tmp_path_factory), layer=LAYER)
        out = tmp_path_factory.mktemp(f"export-{arch}-{dtype}") / "export"
        _exports[arch, dtype] = profile, export_profile(profile, dtype=dtype, cache_dir=tmp_path_factory.getbasetemp(), out=out)
    return _exports[arch, dtype]


def encoders(arch, tmp_path_factory, dtype="fp32", **options):
    profile, directory = tiny_export(arch, tmp_path_factory, dtype)
    cache = tmp_path_factory.getbasetemp()
    onnx = Encoder.load(profile, backend="onnx", dtype=dtype, export_dir=directory, cache_dir=cache, **options)
    reference = Encoder.load(profile, backend="torch", mode="reference", cache_dir=cache, **options)
    return onnx, reference


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_onnx_equals_hook_reference(arch, tmp_path_factory):
    onnx, reference = encoders(arch, tmp_path_factory)
    texts = CORPUS + ["x", CORPUS[0] * 4]  # one token, and a text beyond the sliding window of 8
    assert max_abs_diff(onnx.encode(texts), reference.encode(texts)) <= 1e-4


@pytest.mark.parametrize("arch", ["gemma3_text", "qwen2"])
def test_onnx_padding_invariance_and_chunking(arch, tmp_path_factory):
    onnx, reference = encoders(arch, tmp_path_factory, max_tokens=20)
    long_text = " ".join(CORPUS)
    alone = onnx.encode([CORPUS[1]])[0].vectors
    batch = onnx.encode([CORPUS[2] * 2, CORPUS[1], long_text])
    np.testing.assert_allclose(batch[1].vectors, alone, atol=1e-5)
    assert max_abs_diff(batch[2:], reference.encode([long_text])) <= 1e-4


def test_fp16_export_within_tolerance(tmp_path_factory):
    onnx16, reference = encoders("gemma3_text", tmp_path_factory, dtype="fp16")
    got, want = onnx16.encode(CORPUS), reference.encode(CORPUS)
    assert all(item.vectors.dtype == np.float32 for item in got)
    scale = max(float(np.abs(item.vectors).max()) for item in want)
    assert max_abs_diff(got, want) <= 1e-2 * scale


@pytest.mark.parametrize("arch", ["llama", "gemma3_text", "qwen2"])
def test_graph_stops_at_value_projection(arch, tmp_path_factory):
    import onnx
    import torch
    from onnx import numpy_helper
    from transformers import AutoModelForCausalLM

    profile, directory = tiny_export(arch, tmp_path_factory)
    graph = onnx.load(str(directory / GRAPH)).graph
    model = AutoModelForCausalLM.from_pretrained(profile.model)
    decoder, config = model.model, model.config
    names = [init.name for init in graph.initializer] + [node.name for node in graph.node]
    assert not any("lm_head" in name or "norm.weight" == name.split("truncated.")[-1] for name in names)
    # exactly LAYER attention softmaxes: block LAYER's attention is not in the graph
    assert sum(node.op_type == "Softmax" for node in graph.node) == LAYER
    # the output comes straight from v_proj (MatMul, plus Add where v_proj has a bias)
    producer = {out: node for node in graph.node for out in node.output}
    last = producer["value_vectors"]
    if last.op_type == "Add":
        last = next(producer[name] for name in last.input if name in producer and producer[name].op_type == "MatMul")
    assert last.op_type == "MatMul"
    v_proj = decoder.layers[LAYER].self_attn.v_proj.weight.detach().numpy()
    weights = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    assert any(w.shape == v_proj.T.shape and np.array_equal(w, v_proj.T) for name, w in weights.items() if name in last.input)
    # parameters in the graph: the embedding, blocks 0..L-1, block L's input norm and v_proj, no more
    expected = decoder.embed_tokens.weight.numel() + sum(p.numel() for p in decoder.layers[:LAYER].parameters())
    expected += sum(p.numel() for p in decoder.layers[LAYER].input_layernorm.parameters())
    expected += sum(p.numel() for p in decoder.layers[LAYER].self_attn.v_proj.parameters())
    in_graph = sum(w.size for w in weights.values() if w.dtype in (np.float32, np.float16))
    smallest_next = decoder.layers[LAYER].self_attn.k_proj.weight.numel()
    assert expected <= in_graph < expected + min(smallest_next, 2 * config.hidden_size)
    if not config.tie_word_embeddings:
        lm_head = model.lm_head.weight.detach().numpy()
        assert not any(w.shape in (lm_head.shape, lm_head.T.shape) and np.allclose(np.abs(w).sum(), np.abs(lm_head).sum()) for w in weights.values())
    del torch


def test_manifest_records_the_export(tmp_path_factory):
    profile, directory = tiny_export("qwen3", tmp_path_factory)
    manifest = json.loads((directory / MANIFEST).read_text())
    assert manifest["layer"] == LAYER and manifest["d_v"] == 32 and manifest["dtype"] == "fp32"
    assert manifest["opset"] == 18 and manifest["architecture"] == "qwen3" and manifest["profile"] == "custom"
    assert manifest["identity"]["model"] == profile.model and manifest["identity"]["fingerprint"]
    assert manifest["versions"]["onnxruntime"] and manifest["versions"]["transformers"]
    assert (directory / "tokenizer.json").exists() and not manifest["external_data"]


def test_manifest_mismatch_is_a_config_error(tmp_path_factory):
    profile, directory = tiny_export("qwen3", tmp_path_factory)
    cache = tmp_path_factory.getbasetemp()
    other_layer = resolve_profile("custom", model=profile.model, layer=1)
    with pytest.raises(ConfigError, match=r"does not match the request: layer 2 \(wanted 1\)"):
        Encoder.load(other_layer, backend="onnx", export_dir=directory, cache_dir=cache)
    with pytest.raises(ConfigError, match=r"dtype 'fp32' \(wanted 'fp16'\)"):
        ensure_export(profile, dtype="fp16", cache_dir=cache, out=directory)
    other_model = resolve_profile("custom", model=tiny_model_dir("llama", tmp_path_factory), layer=LAYER)
    with pytest.raises(ConfigError, match="identity"):
        ensure_export(other_model, cache_dir=cache, out=directory)
    not_an_export = tmp_path_factory.mktemp("not-an-export")
    (not_an_export / "model.onnx").write_bytes(b"")
    with pytest.raises(ConfigError, match="no manifest.json"):
        Encoder.load(profile, backend="onnx", export_dir=not_an_export, cache_dir=cache)


def test_encode_layers_on_onnx_needs_the_exported_layer(tmp_path_factory):
    from ner_os.encoder.onnx_runner import OnnxRunner
    from ner_os.encoder.runner import Runner

    onnx, _ = encoders("llama", tmp_path_factory)
    assert isinstance(onnx.runner, OnnxRunner) and isinstance(onnx.runner, Runner)
    assert list(onnx.encode_layers(CORPUS[:1], [LAYER])[0]) == [LAYER]
    with pytest.raises(ConfigError, match="use backend=torch"):
        onnx.encode_layers(CORPUS[:1], [1, LAYER])


def test_from_settings_builds_the_export_in_the_cache(tmp_path_factory):
    from ner_os.config import Settings

    cache = tmp_path_factory.mktemp("cache")
    settings = Settings.resolve(env={}, profile="custom", model=tiny_model_dir("mistral", tmp_path_factory), layer=1, cache_dir=str(cache))
    encoder = Encoder.from_settings(settings)
    assert encoder.layer == 1 and encoder.d_v == 32
    (export_dir,) = (cache / "exports").iterdir()
    assert export_dir.name.startswith("custom-") and export_dir.name.endswith("-l1-fp32")
    assert Encoder.from_settings(settings).encode(["x"])[0].vectors.shape == (1, 32)  # reused, not rebuilt


@pytest.mark.parametrize("arch", ["llama", "gemma3_text", "qwen2"])  # Llama norm, Gemma (1 + w) norm, v_proj bias
def test_int8_smoothing_leaves_the_fp32_function_unchanged(arch, tmp_path_factory):
    import torch
    from transformers import AutoModelForCausalLM

    from ner_os.encoder.smoothing import smooth_for_int8
    from ner_os.encoder.truncated import TruncatedDecoder

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir(arch, tmp_path_factory)).eval()
    ids = torch.tensor([[1, 5, 9, 23, 42, 7, 80, 100, 3, 17, 64, 12]])
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        before = TruncatedDecoder(model, LAYER)(ids, mask)
        smooth_for_int8(model, LAYER, [ids[0].tolist(), ids[0, :6].tolist()], alpha=0.8)
        after = TruncatedDecoder(model, LAYER)(ids, mask)
    assert float((after - before).abs().max()) <= 1e-4 * float(before.abs().max())
    assert not torch.equal(model.model.layers[0].self_attn.q_proj.weight, AutoModelForCausalLM.from_pretrained(tiny_model_dir(arch, tmp_path_factory)).model.layers[0].self_attn.q_proj.weight)


def test_int8_export_quantizes_all_but_down_proj(tmp_path_factory):
    import onnx

    onnx8, reference = encoders("gemma3_text", tmp_path_factory, dtype="int8")
    _, directory = tiny_export("gemma3_text", tmp_path_factory, "int8")
    graph = onnx.load(str(directory / GRAPH)).graph
    float_matmuls = [node.name for node in graph.node if node.op_type == "MatMul" and "proj" in node.name]
    assert float_matmuls and all("down_proj" in name for name in float_matmuls)
    assert sum(node.op_type in ("MatMulInteger", "DynamicQuantizeMatMul") for node in graph.node) >= 5 * LAYER
    assert json.loads((directory / MANIFEST).read_text())["quantization"]["smoothing_alpha"] == 0.8
    got, want = onnx8.encode(CORPUS), reference.encode(CORPUS)
    cosine = np.concatenate(
        [np.sum(a.vectors * b.vectors, 1) / np.linalg.norm(a.vectors, axis=1) / np.linalg.norm(b.vectors, axis=1) for a, b in zip(got, want)]
    )
    assert cosine.mean() >= 0.99 and cosine.min() >= 0.95


def test_int8_activations_are_quantized_per_token_so_a_text_reads_the_same_in_any_batch(tmp_path_factory):
    import onnx

    onnx8, _ = encoders("gemma3_text", tmp_path_factory, dtype="int8")
    _, directory = tiny_export("gemma3_text", tmp_path_factory, "int8")
    ops = [node.op_type for node in onnx.load(str(directory / GRAPH)).graph.node]
    assert "DynamicQuantizeLinear" not in ops and ops.count("ReduceMax") >= 2 * LAYER
    assert json.loads((directory / MANIFEST).read_text())["quantization"]["version"] == INT8_RECIPE["version"]
    alone = onnx8.encode([CORPUS[1]])[0].vectors
    loud = CORPUS[2] + " " + "!!! 1234567890 ÆØÅ " * 3  # other tokens, a longer row count, padding for CORPUS[1]
    batched = onnx8.encode([loud, CORPUS[1]])[1].vectors
    cosine = np.sum(alone * batched, 1) / np.linalg.norm(alone, axis=1) / np.linalg.norm(batched, axis=1)
    assert cosine.min() >= 0.9999


def test_an_int8_export_of_an_older_recipe_is_rebuilt_in_the_cache_and_refused_elsewhere(tmp_path_factory, tmp_path):
    profile = resolve_profile("custom", model=tiny_model_dir("gemma3_text", tmp_path_factory), layer=LAYER)
    cache = tmp_path_factory.getbasetemp()
    built = ensure_export(profile, dtype="int8", cache_dir=cache)
    manifest = json.loads((built / MANIFEST).read_text())
    older = dict(manifest, quantization={key: value for key, value in INT8_RECIPE.items() if key != "version"})
    (built / MANIFEST).write_text(json.dumps(older))
    assert ensure_export(profile, dtype="int8", cache_dir=cache) == built
    assert json.loads((built / MANIFEST).read_text())["quantization"] == INT8_RECIPE
    elsewhere = tmp_path / "mine"
    shutil.copytree(built, elsewhere)
    (elsewhere / MANIFEST).write_text(json.dumps(older))
    with pytest.raises(ConfigError, match="int8 recipe version 1 \\(wanted 2\\)"):
        ensure_export(profile, dtype="int8", cache_dir=cache, out=elsewhere)
