"""GGUF tokenizer repair: a SentencePiece BPE vocabulary converted as Unigram gets its BPE model back."""

import json

import pytest

from ner_os.encoder.weights import as_sentencepiece_bpe

pytestmark = pytest.mark.unit


def unigram_like_gguf_conversion():
    """A tiny Gemma-style tokenizer as transformers' GGUF converter builds it: Unigram over BPE merge scores,
    with the byte token <0x09> renamed to a tab that the vocabulary also holds as a piece."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    pieces = ["<pad>", "<eos>", "<bos>", "<unk>", "\t", "▁", "T", "o", "w", "e", "r", "▁T", "ow", "er", "▁Tow", "▁Tower", "\t", "a"]
    scores = [0.0, 0.0, 0.0, 0.0, 0.0] + [-float(rank) for rank in range(100, 100 + len(pieces) - 5)]
    for rank, piece in enumerate(["▁T", "ow", "er", "▁Tow", "▁Tower"]):  # merges: higher score merges first
        scores[pieces.index(piece)] = -10.0 - rank
    tokenizer = Tokenizer(models.Unigram(list(zip(pieces, scores)), unk_id=3, byte_fallback=True))
    tokenizer.normalizer = normalizers.Replace(" ", "▁")
    tokenizer.pre_tokenizer = pre_tokenizers.Split(" ", "merged_with_previous")
    tokenizer.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<bos>", eos_token="<eos>", unk_token="<unk>", pad_token="<pad>")


def test_unigram_from_gguf_becomes_bpe_with_the_byte_token_restored():
    tokenizer = unigram_like_gguf_conversion()
    as_sentencepiece_bpe(tokenizer)
    model = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    assert model["type"] == "BPE" and model["byte_fallback"]
    assert model["vocab"]["<0x09>"] == 4 and model["vocab"]["\t"] == 16  # no hole, no duplicate
    assert sorted(model["vocab"].values()) == list(range(18))
    assert tokenizer.convert_ids_to_tokens(tokenizer(" Tower", add_special_tokens=False)["input_ids"]) == ["▁Tower"]
    assert tokenizer.convert_ids_to_tokens(tokenizer("a\ta", add_special_tokens=False)["input_ids"]) == ["a", "\t", "a"]


def test_a_bpe_tokenizer_is_left_alone():
    tokenizer = unigram_like_gguf_conversion()
    as_sentencepiece_bpe(tokenizer)
    before = tokenizer.backend_tokenizer.to_str()
    as_sentencepiece_bpe(tokenizer)
    assert tokenizer.backend_tokenizer.to_str() == before
