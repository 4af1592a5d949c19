"""``ner-os eval`` on the command line: options reach :func:`ner_os.evaluation.run.evaluate`, bad
input is a one-line error before any cluster or model is touched."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ner_os.cli import cli
from ner_os.evaluation import run as eval_run
from ner_os.evaluation.corpus import EvalType
from ner_os.evaluation.metrics import evaluate as score_rankings
from ner_os.evaluation.plan import RunSpec
from ner_os.evaluation.results import EvalResult, RunResult

pytestmark = pytest.mark.unit

DATA = "Nile\tlocation_bodiesofwater\nflows\tO\n\nMessi\tperson_athlete\nscored\tO\n"


@pytest.fixture
def files(tmp_path):
    data = tmp_path / "data.txt"
    data.write_text(DATA)
    names = tmp_path / "names.json"
    names.write_text(json.dumps({"person_athlete": "athlete"}))
    return data, names


def invoke(*args):
    return CliRunner().invoke(cli, ["eval", *map(str, args)])


def test_unknown_system_is_a_one_line_error(files, monkeypatch):
    monkeypatch.setenv("NER_OS_OPENSEARCH_URL", "http://127.0.0.1:9")  # never reached
    data, names = files
    result = invoke("--data", data, "--types", names, "--systems", "bm25,colbert")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: unknown system 'colbert'; choose from bm25, dense, raw, ner-os, hybrid, ner-os-exact, raw-exact"]


def test_bad_name_map_is_a_one_line_error(files, tmp_path, monkeypatch):
    monkeypatch.setenv("NER_OS_OPENSEARCH_URL", "http://127.0.0.1:9")
    data, _ = files
    broken = tmp_path / "broken.json"
    broken.write_text('{"person_athlete": ')
    result = invoke("--data", data, "--types", broken, "--systems", "bm25")
    assert result.exit_code == 2
    assert result.output.startswith(f"Error: {broken}: not valid JSON")
    assert len(result.output.strip().splitlines()) == 1


def test_missing_data_file_and_bad_limit_are_refused_by_the_parser(files):
    _, names = files
    assert invoke("--data", "/no/such/file.txt", "--types", names).exit_code == 2
    data, _ = files
    result = invoke("--data", data, "--types", names, "--limit", "0")
    assert result.exit_code == 2 and "--limit" in result.output


def test_options_reach_evaluate_and_the_table_is_printed(files, monkeypatch, tmp_path):
    seen = {}

    def fake_evaluate(data, type_names, **options):
        seen.update(data=data, type_names=type_names, **options)
        athlete = EvalType("person_athlete", "athlete", frozenset({"s1"}))
        scores = score_rankings({"person_athlete": ["s0", "s1"]}, {"person_athlete": athlete.relevant})
        return EvalResult(data=str(data), data_format="bio", sentences_in_file=2, limit=None, seed=0,
                          documents=2, types=[athlete], span_sources=("gold",),
                          runs=[RunResult(RunSpec("bm25"), "ix", scores, 0.1)])

    monkeypatch.setattr(eval_run, "evaluate", fake_evaluate)
    data, names = files
    result = invoke("--data", data, "--types", names, "--format", "conll", "--systems", "bm25,ner-os",
                    "--spans", "detected", "--limit", "5", "--seed", "3", "--out", tmp_path / "out",
                    "--keep-indexes", "--url", "http://localhost:9200", "--index", "evalx", "--head", "none")
    assert result.exit_code == 0, result.output
    assert (seen["data"], seen["type_names"]) == (str(data), str(names))
    assert seen["systems"] == "bm25,ner-os" and seen["span_sources"] == "detected"
    assert (seen["data_format"], seen["limit"], seen["seed"], seen["keep_indexes"]) == ("conll", 5, 3, True)
    assert seen["out"] == str(tmp_path / "out")
    settings = seen["settings"]
    assert (settings.opensearch_url, settings.index, settings.head) == ("http://localhost:9200", "evalx", "none")
    assert seen["command"].startswith("ner-os ")
    assert "| bm25 | – | 0.000 | 0.000 | 0.100 | 1.000 | 0.500 |" in result.output
