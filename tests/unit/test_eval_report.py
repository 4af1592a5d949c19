"""``ner-os eval`` output: the markdown table, the JSON (keyed by system name) and the chart."""

from __future__ import annotations

import json

import pytest

from ner_os.evaluation.metrics import evaluate as score_rankings
from ner_os.evaluation.report import comparisons, markdown, write_report
from ner_os.evaluation.corpus import EvalType
from ner_os.evaluation.plan import RunSpec
from ner_os.evaluation.results import EvalResult, RunResult

pytestmark = pytest.mark.unit

DOCS = [f"s{i}" for i in range(10)]
TYPES = [
    EvalType("person_athlete", "athlete", frozenset({"s0", "s1"})),
    EvalType("location_other", "location", frozenset({"s2", "s3", "s4", "s5"})),
]
RELEVANCE = {t.label: t.relevant for t in TYPES}


def run(system: str, spans: str | None, rankings: dict[str, list[str]]) -> RunResult:
    return RunResult(RunSpec(system, spans), f"ix-{system}", score_rankings(rankings, RELEVANCE), 0.5)


def result() -> EvalResult:
    runs = [
        # bm25: athlete 1 of 2 in the top 2; location 1 of 4 in the top 4
        run("bm25", None, {"person_athlete": ["s0", "s9"], "location_other": ["s2", "s7", "s8", "s9"]}),
        # ner-os with gold spans: both perfect
        run("ner-os", "gold", {"person_athlete": ["s1", "s0"], "location_other": ["s5", "s4", "s3", "s2"]}),
        run("ner-os-exact", "gold", {"person_athlete": ["s1", "s0"], "location_other": ["s5", "s4", "s3", "s2"]}),
        # ner-os with detected spans: athlete perfect, location half
        run("ner-os", "detected", {"person_athlete": ["s0", "s1"], "location_other": ["s2", "s3", "s8", "s9"]}),
    ]
    return EvalResult(data="/data/inter_test.txt", data_format="bio", sentences_in_file=100, limit=10, seed=0,
                      documents=10, types=TYPES, runs=runs, span_sources=("gold", "detected"),
                      span_detection={"recall_exact": 0.5, "recall_same_end": 0.75, "recall_overlap": 0.9,
                                      "spans_per_text": 2.0, "gold_per_text": 0.6},
                      timings={"read corpus": 0.1, "load ner-os [gold]": 12.0}, wall_seconds=15.0,
                      command="ner-os eval --data inter_test.txt --types names.json --limit 10",
                      model={"encoder": {"profile": "gemma3-270m", "layer": 15}, "backend": "onnx", "dtype": "fp32",
                             "head": "ner_os/heads/gemma3-270m", "dense": {"model": "all-MiniLM-L6-v2"}})


def test_json_keys_macro_r_precision_by_system_name():
    data = result().to_dict()
    assert data["macro_r_precision"] == {"bm25": 0.375, "ner-os": 1.0, "ner-os-exact": 1.0}
    assert data["macro_r_precision_spans"] == "gold"
    # span-free systems appear under every span source, so each set can be compared on its own
    assert data["macro_r_precision_by_spans"]["detected"] == {"bm25": 0.375, "ner-os": 0.75}
    assert [r["name"] for r in data["runs"]] == ["bm25", "ner-os [gold]", "ner-os-exact [gold]", "ner-os [detected]"]
    bm25 = data["runs"][0]
    assert bm25["per_type"]["location_other"]["r_precision"] == 0.25
    # location_other is a catch-all type: the macro without it is the athlete's score alone
    assert bm25["macro_specific"]["r_precision"] == 0.5
    assert data["types"][1] == {"label": "location_other", "description": "location", "relevant": 4,
                                "catch_all": True, "ranking_depth": 1000}
    for key in ("command", "machine", "date", "wall_seconds", "timings_seconds"):
        assert data[key]
    assert data["machine"]["cpu_count"] >= 1
    json.dumps(data)  # all of it serialisable


def test_markdown_has_the_macro_table_the_targets_and_the_per_type_table():
    text = markdown(result())
    assert "| bm25 | – | 0.375 | 0.500 |" in text
    assert "| ner-os | detected | 0.750 |" in text
    assert "| ner-os / bm25 [gold] | 2.67x |" in text
    assert "| ner-os / bm25 [detected] | 2.00x |" in text
    assert "| ner-os-exact − ner-os [gold] (what HNSW costs) | +0.000 |" in text
    assert "| location_other * | location | 4 | 0.250 | 1.000 | 1.000 | 0.500 |" in text
    assert "a seeded sample, seed 0, of 100 sentences" in text
    assert "recall 0.500 exact, 0.750 same end" in text
    assert "ner-os eval --data inter_test.txt" in text
    assert ("Models: encoder gemma3-270m layer 15 (onnx, fp32); head ner_os/heads/gemma3-270m; "
            "dense all-MiniLM-L6-v2.") in text


def test_comparisons_only_for_systems_that_ran():
    only_bm25 = result()
    only_bm25.runs = only_bm25.runs[:1]
    assert comparisons(only_bm25) == []


def test_write_report_writes_markdown_json_and_a_png(tmp_path):
    paths = write_report(result(), tmp_path / "out")
    assert json.loads(paths["json"].read_text())["macro_r_precision"]["ner-os"] == 1.0
    assert paths["markdown"].read_text().startswith("# ner-os eval: inter_test.txt")
    png = paths["chart"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
