"""``ner-os eval``: the corpus built from BIO/CoNLL text, the judgements, the run plan."""

from __future__ import annotations

import json

import pytest

from ner_os.errors import ConfigError
from ner_os.evaluation.corpus import eval_types, loader_records, ranking_depth, read_corpus
from ner_os.evaluation.plan import DEFAULT_SYSTEMS, SPAN_SOURCES, SYSTEMS, RunSpec, parse_choices, plan_runs
from ner_os.evaluation.readers import read_type_names

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
