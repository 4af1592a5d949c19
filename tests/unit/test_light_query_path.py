"""The query path without torch or transformers: ``TextTokenizer`` and the cached optimised ONNX session
give exactly what the transformers tokenizer and a plain session over the export give.

"The current path" below is the one the ONNX backend used before: transformers' fast tokenizer
(``ner_os.encoder.weights.load_tokenizer``) and an ONNX Runtime session built from the exported
graph with every optimiser on. Tiny random-initialised models of each architecture, and the real
Gemma 3 270M (marked ``model``).
"""

from __future__ import annotations

import numpy as np
import pytest

from ner_os.encoder import Encoder
from ner_os.encoder.text_tokenizer import FAST_FILE, TextTokenizer
from ner_os.encoder.tokens import start_token_id
from ner_os.mentions.embedder import MentionEmbedder
from test_encoder_export import tiny_export
from test_encoder_tiny import ARCHITECTURES, CORPUS

pytestmark = pytest.mark.unit

TEXTS = CORPUS + ["", " ", "x", "\t tabs\tand  double  spaces ", "Zürich, São Paulo — naïve café", "<bos> inside text",
                  " river in Africa"]
DESCRIPTIONS = ["dinosaur", "river in Africa", "  political party ", "Montanasaurus", "x"]


def transformers_tokenizer(directory):
    from ner_os.encoder.weights import load_tokenizer

    return load_tokenizer(str(directory))


def assert_same_tokens(light, reference, texts):
    for text in texts:
        got = light(text, add_special_tokens=False, return_offsets_mapping=True)
        want = reference(text, add_special_tokens=False, return_offsets_mapping=True)
        assert got["input_ids"] == list(want["input_ids"]), text
        assert [tuple(pair) for pair in got["offset_mapping"]] == [tuple(pair) for pair in want["offset_mapping"]], text
    batch, want = light(list(texts), add_special_tokens=False), reference(list(texts), add_special_tokens=False)
    assert batch["input_ids"] == [list(ids) for ids in want["input_ids"]]
    for role in ("bos", "eos", "pad", "unk"):
        assert getattr(light, f"{role}_token_id") == getattr(reference, f"{role}_token_id"), role
    assert start_token_id(light) == start_token_id(reference)
    ids = reference(texts[0], add_special_tokens=False)["input_ids"]
    assert light.convert_ids_to_tokens(ids) == reference.convert_ids_to_tokens(ids)


def current_path_encoder(light: Encoder) -> Encoder:
    """The encoder the ONNX backend built before: transformers' tokenizer, a plain session over the export."""
    from ner_os.encoder.onnx_runner import OnnxRunner

    runner = OnnxRunner(light.runner.graph, light.layer, cache_optimized=False)
    return Encoder(light.profile, transformers_tokenizer(light.tokenizer.directory), runner, d_v=light.d_v,
                   batch_tokens=light.batch_tokens, max_tokens=light.max_tokens)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_text_tokenizer_equals_transformers(arch, tmp_path_factory):
    _, directory = tiny_export(arch, tmp_path_factory)
    assert_same_tokens(TextTokenizer(directory), transformers_tokenizer(directory), TEXTS)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_short_texts_use_the_vocabulary_index(arch, tmp_path_factory):
    from ner_os.encoder.vocab_index import INDEX_FILE

    _, directory = tiny_export(arch, tmp_path_factory)
    reference = transformers_tokenizer(directory)
    TextTokenizer(directory).backend  # the first load writes the fast file and the index
    assert (directory / INDEX_FILE).is_file()
    light = TextTokenizer(directory)
    plain = [text for text in TEXTS if "<" not in text]
    for text in plain:
        got = light(text, add_special_tokens=False, return_offsets_mapping=True)
        want = reference(text, add_special_tokens=False, return_offsets_mapping=True)
        assert got["input_ids"] == list(want["input_ids"]), text
        assert [tuple(pair) for pair in got["offset_mapping"]] == [tuple(pair) for pair in want["offset_mapping"]]
    assert light._backend is None  # all of them answered by restricted tokenizers
    assert light("<bos> inside text", add_special_tokens=False)["input_ids"] == \
        reference("<bos> inside text", add_special_tokens=False)["input_ids"]  # an added token: the whole one
    assert light._backend is not None


def test_fast_file_is_written_once_and_a_damaged_one_is_ignored(tmp_path_factory):
    import shutil

    _, export = tiny_export("gemma3_text", tmp_path_factory)
    directory = tmp_path_factory.mktemp("tokenizer")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(export / name, directory / name)
    reference = transformers_tokenizer(directory)
    first = TextTokenizer(directory)
    assert first.bos_token_id == reference.bos_token_id and not (directory / FAST_FILE).exists()  # ids: no vocabulary read
    assert_same_tokens(first, reference, TEXTS)
    assert (directory / FAST_FILE).is_file()
    assert_same_tokens(TextTokenizer(directory), reference, TEXTS)  # read from the fast file
    (directory / FAST_FILE).write_text('{"version": "1.0", "model": {"type": "BPE", "vocab": ')
    assert_same_tokens(TextTokenizer(directory), reference, TEXTS)
    assert TextTokenizer(directory).backend.to_str() == reference.backend_tokenizer.to_str()


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_light_type_vectors_equal_the_current_path(arch, tmp_path_factory):
    from ner_os.encoder.onnx_runner import optimized_graph

    profile, directory = tiny_export(arch, tmp_path_factory)
    light = Encoder.load(profile, backend="onnx", export_dir=directory, cache_dir=tmp_path_factory.getbasetemp())
    got = MentionEmbedder(light).embed_types(DESCRIPTIONS)
    want = MentionEmbedder(current_path_encoder(light)).embed_types(DESCRIPTIONS)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    assert optimized_graph(light.runner.graph).is_file()
    again = Encoder.load(profile, backend="onnx", export_dir=directory, cache_dir=tmp_path_factory.getbasetemp())
    np.testing.assert_allclose(MentionEmbedder(again).embed_types(DESCRIPTIONS), want, atol=1e-5, rtol=0)
    assert again.runner.source == optimized_graph(light.runner.graph)  # the next session reads the saved graph


def test_a_damaged_optimised_graph_is_rebuilt(tmp_path_factory):
    from ner_os.encoder.onnx_runner import OnnxRunner, optimized_graph

    profile, directory = tiny_export("llama", tmp_path_factory)
    encoder = Encoder.load(profile, backend="onnx", export_dir=directory, cache_dir=tmp_path_factory.getbasetemp())
    want = encoder.encode(CORPUS)
    cached = optimized_graph(encoder.runner.graph)
    assert cached.is_file()
    cached.write_bytes(b"not a graph")
    encoder.runner = OnnxRunner(encoder.runner.graph, encoder.layer)
    encoder.runner.start()
    got = encoder.encode(CORPUS)
    assert all(np.array_equal(a.vectors, b.vectors) for a, b in zip(got, want))
    assert cached.stat().st_size > 100  # written again


def test_a_failed_background_load_raises_in_the_caller(tmp_path_factory):
    from ner_os.encoder.onnx_runner import OnnxRunner

    missing = tmp_path_factory.mktemp("no-graph") / "model.onnx"
    runner = OnnxRunner(missing, 2, cache_optimized=False)
    runner.start()
    with pytest.raises(Exception, match="model.onnx"):
        runner.run(np.ones((1, 2), np.int64), np.ones((1, 2), np.int64), [2])


@pytest.mark.model
def test_gemma_light_path_equals_the_current_path():
    from ner_os.config import Settings

    settings = Settings.resolve()
    light = MentionEmbedder.from_settings(settings)
    reference_tokenizer = transformers_tokenizer(light.encoder.tokenizer.directory)
    sentences = ["The Eiffel Tower is in Paris.", "  Angela Merkel led the CDU (Christian Democratic Union).", "a\tb",
                 "Tyrannosaurus rex lived in Montana about 66 million years ago.", " river in Africa", "x"]
    assert_same_tokens(light.encoder.tokenizer, reference_tokenizer, sentences)
    assert light.encoder.start_token_id == 2
    current = MentionEmbedder(current_path_encoder(light.encoder), light.head)
    descriptions = DESCRIPTIONS + ["body of water", "Greek goddess", "football club in Spain"]
    np.testing.assert_allclose(light.embed_types(descriptions), current.embed_types(descriptions), atol=1e-5, rtol=0)


def test_a_long_list_is_tokenised_by_the_whole_tokenizer_at_once(tmp_path_factory, monkeypatch):
    """encode() of many texts makes no restricted tokenizer (one each, tens of ms on Gemma) before the whole one."""
    from ner_os.encoder.vocab_index import VocabIndex

    profile, directory = tiny_export("gemma3_text", tmp_path_factory)
    TextTokenizer(directory).backend  # writes the vocabulary index
    encoder = Encoder.load(profile, backend="onnx", export_dir=directory, cache_dir=tmp_path_factory.getbasetemp())
    restricted = []
    build = VocabIndex.tokenizer_for
    monkeypatch.setattr(VocabIndex, "tokenizer_for", lambda self, texts: restricted.append(texts) or build(self, texts))
    texts = [text for text in TEXTS if "<" not in text] * 8
    assert sum(map(len, texts)) > 512  # over what a restricted tokenizer takes
    got = encoder.encode(texts)
    assert [len(item) for item in restricted] == [len(texts)]  # asked once, for the whole list (and declined)
    for text, (ids, offsets) in zip(texts, encoder.tokenize_many(texts)):
        one_by_one = encoder.tokenize(text)
        assert ids == one_by_one[0] and np.array_equal(offsets, one_by_one[1]), text
    assert all(item.vectors.shape[0] == len(encoder.tokenize(text)[0]) for text, item in zip(texts, got))


def test_a_spinning_session_gives_the_same_vectors(tmp_path_factory):
    """Busy-waiting threads (the query client's choice) change the timing only, never the numbers."""
    profile, directory = tiny_export("llama", tmp_path_factory)
    options = dict(backend="onnx", export_dir=directory, cache_dir=tmp_path_factory.getbasetemp())
    quiet, spinning = Encoder.load(profile, **options), Encoder.load(profile, spin=True, **options)
    assert (quiet.runner.spin, spinning.runner.spin) == (False, True)
    assert spinning.runner._options().get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert quiet.runner._options().get_session_config_entry("session.intra_op.allow_spinning") == "0"
    for got, want in zip(spinning.encode(CORPUS), quiet.encode(CORPUS)):
        assert np.array_equal(got.vectors, want.vectors)
