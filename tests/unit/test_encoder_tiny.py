"""Truncated torch encoder vs the full-model hook reference on tiny random-initialised decoders.

``tiny_model_dir(arch)`` builds and saves (once per session) a random-initialised model of each
architecture with a tiny BPE tokenizer trained here; tests load it through the same local-path
code as a real model.
"""

from __future__ import annotations

import numpy as np
import pytest

from ner_os.encoder import Encoder
from ner_os.encoder.tokens import token_budget_batches
from ner_os.profiles import resolve_profile

pytestmark = pytest.mark.unit

CORPUS = [
    "The Eiffel Tower is in Paris, the capital of France.",
    "Tyrannosaurus rex lived in Montana about 66 million years ago.",
    "Angela Merkel led the Christian Democratic Union for eighteen years.",
    "The Nile flows north through Uganda, Sudan and Egypt.",
    "  Leading spaces, multi-token words like Montanasaurus and punctuation!",
    "Apple released the iPhone in 2007; Microsoft answered with Windows Phone.",
]
ARCHITECTURES = {
    "llama": {},
    "mistral": {"sliding_window": 8},
    "qwen2": {"use_sliding_window": True, "sliding_window": 8, "max_window_layers": 2},
    "qwen3": {"use_sliding_window": True, "sliding_window": 8, "max_window_layers": 2},
    "gemma2": {"sliding_window": 8, "query_pre_attn_scalar": 16},
    "gemma3_text": {
        "sliding_window": 8,
        "query_pre_attn_scalar": 16,
        "layer_types": ["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
    },
}
LAYER = 2
_built: dict = {}


def tiny_tokenizer(byte_level: bool):
    """A fast BPE tokenizer trained on CORPUS: SentencePiece-style ('▁', like Gemma/Llama 2) or byte-level (Llama 3/Qwen)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<bos>", "<eos>", "<unk>"]
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    if byte_level:
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    else:
        tokenizer.normalizer = normalizers.Replace(" ", "▁")
        tokenizer.pre_tokenizer = pre_tokenizers.Split("▁", "merged_with_next")
        tokenizer.decoder = decoders.Replace("▁", " ")
        alphabet = sorted(set("".join(CORPUS).replace(" ", "▁")))
    trainer = trainers.BpeTrainer(vocab_size=160, special_tokens=specials, initial_alphabet=alphabet, show_progress=False)
    tokenizer.train_from_iterator(CORPUS * 3, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )


def tiny_config(arch: str, vocab_size: int):
    from transformers import AutoConfig

    common = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=256,
        initializer_range=0.2,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=arch.startswith("gemma"),
    )
    return AutoConfig.for_model(arch, **common, **ARCHITECTURES[arch])


def tiny_model_dir(arch: str, tmp_path_factory) -> str:
    """A saved random-initialised model of ``arch`` (built once per session)."""
    if arch not in _built:
        import torch
        from transformers import AutoModelForCausalLM

        tokenizer = tiny_tokenizer(byte_level=arch in ("llama", "qwen2", "qwen3"))
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(tiny_config(arch, len(tokenizer)))
        with torch.no_grad():  # norms start as constant vectors: make every parameter distinct and non-trivial
            for parameter in model.parameters():
                if parameter.dim() == 1:
                    parameter.add_(0.3 * torch.randn_like(parameter))
        directory = tmp_path_factory.mktemp(f"tiny-{arch}")
        model.save_pretrained(directory)
        tokenizer.save_pretrained(directory)
        _built[arch] = str(directory)
    return _built[arch]


def tiny_encoder(arch, tmp_path_factory, **options) -> Encoder:
    options.setdefault("layer", LAYER)
    return Encoder.load(
        "custom", model=tiny_model_dir(arch, tmp_path_factory), backend="torch", cache_dir=tmp_path_factory.getbasetemp(), **options
    )


def max_abs_diff(a: list, b: list) -> float:
    return max(float(np.abs(x.vectors - y.vectors).max()) for x, y in zip(a, b))


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_truncated_equals_hook_reference(arch, tmp_path_factory):
    truncated = tiny_encoder(arch, tmp_path_factory)
    reference = tiny_encoder(arch, tmp_path_factory, mode="reference")
    texts = CORPUS + ["x", ""]
    got, want = truncated.encode(texts), reference.encode(texts)
    assert [len(item.vectors) for item in got] == [len(item.vectors) for item in want]
    assert got[0].vectors.shape == (len(truncated.tokenize(CORPUS[0])[0]), 32)
    assert max_abs_diff(got[:-1], want[:-1]) <= 1e-5
    assert got[-1].vectors.shape == (0, 32) and got[-1].offsets.shape == (0, 2)


@pytest.mark.parametrize("arch", ["gemma3_text", "qwen2"])
def test_encode_layers_reads_each_layer_in_one_pass(arch, tmp_path_factory):
    truncated = tiny_encoder(arch, tmp_path_factory)
    layered = truncated.encode_layers(CORPUS[:3], layers=[3, 0, 2])
    for layer in (0, 2, 3):
        reference = tiny_encoder(arch, tmp_path_factory, layer=layer, mode="reference").encode(CORPUS[:3])
        for item, want in zip(layered, reference):
            np.testing.assert_allclose(item[layer], want.vectors, atol=1e-5)
            np.testing.assert_array_equal(item.offsets, want.offsets)


@pytest.mark.parametrize("arch", ["gemma2", "mistral", "llama"])
@pytest.mark.parametrize("mode", ["truncated", "reference"])
def test_padding_invariance(arch, mode, tmp_path_factory):
    encoder = tiny_encoder(arch, tmp_path_factory, mode=mode)
    alone = encoder.encode([CORPUS[1]])[0].vectors
    # the text is the shortest of a batch padded to the longest
    in_batch = encoder.encode([CORPUS[2] * 2, CORPUS[1], CORPUS[5]])[1].vectors
    np.testing.assert_allclose(in_batch, alone, atol=1e-5)


@pytest.mark.parametrize("arch", ["gemma3_text", "llama"])
def test_long_text_is_chunked_with_left_context(arch, tmp_path_factory):
    long_text = " ".join(CORPUS)
    encoder = tiny_encoder(arch, tmp_path_factory, max_tokens=24)
    ids, offsets = encoder.tokenize(long_text)
    chunks = encoder.chunks(0, ids)
    assert len(chunks) > 2
    kept = [i for chunk in chunks for i in range(chunk.write_at, chunk.write_at + len(chunk.token_ids) - chunk.keep_from)]
    assert kept == list(range(len(ids)))  # every token exactly once, in order
    for chunk in chunks:
        assert len(chunk.token_ids) <= 24 and chunk.token_ids[0] == encoder.start_token_id
        assert chunk.write_at == 0 or chunk.keep_from - 1 >= encoder.chunk_context
    encoded = encoder.encode([long_text])[0]
    assert encoded.vectors.shape == (len(ids), 32)
    np.testing.assert_array_equal(encoded.offsets, offsets)
    # each kept row equals the reference run on that chunk's window alone
    reference = tiny_encoder(arch, tmp_path_factory, mode="reference")
    for chunk in chunks:
        window = reference.runner.run(np.array([chunk.token_ids]), np.ones((1, len(chunk.token_ids)), np.int64), [LAYER])
        rows = window[LAYER][0, chunk.keep_from :]
        np.testing.assert_allclose(encoded.vectors[chunk.write_at : chunk.write_at + len(rows)], rows, atol=1e-5)


@pytest.mark.parametrize("arch", ["gemma2", "llama"])  # SentencePiece-style and byte-level tokenizers
def test_offsets_map_tokens_to_characters(arch, tmp_path_factory):
    encoder = tiny_encoder(arch, tmp_path_factory)
    text = CORPUS[4]
    encoded = encoder.encode([text])[0]
    ids, _ = encoder.tokenize(text)
    assert encoded.offsets.dtype == np.int32 and encoded.offsets.shape == (len(ids), 2)
    pieces = [text[start:end] for start, end in encoded.offsets]
    assert all(piece and (piece.isspace() or not piece[0].isspace()) for piece in pieces)
    assert "".join(piece.strip() for piece in pieces) == text.replace(" ", "")
    assert encoded.offsets[0][0] == 0 and encoded.offsets[-1][1] == len(text)
    word = "Montanasaurus"
    word_end = text.index(word) + len(word)
    inside = [row for row in encoded.offsets if text.index(word) <= row[0] < word_end]
    assert len(inside) > 1 and inside[-1][1] == word_end  # a multi-token word: its last token ends the word


def test_token_budget_batches_sort_and_bound():
    from ner_os.encoder.tokens import Chunk

    chunks = [Chunk(i, [1] * length, 1, 0) for i, length in enumerate([5, 40, 12, 40, 3, 20])]
    batches = token_budget_batches(chunks, batch_tokens=64)
    assert sorted(c.text_index for batch in batches for c in batch) == list(range(6))
    lengths = [len(c.token_ids) for batch in batches for c in batch]
    assert lengths == sorted(lengths, reverse=True)
    assert all(len(batch) * len(batch[0].token_ids) <= 64 or len(batch) == 1 for batch in batches)


def test_token_budget_batches_close_when_padding_grows():
    from ner_os.encoder.tokens import MIN_BATCH_TOKENS, Chunk

    lengths = [40] * 10 + [5] * 100  # one budget could hold them all, mostly as padding
    chunks = [Chunk(i, [1] * length, 1, 0) for i, length in enumerate(lengths)]
    batches = token_budget_batches(chunks, batch_tokens=100_000)
    assert len(batches) == 2 and len(batches[0]) <= 11  # the 40s, at most one 5 beside them
    padded = sum(len(batch) * len(batch[0].token_ids) for batch in batches)
    assert padded <= 1.1 * sum(lengths)  # one batch would pad to 110 x 40 = 4400 for 900 real tokens
    small = token_budget_batches([Chunk(i, [1] * length, 1, 0) for i, length in enumerate([40, 5, 5])], 100_000)
    assert len(small) == 1 and 40 < MIN_BATCH_TOKENS  # below MIN_BATCH_TOKENS padding is accepted


def test_layer_out_of_range_is_a_config_error(tmp_path_factory):
    from ner_os.errors import ConfigError

    with pytest.raises(ConfigError, match="layer 9 is out of range"):
        tiny_encoder("llama", tmp_path_factory, layer=9)


def test_profile_resolution_for_a_local_model(tmp_path_factory):
    profile = resolve_profile("custom", model=tiny_model_dir("llama", tmp_path_factory), layer=1)
    assert profile.name == "custom" and profile.layer == 1 and profile.d_v is None


class EchoRunner:
    """A stand-in backend: each token's vector is ``[token id, layer]``."""

    def check_layers(self, layers):
        pass

    def run(self, input_ids, attention_mask, layers):
        return {layer: np.stack([input_ids, np.full_like(input_ids, layer)], axis=-1).astype(np.float32) for layer in layers}


def test_encoder_needs_only_a_runner(tmp_path_factory):
    """The facade chunks, batches and reassembles through the Runner protocol alone (no torch, no ONNX)."""
    from ner_os.encoder.runner import Runner
    from ner_os.encoder.weights import load_tokenizer

    model_dir = tiny_model_dir("llama", tmp_path_factory)
    assert isinstance(EchoRunner(), Runner)
    encoder = Encoder(resolve_profile("custom", model=model_dir, layer=LAYER), load_tokenizer(model_dir), EchoRunner(),
                      d_v=2, batch_tokens=16, max_tokens=8)
    texts = [" ".join(CORPUS[:3]), CORPUS[4], ""]
    encoded = encoder.encode(texts)
    for text, item in zip(texts, encoded):
        ids, offsets = encoder.tokenize(text)
        np.testing.assert_array_equal(item.vectors[:, 0], ids)  # every token once, in order, across chunks
        np.testing.assert_array_equal(item.vectors[:, 1], LAYER)
        np.testing.assert_array_equal(item.offsets, offsets)
    assert len(encoder.chunks(0, encoder.tokenize(texts[0])[0])) > 3


@pytest.mark.parametrize("mode", ["truncated", "reference"])
def test_torch_runner_is_a_runner(mode, tmp_path_factory):
    from ner_os.encoder.runner import Runner
    from ner_os.encoder.torch_runner import TorchRunner

    runner = tiny_encoder("llama", tmp_path_factory, mode=mode).runner
    assert isinstance(runner, TorchRunner) and isinstance(runner, Runner)
