"""The type-vector graph and its tokenizer: parity with ``embed_types`` on tiny random models (and the real one).

The graph is run the way ML Commons runs it: the edited tokenizer.json read by ``tokenizers``
(DJL reads the same file with the same Rust library), one text a call, all-ones attention mask,
the first output's row 0.
"""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from ner_os.checks import check_description
from ner_os.config import Settings
from ner_os.deploy.graph import IR_VERSION, MAX_OPSET, OUTPUT, build_type_vector_graph
from ner_os.deploy.model import GRAPH_FILE, ZIP_FILE, ensure_package, graph_vectors, parity_cosines
from ner_os.deploy.tokenizer import description_tokenizer_json, write_description_tokenizer
from ner_os.encoder import Encoder
from ner_os.encoder.export import export_profile
from ner_os.head import ProjectionHead
from ner_os.mentions.embedder import MentionEmbedder
from ner_os.mentions.positions import description_text
from test_encoder_export import tiny_export
from test_encoder_tiny import LAYER

pytestmark = pytest.mark.unit

DESCRIPTIONS = ["Paris", "river in Africa", "  Leading   spaces ", "Montanasaurus", "x", "Ünïcödé naïve café",
                "the capital of France", "a 66 million years old dinosaur!", "Eiffel\tTower\n"]
ARCHS = ["gemma3_text", "llama", "qwen2"]  # SentencePiece-style with BOS; byte-level with BOS; byte-level


def tiny_head(d_v=32, *, skip=0.0, rms=False, transforms=False, seed=0, out=12):
    rng = np.random.default_rng(seed)
    weights = {"hidden.weight": rng.normal(size=(20, d_v)), "hidden.bias": rng.normal(size=20),
               "output.weight": rng.normal(size=(out, 20)), "output.bias": rng.normal(size=out)}
    if transforms:
        weights.update({"offset.query": rng.normal(size=d_v), "offset.mention": rng.normal(size=d_v),
                        "map.query": rng.normal(size=(d_v, d_v)) / np.sqrt(d_v)})
    manifest = {"encoder": {"layer": LAYER, "d_v": d_v},
                "architecture": {"input_norm": "rms" if rms else "none", "skip_weight": skip},
                "training": {"descriptions_read": "after one space"}}
    return ProjectionHead(weights, manifest)


def tiny_embedder(arch, tmp_path_factory, head):
    profile, directory = tiny_export(arch, tmp_path_factory)
    encoder = Encoder.load(profile, backend="onnx", export_dir=directory, cache_dir=tmp_path_factory.getbasetemp())
    return MentionEmbedder(encoder, head), directory


def built(arch, tmp_path, tmp_path_factory, head):
    embedder, directory = tiny_embedder(arch, tmp_path_factory, head)
    graph = build_type_vector_graph(directory, head, tmp_path / GRAPH_FILE)
    tokenizer = write_description_tokenizer(directory, embedder.encoder.start_token_id, tmp_path / "tokenizer.json")
    return embedder, graph, tokenizer


HEADS = {"raw": None, "mlp": dict(), "rms+skip": dict(rms=True, skip=0.5), "transforms+skip": dict(transforms=True, skip=0.3)}


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("head_kind", sorted(HEADS))
def test_graph_reproduces_embed_types(arch, head_kind, tmp_path, tmp_path_factory):
    head = None if HEADS[head_kind] is None else tiny_head(**HEADS[head_kind])
    embedder, graph, tokenizer = built(arch, tmp_path, tmp_path_factory, head)
    got = graph_vectors(graph, tokenizer, DESCRIPTIONS)
    want = embedder.embed_types([check_description(text) for text in DESCRIPTIONS])
    assert got.shape == want.shape == (len(DESCRIPTIONS), embedder.dim)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert np.min(np.sum(got * want, axis=1)) >= 0.99999
    np.testing.assert_allclose(got, want, atol=2e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_tokenizer_reads_a_description_as_embed_type(arch, tmp_path, tmp_path_factory):
    from tokenizers import Tokenizer

    embedder, _ = tiny_embedder(arch, tmp_path_factory, None)
    _, directory = tiny_export(arch, tmp_path_factory)
    path = write_description_tokenizer(directory, embedder.encoder.start_token_id, tmp_path / "tokenizer.json")
    reader = Tokenizer.from_file(str(path))
    for text in DESCRIPTIONS:
        ids, _ = embedder.encoder.tokenize(description_text(check_description(text))[0])
        assert reader.encode(text).ids == [embedder.encoder.start_token_id, *ids], text


def test_tokenizer_edits_keep_the_original_normalizer_and_put_the_start_token_first():
    original = {"normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
                "model": {"vocab": {"<s>": 5, "a": 6}}, "added_tokens": [], "truncation": {"max_length": 8}}
    edited = description_tokenizer_json(original, 5)
    steps = edited["normalizer"]["normalizers"]
    assert [step["type"] for step in steps] == ["Replace", "Strip", "Prepend", "Replace"]
    assert steps[-1] == original["normalizer"] and steps[2]["prepend"] == " "
    assert edited["post_processor"]["special_tokens"] == {"<s>": {"id": "<s>", "ids": [5], "tokens": ["<s>"]}}
    assert edited["truncation"] is None and original["truncation"] == {"max_length": 8}  # the input is not changed


def test_graph_takes_each_rows_last_real_token_in_a_padded_batch(tmp_path, tmp_path_factory):
    import onnxruntime as ort

    head = tiny_head(rms=True, skip=0.5)
    embedder, graph, tokenizer = built("llama", tmp_path, tmp_path_factory, head)
    from tokenizers import Tokenizer

    rows = [Tokenizer.from_file(str(tokenizer)).encode(text).ids for text in DESCRIPTIONS[:4]]
    width = max(map(len, rows))
    ids = np.zeros((len(rows), width), np.int64)
    mask = np.zeros_like(ids)
    for number, row in enumerate(rows):
        ids[number, :len(row)], mask[number, :len(row)] = row, 1
    (batch,) = ort.InferenceSession(str(graph)).run([OUTPUT], {"input_ids": ids, "attention_mask": mask})
    np.testing.assert_allclose(batch[:, 0], graph_vectors(graph, tokenizer, DESCRIPTIONS[:4]), atol=2e-5)


def test_graph_fits_the_runtime_ml_commons_bundles(tmp_path, tmp_path_factory):
    import onnx

    _, graph, _ = built("gemma3_text", tmp_path, tmp_path_factory, tiny_head(skip=0.5))
    model = onnx.load(str(graph))
    onnx.checker.check_model(model)
    assert model.ir_version == IR_VERSION <= 9
    assert all(entry.version <= MAX_OPSET for entry in model.opset_import)
    assert [i.name for i in model.graph.input] == ["input_ids", "attention_mask"]
    (output,) = model.graph.output  # the first output is the one ML Commons reads
    dims = [d.dim_value or d.dim_param for d in output.type.tensor_type.shape.dim]
    assert output.name == OUTPUT and dims == ["batch_size", 1, 32 + 12]
    assert not any(node.op_type == "Gather" and "lm_head" in node.name for node in model.graph.node)


def package_setup(tmp_path, tmp_path_factory):
    """(embedder, profile, settings) of the tiny model with a saved head, and a cache of the test's own, so that
    the first ensure_package builds (a package cached by an earlier test is not this one's)."""
    head = tiny_head(transforms=True, skip=0.5)
    head.save(tmp_path / "head")
    embedder, _ = tiny_embedder("gemma3_text", tmp_path_factory, head)
    profile, _ = tiny_export("gemma3_text", tmp_path_factory)
    settings = Settings.resolve(profile="custom", model=profile.model, layer=LAYER, head=str(tmp_path / "head"),
                                cache_dir=str(tmp_path / "cache"))
    return embedder, profile, settings


def test_package_is_one_graph_and_a_tokenizer_and_the_same_bytes_each_build(tmp_path, tmp_path_factory):
    embedder, _, settings = package_setup(tmp_path, tmp_path_factory)
    first = ensure_package(settings, embedder)
    again = ensure_package(settings, embedder, force=True)
    assert first.sha256 == again.sha256 and first.directory == again.directory
    with zipfile.ZipFile(first.zip_path) as archive:
        names = archive.namelist()
    assert sorted(names) == [GRAPH_FILE, "tokenizer.json"]
    assert first.model_config() == {"model_type": "gemma3_text", "embedding_dimension": 44,
                                    "framework_type": "huggingface_transformers", "pooling_mode": "cls",
                                    "normalize_result": False}
    manifest = json.loads((first.directory / "manifest.json").read_text())
    assert manifest["parity_min_cos"] >= 0.9999 and first.vectors == embedder.identity()
    assert (first.directory / ZIP_FILE).stat().st_size == first.size


def test_package_is_keyed_by_the_export_bytes_not_by_when_it_was_made(tmp_path, tmp_path_factory):
    """Deploying twice with nothing changed reuses the package (so the zip sha256, so the ML Commons model),
    a re-export giving the same bytes too; an export giving other bytes (another opset) gets a new one."""
    embedder, profile, settings = package_setup(tmp_path, tmp_path_factory)
    first = ensure_package(settings, embedder)
    made = (first.directory / "manifest.json").stat().st_mtime_ns
    assert ensure_package(settings, embedder).directory == first.directory
    assert (first.directory / "manifest.json").stat().st_mtime_ns == made  # reused, not rebuilt
    export_profile(profile, cache_dir=settings.cache_dir)  # the same graph made again, at another time
    again = ensure_package(settings, embedder)
    assert (again.directory, again.sha256) == (first.directory, first.sha256)
    export_profile(profile, cache_dir=settings.cache_dir, opset=17)  # other bytes
    other = ensure_package(settings, embedder)
    assert other.directory != first.directory and other.sha256 != first.sha256

@pytest.mark.model
def test_real_model_graph_reproduces_embed_types(tmp_path):
    """Gemma 3 270M with the shipped head: the cached package's graph against embed_type, in the cluster's fp32."""
    settings = Settings.resolve(dtype="fp32")
    embedder = MentionEmbedder.from_settings(settings)
    package = ensure_package(settings, embedder)
    with zipfile.ZipFile(package.zip_path) as archive:
        archive.extractall(tmp_path)
    cosines = parity_cosines(tmp_path / GRAPH_FILE, tmp_path / "tokenizer.json", embedder, DESCRIPTIONS)
    assert np.min(cosines) >= 0.9999
