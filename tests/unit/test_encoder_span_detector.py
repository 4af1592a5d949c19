"""The encoder-state span detector: labels, decoding, union, weights on disk (no real model)."""

from __future__ import annotations

import numpy as np
import pytest

from ner_os.errors import ConfigError
from ner_os.spans.base import Span
from ner_os.spans.encoder_detector import (
    EncoderSpanDetector, SpanTagger, decode, save_detector, union_spans, word_edges,
)
from ner_os.training.spans import (
    SpanTrainConfig, TokenSet, join_handles, lower_same_length, merge_silver, token_labels,
)

pytestmark = pytest.mark.unit

TEXT = "Dr. Marie Curie's work on polonium won."
# word-piece-like tokens: "Dr", ".", "Marie", "Cur", "ie", "'s", "work", "on", "pol", "onium", "won", "."
OFFSETS = np.array([[0, 2], [2, 3], [4, 9], [10, 13], [13, 15], [15, 17], [18, 22], [23, 25],
                    [26, 29], [29, 34], [35, 38], [38, 39]], dtype=np.int32)


def probabilities_from(labels: np.ndarray) -> np.ndarray:
    return np.clip(labels.astype(np.float32), 0.02, 0.98)


def test_labels_follow_the_last_token_rule():
    labels = token_labels(OFFSETS, [(4, 15), (26, 34)])
    assert labels[:, 0].nonzero()[0].tolist() == [2, 8]
    assert labels[:, 1].nonzero()[0].tolist() == [4, 9]
    assert labels[:, 2].nonzero()[0].tolist() == [2, 3, 4, 8, 9]


def test_word_edges_mark_word_pieces():
    starts, ends = word_edges(OFFSETS, TEXT)
    assert not starts[4] and not ends[3]  # "Cur|ie" is one word
    assert starts[5] and ends[4]  # "'s" is punctuation: its own word


def test_decode_recovers_spans_from_sharp_probabilities():
    spans = decode(probabilities_from(token_labels(OFFSETS, [(4, 15), (26, 34)])), OFFSETS, TEXT)
    assert [TEXT[s.start:s.end] for s in spans] == ["Marie Curie", "polonium"]


def test_decode_never_ends_inside_a_word_and_strips_possessives():
    p = np.full((len(OFFSETS), 3), 0.02, np.float32)
    p[3, 1] = 0.9  # "Cur" is not the end of a word
    p[2, 0] = p[2, 2] = p[3, 2] = p[4, 2] = p[5, 2] = 0.9
    p[5, 1] = 0.9  # ends on "'s"
    spans = decode(p, OFFSETS, TEXT)
    assert [TEXT[s.start:s.end] for s in spans] == ["Marie Curie"]


def test_decode_spans_do_not_overlap():
    p = np.full((len(OFFSETS), 3), 0.02, np.float32)
    p[2:5, 2] = 0.95
    p[2, 0] = 0.95
    p[2, 1] = 0.6  # "Marie" alone, weaker than "Marie Curie"
    p[4, 1] = 0.9
    spans = decode(p, OFFSETS, TEXT)
    assert all(not a.overlaps(b) for a, b in zip(spans, spans[1:]))
    assert TEXT[spans[0].start:spans[0].end] == "Marie Curie"


def test_union_keeps_primary_and_adds_other_ends():
    merged = union_spans([Span(4, 15)], [Span(10, 15), Span(14, 19), Span(26, 34)])
    assert merged == [Span(4, 15), Span(26, 34)]


def test_union_adds_a_phrase_that_holds_whole_the_spans_it_overlaps():
    text = "Ovarian cancer and the New York Times Magazine"
    primary = [Span(0, 7), Span(23, 31)]  # "Ovarian", "New York"
    secondary = [Span(0, 14), Span(23, 37), Span(27, 46), Span(23, 46)]  # the cancer, the Times, a cut, the magazine
    merged = union_spans(primary, secondary)
    assert [text[s.start:s.end] for s in merged] == [
        "Ovarian", "Ovarian cancer", "New York", "New York Times", "New York Times Magazine"]
    assert union_spans(primary, [Span(5, 14)]) == primary  # it starts inside "Ovarian": no phrase of it


def test_data_helpers():
    assert lower_same_length("İstanbul Is") == "İstanbul is"
    assert join_handles("@ colgo and @ x", [(0, 1), (2, 7), (12, 13), (14, 15)]) == [(0, 7), (12, 15)]
    assert merge_silver([(0, 5)], [(3, 8), (10, 12)]) == [(0, 5), (10, 12)]


def random_tensors(d_v: int, window, hidden: int = 8, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    d_in = d_v * len(window) + 2
    return {
        "input.mean": rng.normal(size=d_v).astype(np.float32),
        "input.scale": np.ones(d_v, np.float32),
        "hidden.weight": rng.normal(size=(hidden, d_in)).astype(np.float32),
        "hidden.bias": np.zeros(hidden, np.float32),
        "output.weight": rng.normal(size=(3, hidden)).astype(np.float32),
        "output.bias": np.zeros(3, np.float32),
    }


def test_weights_round_trip_and_detect(tmp_path):
    window = (-1, 0, 1)
    tensors = random_tensors(4, window)
    manifest = {"architecture": {"window": list(window), "activation": "gelu"},
                "encoder": {"profile": "tiny", "layer": 1, "d_v": 4}, "decoding": {"end_threshold": 0.5}}
    save_detector(tmp_path, tensors, manifest)
    detector = EncoderSpanDetector.load(tmp_path)
    stored = {k: v.astype(np.float16).astype(np.float32) for k, v in tensors.items()}
    vectors = np.random.default_rng(1).normal(size=(len(OFFSETS), 4)).astype(np.float32)
    expected = SpanTagger(stored, window).probabilities(vectors, OFFSETS, TEXT)

    class Encoded:
        pass

    item = Encoded()
    item.vectors, item.offsets = vectors, OFFSETS
    np.testing.assert_allclose(detector.probabilities(TEXT, item), expected, atol=1e-5)
    spans = detector.detect_encoded([TEXT], [item])[0]
    assert spans == sorted(spans) and all(not a.overlaps(b) for a, b in zip(spans, spans[1:]))
    detector.check_encoder("tiny", 1, 4)
    with pytest.raises(ConfigError):
        detector.check_encoder("gemma3-270m", 15, 256)
    with pytest.raises(ConfigError):
        detector.detect([TEXT])  # no encoder given


def test_tampered_weights_are_refused(tmp_path):
    window = (0,)
    save_detector(tmp_path, random_tensors(4, window), {"architecture": {"window": [0]}, "encoder": {}})
    manifest = (tmp_path / "manifest.json").read_text().replace('"digest": "', '"digest": "00')
    (tmp_path / "manifest.json").write_text(manifest)
    with pytest.raises(ConfigError):
        EncoderSpanDetector.load(tmp_path)


def test_token_set_neighbours_stay_inside_a_text():
    texts = ["a b", "c"]
    offsets = [np.array([[0, 1], [2, 3]]), np.array([[0, 1]])]
    vectors = [np.zeros((2, 4), np.float32), np.zeros((1, 4), np.float32)]
    data = TokenSet.build(texts, vectors, offsets, [[(0, 1)], []])
    assert data.neighbours((-1, 0, 1)).tolist() == [[-1, 0, 1], [0, 1, -1], [-1, 2, -1]]


def test_fit_tagger_learns_a_separable_toy_task():
    pytest.importorskip("torch")
    from ner_os.training.spans import fit_tagger, tagger_from

    rng = np.random.default_rng(0)
    texts, vectors, offsets, spans = [], [], [], []
    for _ in range(60):
        words = rng.integers(0, 2, size=6)
        text = " ".join("X" if w else "o" for w in words)
        offs = np.array([[2 * i, 2 * i + 1] for i in range(6)])
        texts.append(text)
        offsets.append(offs)
        vectors.append(np.stack([np.eye(4)[int(w)] for w in words]).astype(np.float32))
        spans.append([(2 * i, 2 * i + 1) for i, w in enumerate(words) if w])
    data = TokenSet.build(texts, vectors, offsets, spans)
    config = SpanTrainConfig(window=(0,), hidden_dim=8, epochs=20, batch_size=64, lr=0.05, dropout=0.0, input_dropout=0.0)
    tagger = tagger_from(fit_tagger(data, config, log=lambda *_: None), config)
    found = decode(tagger.probabilities(vectors[0], offsets[0], texts[0]), offsets[0], texts[0])
    assert [(s.start, s.end) for s in found] == spans[0]
