"""``ner-os eval``: the corpus built from BIO/CoNLL text, the judgements, the run plan, the shared encoder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ner_os.errors import ConfigError
from ner_os.evaluation.run import (
    DEFAULT_SYSTEMS,
    SPAN_SOURCES,
    SYSTEMS,
    RememberingEncoder,
    RunSpec,
    eval_types,
    loader_records,
    parse_choices,
    plan_runs,
    ranking_depth,
    read_corpus,
    read_type_names,
)

pytestmark = pytest.mark.unit

FEWNERD_STYLE = """\
London\tlocation_GPE
is\tO
on\tO
the\tO
Thames\tlocation_bodiesofwater
.\tO

Ada\tperson_other
Lovelace\tperson_other
met\tO
Babbage\tperson_other
in\tO
London\tlocation_GPE

It\tO
rained\tO
.\tO
"""

# CoNLL-2003 layout: four space-separated columns, IOB1 tags, a -DOCSTART- line and a comment
CONLL_STYLE = """\
# a comment line
-DOCSTART- -X- -X- O

EU NNP B-NP I-ORG
rejects VBZ B-VP O
German JJ B-NP I-MISC
call NN I-NP O
. . O O

Peter NNP B-NP I-PER
Blackburn NNP I-NP I-PER
"""


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_each_sentence_becomes_a_document_with_its_gold_mentions(tmp_path):
    documents = read_corpus(write(tmp_path, "d.txt", FEWNERD_STYLE))
    assert [d.id for d in documents] == ["s0", "s1", "s2"]
    first = documents[0]
    assert first.text == "London is on the Thames ."
    assert [(m.label, first.text[m.start:m.end]) for m in first.gold] == [
        ("location_GPE", "London"), ("location_bodiesofwater", "Thames")]
    assert first.gold_spans == ((0, 6), (17, 23))
    second = documents[1]
    # two person mentions separated by "met" stay two mentions; a multi-token one is one span
    assert [second.text[m.start:m.end] for m in second.gold] == ["Ada Lovelace", "Babbage", "London"]
    assert documents[2].gold == ()
    assert [d.line for d in documents] == [1, 8, 15]


def test_conll_columns_comments_docstart_and_iob1(tmp_path):
    documents = read_corpus(write(tmp_path, "c.txt", CONLL_STYLE), "conll")
    assert [d.text for d in documents] == ["EU rejects German call .", "Peter Blackburn"]
    assert [(m.label, documents[0].text[m.start:m.end]) for m in documents[0].gold] == [("ORG", "EU"), ("MISC", "German")]
    assert [(m.label, documents[1].text[m.start:m.end]) for m in documents[1].gold] == [("PER", "Peter Blackburn")]


def test_judgements_and_descriptions(tmp_path):
    documents = read_corpus(write(tmp_path, "d.txt", FEWNERD_STYLE))
    types = eval_types(documents, {"location_GPE": "country, state or city", "unused_label": "never seen"})
    assert [t.label for t in types] == ["location_GPE", "location_bodiesofwater", "person_other"]
    by_label = {t.label: t for t in types}
    assert by_label["location_GPE"].relevant == {"s0", "s1"}
    assert by_label["location_GPE"].description == "country, state or city"
    # a document with two mentions of one type is relevant once; a label the map lacks is its own query
    assert by_label["person_other"].relevant == {"s1"}
    assert by_label["location_bodiesofwater"].description == "location_bodiesofwater"


def test_a_corpus_without_gold_mentions_cannot_be_judged(tmp_path):
    documents = read_corpus(write(tmp_path, "d.txt", "It\tO\nrained\tO\n"))
    with pytest.raises(ConfigError, match="no gold mention"):
        eval_types(documents, {})


def test_limit_takes_a_seeded_sample_in_file_order(tmp_path):
    text = "\n".join(f"word{i}\tB-thing" for i in range(50)).replace("\n", "\n\n")
    path = write(tmp_path, "many.txt", text)
    everything = read_corpus(path)
    assert len(everything) == 50 and everything[7].id == "s07"
    sample = read_corpus(path, limit=10, seed=3)
    assert len(sample) == 10
    assert [d.id for d in sample] == sorted(d.id for d in sample)
    assert [d.id for d in read_corpus(path, limit=10, seed=3)] == [d.id for d in sample]
    assert [d.id for d in read_corpus(path, limit=10, seed=4)] != [d.id for d in sample]
    # the same sentence keeps its id whatever the sample
    assert {d.id: d.text for d in sample}.items() <= {d.id: d.text for d in everything}.items()
    assert len(read_corpus(path, limit=500)) == 50


def test_bad_inputs_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="no sentences"):
        read_corpus(write(tmp_path, "empty.txt", "# only a comment\n\n"))
    with pytest.raises(ConfigError, match="no such file"):
        read_corpus(tmp_path / "missing.txt")
    with pytest.raises(ConfigError, match="unknown data format"):
        read_corpus(write(tmp_path, "d.txt", FEWNERD_STYLE), "json")
    with pytest.raises(ConfigError, match="--limit 0"):
        read_corpus(write(tmp_path, "d.txt", FEWNERD_STYLE), limit=0)
    with pytest.raises(ConfigError, match="not valid JSON"):
        read_type_names(write(tmp_path, "names.json", "{'a': 1}"))
    with pytest.raises(ConfigError, match="expected a JSON object"):
        read_type_names(write(tmp_path, "names.json", '["athlete"]'))
    with pytest.raises(ConfigError, match="description of 'person_athlete'"):
        read_type_names(write(tmp_path, "names.json", '{"person_athlete": ""}'))


def test_type_names_are_read_with_whitespace_normalised(tmp_path):
    names = read_type_names(write(tmp_path, "names.json", json.dumps({"a": "  body of\twater "})))
    assert names == {"a": "body of water"}


def test_loader_records_carry_the_chosen_spans(tmp_path):
    documents = read_corpus(write(tmp_path, "d.txt", FEWNERD_STYLE))
    records = list(loader_records(documents, [d.gold_spans for d in documents]))
    assert records[0] == {"id": "s0", "text": "London is on the Thames .", "line": 1,
                          "mentions": [{"start": 0, "end": 6}, {"start": 17, "end": 23}]}
    # a document without spans is still loaded, with an empty mention list (never detected again)
    assert records[2]["mentions"] == []
    detected = list(loader_records(documents, [((0, 6),), (), ((3, 9),)]))
    assert [r["mentions"] for r in detected] == [[{"start": 0, "end": 6}], [], [{"start": 3, "end": 9}]]


def test_system_and_span_choices():
    assert parse_choices("bm25, Dense,bm25", SYSTEMS, "system") == ("bm25", "dense")
    assert parse_choices(["gold"], SPAN_SOURCES, "span source") == ("gold",)
    with pytest.raises(ConfigError, match="unknown system 'bert'; choose from"):
        parse_choices("bm25,bert", SYSTEMS, "system")
    with pytest.raises(ConfigError, match="no span source given"):
        parse_choices(" , ", SPAN_SOURCES, "span source")


def test_mention_systems_run_once_per_span_source():
    runs = plan_runs(DEFAULT_SYSTEMS, ("gold", "detected"))
    assert [run.name for run in runs] == [
        "bm25", "dense",
        "raw [gold]", "ner-os [gold]", "hybrid [gold]", "ner-os-exact [gold]",
        "raw [detected]", "ner-os [detected]", "hybrid [detected]", "ner-os-exact [detected]",
    ]
    assert plan_runs(("ner-os", "bm25"), ("detected",)) == [RunSpec("bm25"), RunSpec("ner-os", "detected")]


def test_ranking_depth_covers_r_precision_and_recall_at_100():
    assert ranking_depth(1) == 1000
    assert ranking_depth(2945) == 2945
    assert ranking_depth(50_000) == 10_000


class CountingEncoder:
    """A stand-in encoder: one row per character, recording what it was asked to encode."""

    d_v = 3
    layer = 7

    def __init__(self):
        self.calls: list[list[str]] = []

    def encode(self, texts):
        self.calls.append(list(texts))
        return [np.full((len(text), self.d_v), float(len(text)), dtype=np.float32) for text in texts]


def test_remembering_encoder_encodes_each_text_once():
    inner = CountingEncoder()
    encoder = RememberingEncoder(inner)
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
        from ner_os.encoder.runtime import EncodedText

        self.calls.append(list(texts))
        return [EncodedText(vectors=np.full((len(t.split()), self.d_v), float(len(t)), np.float32),
                            offsets=tokenize_words(t)[1]) for t in texts]

    def tokenize(self, text):
        return tokenize_words(text)


def test_token_vector_store_round_trip_and_staleness(tmp_path):
    from ner_os.evaluation.run import TokenVectorStore

    texts = ["Nile flows", "Messi scored twice", "Nile flows"]  # a repeated sentence keeps its place
    encoded = WordEncoder().encode(texts)
    key = {"profile": "tiny", "layer": 2, "d_v": 3}
    store = TokenVectorStore(tmp_path, key)
    assert store.read(texts, tokenize_words) is None
    store.write(texts, encoded)
    back = store.read(texts, tokenize_words)
    assert len(back) == 3
    for original, stored in zip(encoded, back):
        np.testing.assert_array_equal(original.vectors, stored.vectors)
        np.testing.assert_array_equal(original.offsets, stored.offsets)
    assert json.loads((store.directory / "key.json").read_text()) == key
    # another key or other texts: another file
    assert TokenVectorStore(tmp_path, {**key, "layer": 3}).path(texts) != store.path(texts)
    assert store.path(texts[:2]) != store.path(texts)
    # a tokenizer that now cuts differently never gets the old vectors
    assert store.read(texts, lambda text: tokenize_words(text.replace("Nile", "Ni le"))) is None


class DyingEncoder(WordEncoder):
    """Killed (an exception) on its second batch."""

    def encode(self, texts):
        if self.calls:
            raise KeyboardInterrupt
        return super().encode(texts)


def test_encode_all_resumes_from_the_slices_a_killed_run_stored(tmp_path):
    from ner_os.evaluation.run import TokenVectorStore

    texts = ["h i", "a b c d", "j", "e f g", "k l m"]  # longest first: a b c d, e f g, k l m, h i, j
    store = TokenVectorStore(tmp_path, {"profile": "tiny"})
    dying = DyingEncoder()
    with pytest.raises(KeyboardInterrupt):
        RememberingEncoder(dying).encode_all(texts, store=store, slice_texts=2, progress=False)
    assert dying.calls == [["a b c d", "e f g"]]
    again = WordEncoder()
    encoder = RememberingEncoder(again)
    encoder.encode_all(texts, store=store, slice_texts=2, progress=False)
    assert again.calls == [["k l m", "h i"], ["j"]]  # the first slice came from the store
    assert [len(item.offsets) for item in encoder.encode(texts)] == [2, 4, 1, 3, 3]
    assert encoder.encoded_texts == 3
    # a third run reads everything
    third = WordEncoder()
    RememberingEncoder(third).encode_all(texts, store=store, slice_texts=2, progress=False)
    assert third.calls == []


def test_remembering_encoder_takes_stored_encodings_and_encodes_the_rest():
    inner = CountingEncoder()
    encoder = RememberingEncoder(inner)
    stored = [np.zeros((1, 3), np.float32)]
    encoder.remember(["abc"], stored)
    encoder.encode_all(["abc", "de", "fghij", "de"], slice_texts=1, progress=False)
    assert inner.calls == [["fghij"], ["de"]]  # longest first, one slice each, "abc" never encoded
    assert encoder.encode(["abc"])[0] is stored[0]
