"""``ner-os eval`` end to end on the real node: a few dozen labelled sentences, every system.

The corpus is written here as BIO from bracketed sentences ("[Lionel Messi|person_athlete] scored"),
so that a fresh clone needs no data folder.
"""

from __future__ import annotations

import json
import re

import pytest

from ner_os.config import Settings
from ner_os.evaluation.run import evaluate

pytestmark = pytest.mark.integration

SENTENCES = [
    "[Lionel Messi|person_athlete] scored twice as Barcelona beat Sevilla on Sunday .",
    "[Serena Williams|person_athlete] won her seventh title at Wimbledon .",
    "The sprinter [Usain Bolt|person_athlete] set the world record in Berlin in 2009 .",
    "[Roger Federer|person_athlete] retired from professional tennis at the Laver Cup .",
    "Quarterback [Tom Brady|person_athlete] signed with Tampa Bay in March .",
    "[Simone Biles|person_athlete] withdrew from the team final in Tokyo .",
    "Boxer [Muhammad Ali|person_athlete] lit the Olympic flame in Atlanta .",
    "[Eliud Kipchoge|person_athlete] ran the marathon in under two hours in Vienna .",
    "The [Danube|location_bodiesofwater] flows through Vienna and Budapest .",
    "Fishermen cast their nets on [Lake Victoria|location_bodiesofwater] at dawn .",
    "The ferry crossed the [English Channel|location_bodiesofwater] in heavy fog .",
    "Pollution in the [Ganges|location_bodiesofwater] worries officials in Varanasi .",
    "Ships wait to enter the [Panama Canal|location_bodiesofwater] near Colon .",
    "The expedition sailed across the [Arctic Ocean|location_bodiesofwater] last summer .",
    "Tourists swim in the [Dead Sea|location_bodiesofwater] near Jericho .",
    "A dam on the [Yangtze|location_bodiesofwater] supplies power to Shanghai .",
    "He drove a [Ford Mustang|product_car] from Detroit to Chicago .",
    "The [Toyota Corolla|product_car] remains the best-selling model worldwide .",
    "Police seized a stolen [Porsche 911|product_car] in Munich .",
    "She restored a [Volkswagen Beetle|product_car] in her garage in Ohio .",
    "The [Tesla Model S|product_car] was reviewed by journalists in Oslo .",
    "A vintage [Jaguar E-Type|product_car] sold at auction in London .",
    "The new [Honda Civic|product_car] arrives at dealers in April .",
    "He parked his [Fiat 500|product_car] outside the bakery in Turin .",
    "The [Labour Party|organization_politicalparty] won the election in Manchester .",
    "Members of the [Green Party|organization_politicalparty] protested in Hamburg .",
    "The [Republican Party|organization_politicalparty] held its convention in Cleveland .",
    "[Fianna Fail|organization_politicalparty] formed a coalition in Dublin .",
    "The [Christian Democratic Union|organization_politicalparty] chose a new leader in Berlin .",
    "The [Indian National Congress|organization_politicalparty] campaigned in Delhi .",
    "Voters in Madrid backed [Podemos|organization_politicalparty] in the city vote .",
    "The [Liberal Democrats|organization_politicalparty] gained seats in Bath .",
    "It rained all afternoon in the small town .",
    "The museum opens at nine on weekdays .",
]
NAMES = {
    "person_athlete": "athlete",
    "location_bodiesofwater": "body of water",
    "product_car": "car",
    "organization_politicalparty": "political party",
}
MENTION = re.compile(r"\[([^|\]]+)\|([^\]]+)\]")


def bio_lines(sentence: str) -> list[str]:
    """'[Lionel Messi|person_athlete] scored' -> 'Lionel\\tB-person_athlete', 'Messi\\tI-person_athlete', 'scored\\tO'."""
    lines = []
    position = 0
    for match in MENTION.finditer(sentence):
        lines += [f"{token}\tO" for token in sentence[position:match.start()].split()]
        surface, label = match.groups()
        lines += [f"{token}\t{'B' if i == 0 else 'I'}-{label}" for i, token in enumerate(surface.split())]
        position = match.end()
    lines += [f"{token}\tO" for token in sentence[position:].split()]
    return lines


@pytest.fixture
def corpus(tmp_path):
    data = tmp_path / "tiny.bio"
    data.write_text("# a hand-made corpus\n" + "\n\n".join("\n".join(bio_lines(s)) for s in SENTENCES) + "\n")
    names = tmp_path / "names.json"
    names.write_text(json.dumps(NAMES))
    return data, names


def _eval_indexes(client, prefix: str) -> list[str]:
    return sorted(client.indices.get(index=f"{prefix}-eval-*", expand_wildcards="all"))


def test_baselines_rank_the_same_documents_and_clean_up(client, opensearch_url, corpus, tmp_path):
    data, names = corpus
    settings = Settings.resolve(opensearch_url=opensearch_url, index="nerostest-evalbase")
    result = evaluate(data, names, settings=settings, systems="bm25,dense", span_sources="gold", out=tmp_path / "out")
    assert result.documents == len(SENTENCES)
    assert [run.spec.name for run in result.runs] == ["bm25", "dense"]
    for run in result.runs:
        assert sorted(run.scores.per_type) == sorted(NAMES)
        assert all(0.0 <= scores.r_precision <= 1.0 for scores in run.scores.per_type.values())
    # BM25 matches only "party" of the four descriptions' words, while a sentence embedder places
    # athletes, rivers and cars near their descriptions
    dense = result.run("dense").scores
    assert dense.macro["r_precision"] > result.run("bm25").scores.macro["r_precision"]
    assert dense.per_type["person_athlete"].p_at_10 >= 0.5
    written = json.loads((tmp_path / "out" / "eval.json").read_text())
    assert set(written["macro_r_precision"]) == {"bm25", "dense"}
    assert (tmp_path / "out" / "eval-r-precision.png").stat().st_size > 10_000
    assert _eval_indexes(client, "nerostest-evalbase") == []


@pytest.mark.model
def test_every_system_with_gold_and_detected_spans(client, opensearch_url, corpus):
    data, names = corpus
    prefix = "nerostest-evalall"
    settings = Settings.resolve(opensearch_url=opensearch_url, index=prefix)
    try:
        result = evaluate(data, names, settings=settings, systems="bm25,dense,raw,ner-os,hybrid,ner-os-exact",
                          span_sources="gold,detected", keep_indexes=True, progress=False)
        indexes = _eval_indexes(client, prefix)
        assert len(indexes) == 5  # sentences, then raw and ner-os for each span source
        for load in result.loads:
            count = client.count(index=load["index"])["count"]
            assert count == load["documents"] == len(SENTENCES), load
            assert load["rejected"] == 0
        gold_loads = [load for load in result.loads if load["spans"] == "gold"]
        assert all(load["mentions"] == len(SENTENCES) - 2 for load in gold_loads)  # one gold mention per labelled sentence
        # one encoder pass: every sentence went through the model once, before the first load, so that no
        # load encoded anything; the descriptions through the query encoder, as a client reads them
        # the sentences once, then the descriptions: in int8 as the documents, so through the same encoder
        assert result.model["texts_encoded"] == len(SENTENCES) + len(NAMES)
        assert (result.model["dtype"], result.model["query_dtype"]) == ("int8", "int8")
        assert [load["texts_encoded"] for load in result.loads] == [0, 0, 0, 0]
        assert result.span_detection["recall_overlap"] > 0.5
        names_run = [run.spec.name for run in result.runs]
        assert names_run[:2] == ["bm25", "dense"] and "hybrid [detected]" in names_run
        for spans in ("gold", "detected"):
            macro = result.macro_r_precision(spans)
            # on a few dozen documents HNSW is exact
            assert macro["ner-os"] == pytest.approx(macro["ner-os-exact"], abs=1e-9)
            assert macro["ner-os"] > macro["bm25"]
    finally:
        from ner_os.store.schema import remove_templates

        for name in _eval_indexes(client, prefix):
            client.indices.delete(index=name, ignore_unavailable=True)
            remove_templates(client, name)
