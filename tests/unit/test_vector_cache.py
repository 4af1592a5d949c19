"""The one on-disk vector cache (:mod:`ner_os.mentions.cache`) and the one encoder proxy
(:mod:`ner_os.mentions.proxy`): remembering, timing, resumable slice-by-slice encodes."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from ner_os.config import Settings
from ner_os.mentions.cache import MENTION_VECTORS, TOKEN_VECTORS, VectorCache, token_vector_cache
from ner_os.mentions.proxy import EncoderProxy

pytestmark = pytest.mark.unit


def test_arrays_round_trip_per_entry_with_the_identity_beside_them(tmp_path):
    cache = VectorCache(tmp_path, MENTION_VECTORS, {"profile": "tiny", "model": "m"})
    entry = cache.entry({"texts": ["a b"], "spans": [[[0, 1, None]]]})
    assert entry.parent == cache.directory and cache.directory.parent == tmp_path / MENTION_VECTORS
    assert cache.read(entry, ["L1"]) is None and not cache.has(entry, "L1")
    cache.write(entry, {"L1": np.arange(6, dtype=np.float32).reshape(2, 3)})
    assert cache.has(entry, "L1")
    np.testing.assert_array_equal(cache.read(entry, ["L1"])["L1"], np.arange(6).reshape(2, 3))
    assert cache.read(entry, ["L1", "L2"]) is None  # every name asked for, or nothing
    assert json.loads((cache.directory / "identity.json").read_text()) == {"profile": "tiny", "model": "m"}
    assert not list(tmp_path.rglob("*.partial*"))  # written aside, then renamed
    cache.write_meta(entry, {"passes": [1]})
    assert cache.read_meta(entry) == {"passes": [1]}
    # the identity and the content both pick the entry
    assert VectorCache(tmp_path, MENTION_VECTORS, {"profile": "other"}).entry({"texts": ["a b"]}) != \
        cache.entry({"texts": ["a b"]})
    assert cache.entry({"texts": ["a b"]}) != cache.entry({"texts": ["a c"]})


def test_the_token_vector_cache_is_keyed_by_what_the_encoder_makes(tmp_path):
    class Profile:
        name = "tiny"

    class Tokenizer:
        name_or_path = "tok"

    class Encoder:
        profile, layer, d_v, model = Profile(), 2, 3, "tiny-model"
        tokenizer, max_tokens, chunk_context = Tokenizer(), 512, 64

    settings = Settings(cache_dir=str(tmp_path))
    cache = token_vector_cache(settings, EncoderProxy(Encoder()))
    assert cache.directory.parent == tmp_path / TOKEN_VECTORS
    assert cache.identity["tokenizer"] == "tok" and cache.identity["layer"] == 2
    assert cache.identity["backend"] == settings.backend and cache.identity["max_tokens"] == 512


class CountingEncoder:
    """A stand-in encoder: one row per character, recording what it was asked to encode."""

    d_v = 3
    layer = 7

    def __init__(self):
        self.calls: list[list[str]] = []

    def encode(self, texts):
        self.calls.append(list(texts))
        return [np.full((len(text), self.d_v), float(len(text)), dtype=np.float32) for text in texts]


def test_a_remembering_proxy_encodes_each_text_once():
    inner = CountingEncoder()
    encoder = EncoderProxy(inner, remember=True)
    first = encoder.encode(["abc", "de", "abc"])
    assert inner.calls == [["abc", "de"]]
    again = encoder.encode(["de", "fghi", "abc"])
    assert inner.calls == [["abc", "de"], ["fghi"]]
    assert again[0] is first[1] and again[2] is first[0]
    assert [item.shape for item in again] == [(2, 3), (4, 3), (3, 3)]
    assert encoder.encoded_texts == 3
    # everything else is the wrapped encoder's
    assert (encoder.d_v, encoder.layer) == (3, 7)
    with pytest.raises(TypeError):
        encoder.encode("abc")


def tokenize_words(text):
    """One token per word, offsets like the encoder's ``tokenize``."""
    offsets, position = [], 0
    for word in text.split():
        start = text.index(word, position)
        offsets.append((start, start + len(word)))
        position = start + len(word)
    return list(range(len(offsets))), np.asarray(offsets, dtype=np.int32)


class WordEncoder(CountingEncoder):
    """One row per word, with real offsets, so that stored encodings can be checked."""

    def encode(self, texts):
        from ner_os.encoder import EncodedText

        self.calls.append(list(texts))
        return [EncodedText(vectors=np.full((len(t.split()), self.d_v), float(len(t)), np.float32),
                            offsets=tokenize_words(t)[1]) for t in texts]

    def tokenize(self, text):
        return tokenize_words(text)


def test_token_vectors_round_trip_and_staleness(tmp_path):
    texts = ["Nile flows", "Messi scored twice", "Nile flows"]  # a repeated sentence keeps its place
    encoded = WordEncoder().encode(texts)
    key = {"profile": "tiny", "layer": 2, "d_v": 3}
    store = VectorCache(tmp_path, TOKEN_VECTORS, key)
    assert store.read_encoded(texts, tokenize_words) is None
    store.write_encoded(texts, encoded)
    back = store.read_encoded(texts, tokenize_words)
    assert len(back) == 3
    for original, stored in zip(encoded, back):
        np.testing.assert_array_equal(original.vectors, stored.vectors)
        np.testing.assert_array_equal(original.offsets, stored.offsets)
    assert json.loads((store.directory / "identity.json").read_text()) == key
    # another identity or other texts: another entry
    assert VectorCache(tmp_path, TOKEN_VECTORS, {**key, "layer": 3}).entry(texts) != store.entry(texts)
    assert store.entry(texts[:2]) != store.entry(texts)
    # a tokenizer that now cuts differently never gets the old vectors
    assert store.read_encoded(texts, lambda text: tokenize_words(text.replace("Nile", "Ni le"))) is None


class DyingEncoder(WordEncoder):
    """Killed (an exception) on its second batch."""

    def encode(self, texts):
        if self.calls:
            raise KeyboardInterrupt
        return super().encode(texts)


def test_encode_all_resumes_from_the_slices_a_killed_run_stored(tmp_path):
    texts = ["h i", "a b c d", "j", "e f g", "k l m"]  # longest first: a b c d, e f g, k l m, h i, j
    store = VectorCache(tmp_path, TOKEN_VECTORS, {"profile": "tiny"})
    dying = DyingEncoder()
    with pytest.raises(KeyboardInterrupt):
        EncoderProxy(dying, remember=True).encode_all(texts, cache=store, slice_texts=2, progress=False)
    assert dying.calls == [["a b c d", "e f g"]]
    again = WordEncoder()
    encoder = EncoderProxy(again, remember=True)
    encoder.encode_all(texts, cache=store, slice_texts=2, progress=False)
    assert again.calls == [["k l m", "h i"], ["j"]]  # the first slice came from the store
    assert [len(item.offsets) for item in encoder.encode(texts)] == [2, 4, 1, 3, 3]
    assert encoder.encoded_texts == 3
    # a third run reads everything
    third = WordEncoder()
    EncoderProxy(third, remember=True).encode_all(texts, cache=store, slice_texts=2, progress=False)
    assert third.calls == []


def test_a_remembering_proxy_takes_stored_encodings_and_encodes_the_rest():
    inner = CountingEncoder()
    encoder = EncoderProxy(inner, remember=True)
    stored = [np.zeros((1, 3), np.float32)]
    encoder.remember(["abc"], stored)
    encoder.encode_all(["abc", "de", "fghij", "de"], slice_texts=1, progress=False)
    assert inner.calls == [["fghij"], ["de"]]  # longest first, one slice each, "abc" never encoded
    assert encoder.encode(["abc"])[0] is stored[0]


class Clock:
    def __init__(self):
        self.seconds = {}

    def add(self, name, seconds):
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds


def test_a_timing_proxy_adds_the_encode_seconds_to_the_clock_and_remembers_nothing():
    inner = CountingEncoder()
    clock = Clock()
    proxy = EncoderProxy(inner, clock=clock)
    proxy.encode(["abc"])
    proxy.encode(["abc"])
    assert inner.calls == [["abc"], ["abc"]] and proxy.encoded_texts == 2
    assert set(clock.seconds) == {"encode"} and clock.seconds["encode"] >= 0
    assert proxy.wrapped is inner and proxy.layer == 7
    with pytest.raises(TypeError, match="remember=False"):
        proxy.remember(["abc"], [None])
    with pytest.raises(AttributeError):
        proxy.no_such_attribute  # noqa: B018
    assert copy.copy(proxy).d_v == 3  # copies (the loader copies embedders) keep the passthrough
