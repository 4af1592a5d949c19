"""Character spans -> last sub-word token -> unit vectors, against a tiny deterministic encoder."""

import re
import zlib
from dataclasses import dataclass

import numpy as np
import pytest

from ner_os.errors import NerOsError
from ner_os.head import ProjectionHead, l2_normalise
from ner_os.mentions.embedder import MentionEmbedder
from ner_os.mentions.positions import description_text, last_token_indices

pytestmark = pytest.mark.unit

D_V = 8


@dataclass
class FakeProfile:
    name: str = "fake"
    model: str = "fake-model"


@dataclass
class FakeEncoded:
    vectors: np.ndarray
    offsets: np.ndarray


class FakeEncoder:
    """Sub-words of at most three characters; the leading space is merged into the next piece.

    Row i of a text's vectors is a fixed random vector of the piece's text and its position, so
    the test can tell exactly which token was read.
    """

    profile = FakeProfile()
    layer = 3
    d_v = D_V

    def __init__(self, space_in_offsets: bool = True):
        self.space_in_offsets = space_in_offsets
        self.calls: list[list[str]] = []

    def tokens(self, text: str) -> np.ndarray:
        offsets = []
        for match in re.finditer(r"\s*\S{1,3}", text):
            start = match.start() if self.space_in_offsets else match.start() + len(match.group()) - len(match.group().lstrip())
            offsets.append((start, match.end()))
        return np.asarray(offsets, dtype=np.int32).reshape(-1, 2)

    @staticmethod
    def vector(text: str, start: int, end: int) -> np.ndarray:
        seed = zlib.crc32(f"{start}:{text[start:end]}".encode())
        return np.random.default_rng(seed).normal(size=D_V).astype(np.float32)

    def encode(self, texts):
        self.calls.append(list(texts))
        out = []
        for text in texts:
            offsets = self.tokens(text)
            vectors = np.stack([self.vector(text, s, e) for s, e in offsets]) if len(offsets) else np.zeros((0, D_V))
            out.append(FakeEncoded(vectors.astype(np.float32), offsets))
        return out


def picked_token(encoder, text, span):
    offsets = encoder.tokens(text)
    index = last_token_indices(offsets, [span], text)[0]
    start, end = offsets[index]
    return text[start:end]


@pytest.mark.parametrize("space_in_offsets", [True, False])
def test_leading_space_of_the_next_token_is_not_part_of_the_span(space_in_offsets):
    encoder = FakeEncoder(space_in_offsets)
    text = "We met in Rome yesterday"
    span = (text.index("Rome"), text.index("Rome") + 4)
    assert picked_token(encoder, text, span).strip() == "e"  # pieces: ' Rom', 'e', ' yes', ...


def test_multi_token_word_reads_its_last_piece():
    encoder = FakeEncoder()
    text = "The Brachiosaurus grazed"
    span = (4, 4 + len("Brachiosaurus"))
    assert picked_token(encoder, text, span) == "s"  # ' Bra','chi','osa','uru','s'


def test_same_surface_twice_gives_two_tokens_and_two_vectors():
    encoder = FakeEncoder()
    text = "Paris is not Paris Hilton"
    first, second = (0, 5), (13, 18)
    rows = last_token_indices(encoder.tokens(text), [first, second], text)
    assert rows[0] != rows[1]
    vectors = MentionEmbedder(encoder).embed([text], [[first, second]])[0]
    offsets = encoder.tokens(text)
    expected = l2_normalise(np.stack([encoder.vector(text, *offsets[r]) for r in rows]))
    np.testing.assert_allclose(vectors, expected, rtol=1e-6)
    assert not np.allclose(vectors[0], vectors[1])


def test_span_at_the_very_end_of_the_text():
    encoder = FakeEncoder()
    text = "I flew to Kilimanjaro"
    span = (10, len(text))
    offsets = encoder.tokens(text)
    assert last_token_indices(offsets, [span], text)[0] == len(offsets) - 1


def test_span_ending_inside_a_token_reads_that_token():
    encoder = FakeEncoder()
    text = "Londoners cheered"
    assert picked_token(encoder, text, (0, 6)) == "don"  # 'Lon','don','ers'


def test_zero_width_tokens_are_never_read():
    text = "Oslo rocks"
    offsets = np.array([[0, 3], [3, 4], [4, 4], [4, 10]])  # a zero-width token right after the span
    assert last_token_indices(offsets, [(0, 4)], text)[0] == 1


@pytest.mark.parametrize("span, message", [((3, 50), "not inside"), ((5, 5), "not inside"), ((-1, 2), "not inside"),
                                           ((4, 5), "only whitespace")])
def test_bad_spans_name_what_is_wrong(span, message):
    encoder = FakeEncoder()
    text = "Oslo rocks"
    with pytest.raises(NerOsError, match=message):
        MentionEmbedder(encoder).embed([text], [[span]])


def test_embed_returns_unit_rows_in_span_order_and_skips_texts_without_spans():
    encoder = FakeEncoder()
    texts = ["Ada Lovelace met Babbage", "nothing here", "Turing"]
    spans = [[(17, 24), (0, 12)], [], [(0, 6)]]
    out = MentionEmbedder(encoder).embed(texts, spans)
    assert [v.shape for v in out] == [(2, D_V), (0, D_V), (1, D_V)]
    assert all(v.dtype == np.float32 for v in out)
    np.testing.assert_allclose(np.linalg.norm(np.concatenate(out), axis=1), 1, rtol=1e-6)
    assert encoder.calls == [["Ada Lovelace met Babbage", "Turing"]]
    one_by_one = MentionEmbedder(encoder).embed([texts[0]], [[spans[0][1]]])[0][0]
    np.testing.assert_allclose(out[0][1], one_by_one, rtol=1e-6)


def test_embed_checks_that_texts_and_spans_pair_up():
    with pytest.raises(NerOsError, match="2 texts but 1 span lists"):
        MentionEmbedder(FakeEncoder()).embed(["a", "b"], [[]])


def test_spans_may_be_objects_with_start_and_end():
    @dataclass
    class Span:
        start: int
        end: int

    encoder = FakeEncoder()
    text = "Ada Lovelace"
    by_object = MentionEmbedder(encoder).embed([text], [[Span(4, 12)]])[0]
    by_pair = MentionEmbedder(encoder).embed([text], [[(4, 12)]])[0]
    np.testing.assert_array_equal(by_object, by_pair)


def test_type_embedding_is_the_whole_description_as_one_span_after_one_space():
    encoder = FakeEncoder()
    embedder = MentionEmbedder(encoder)
    vector = embedder.embed_type("  river in Africa ")
    text = " river in Africa"  # stripped, then one space: its first word tokenised as inside a sentence
    assert description_text("  river in Africa ") == (text, (1, len(text)))
    offsets = encoder.tokens(text)
    last = last_token_indices(offsets, [(1, len(text))], text)[0]
    assert text[offsets[last][0]:offsets[last][1]].strip() == "ica"
    np.testing.assert_allclose(vector, l2_normalise(encoder.vector(text, *offsets[last])), rtol=1e-6)
    assert encoder.calls[-1] == [text]  # no template
    assert vector.shape == (D_V,)


def test_a_one_word_description_is_tokenised_as_the_word_inside_a_sentence():
    encoder = FakeEncoder()
    MentionEmbedder(encoder).embed_type("dinosaur")
    (text,) = encoder.calls[-1]
    first_piece_alone = text[slice(*encoder.tokens(text)[0])]
    first_piece_in_sentence = "a dinosaur"[slice(*encoder.tokens("a dinosaur")[1])]
    assert first_piece_alone == first_piece_in_sentence == " din"


@pytest.mark.parametrize("description", ["", "   ", None])
def test_empty_type_description_is_refused(description):
    with pytest.raises(NerOsError, match="non-empty"):
        MentionEmbedder(FakeEncoder()).embed_type(description)


def test_head_is_applied_after_the_last_token():
    encoder = FakeEncoder()
    rng = np.random.default_rng(0)
    weights = {"hidden.weight": rng.normal(size=(6, D_V)), "hidden.bias": rng.normal(size=6),
               "output.weight": rng.normal(size=(5, 6)), "output.bias": rng.normal(size=5)}
    head = ProjectionHead(weights, {"encoder": {"profile": "fake", "layer": 3, "d_v": D_V}})
    text = "Ada Lovelace"
    projected = MentionEmbedder(encoder, head).embed([text], [[(4, 12)]])[0]
    raw = MentionEmbedder(encoder).embed([text], [[(4, 12)]])[0]
    assert projected.shape == (1, 5)
    offsets = encoder.tokens(text)
    np.testing.assert_allclose(projected, head.project(encoder.vector(text, *offsets[-1])[None]), rtol=1e-5)
    assert raw.shape == (1, D_V)
    assert MentionEmbedder(encoder, head).dim == 5


def test_public_embed_type_builds_one_embedder_per_settings(monkeypatch):
    import ner_os
    import ner_os.encoder.encoder as encoder_module
    from ner_os.mentions import embedder as mentions

    loads = []

    def fake_from_settings(settings, **overrides):
        loads.append(settings)
        return FakeEncoder()

    monkeypatch.setattr(encoder_module.Encoder, "from_settings", staticmethod(fake_from_settings))
    mentions.embedder_for.cache_clear()
    first = ner_os.embed_type("dinosaur", head="none", layer=3)
    second = ner_os.embed_type("river in Africa", head="none", layer=3)
    assert first.shape == second.shape == (D_V,)
    np.testing.assert_allclose(np.linalg.norm(first), 1, rtol=1e-6)
    assert len(loads) == 1 and loads[0].layer == 3 and loads[0].head == "none"
    mentions.embedder_for.cache_clear()


# ---------------------------------------------------------------- the real Gemma tokenizer and encoder


@pytest.fixture(scope="module")
def gemma():
    from ner_os.encoder import Encoder

    try:
        return Encoder.load("gemma3-270m", backend="torch", layer=12)
    except NerOsError as error:
        pytest.skip(f"Gemma 3 270M not available: {error}")


def read_token(encoder, text, span):
    ids, offsets = encoder.tokenize(text)
    index = last_token_indices(offsets, [span], text)[0]
    return index, text[offsets[index][0]:offsets[index][1]]


@pytest.mark.model
@pytest.mark.parametrize("text, surface, last_piece", [
    ("The Eiffel Tower is in Paris.", "Eiffel Tower", "Tower"),  # the next token is ' is' (space merged)
    ("Fossils of Brachiosaurus were found", "Brachiosaurus", "aurus"),  # several sub-words
    ("She moved to Kilimanjaro", "Kilimanjaro", None),  # the span ends the text
    ("Paris, not Paris Hilton.", "Paris", "Paris"),  # comma right after the span
])
def test_real_tokenizer_last_token(gemma, text, surface, last_piece):
    start = text.index(surface)
    index, piece = read_token(gemma, text, (start, start + len(surface)))
    assert surface.endswith(piece), (surface, piece)
    if last_piece is not None:
        assert piece == last_piece
    if surface == "Kilimanjaro":
        assert index == len(gemma.tokenize(text)[0]) - 1


@pytest.mark.model
def test_real_encoder_same_surface_twice_reads_two_contexts(gemma):
    text = "Jordan scored twice before Jordan closed its border."
    first, second = (0, 6), (27, 33)
    vectors = MentionEmbedder(gemma).embed([text], [[first, second]])[0]
    encoded = gemma.encode([text])[0]
    rows = last_token_indices(encoded.offsets, [first, second], text)
    np.testing.assert_allclose(vectors, l2_normalise(encoded.vectors[rows]), atol=1e-6)
    assert float(vectors[0] @ vectors[1]) < 0.999


@pytest.mark.model
def test_real_encoder_text_longer_than_the_window(gemma):
    filler = "The committee met again on Tuesday and discussed the budget in detail. " * 60
    text = "Ada Lovelace wrote notes. " + filler + "Later Ada Lovelace visited Turin"
    ids, offsets = gemma.tokenize(text)
    assert len(ids) > gemma.max_tokens  # chunked inside the encoder
    first = (0, len("Ada Lovelace"))
    last = (text.rindex("Ada Lovelace"), text.rindex("Ada Lovelace") + len("Ada Lovelace"))
    end = (text.rindex("Turin"), len(text))
    vectors = MentionEmbedder(gemma).embed([text], [[first, last, end]])[0]
    assert vectors.shape == (3, gemma.d_v) and np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, rtol=1e-5)
    for span in (first, last, end):
        piece = read_token(gemma, text, span)[1]
        assert piece and text[span[0]:span[1]].endswith(piece)
    assert float(vectors[0] @ vectors[1]) < 0.999  # different left contexts, one vector each
