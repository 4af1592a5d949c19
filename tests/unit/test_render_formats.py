"""``ner-os search --format table|jsonl|csv``: the three renderings of one result, and the flags."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

import ner_os.client
from ner_os import render
from ner_os.cli import cli
from ner_os.query import MentionMatch, TypeHit, TypeResults

pytestmark = pytest.mark.unit

TEXT = 'Tom said "go", then\nParis, Texas, waited.'


def mention(surface, score):
    start = TEXT.index(surface)
    return MentionMatch(surface=surface, start=start, end=start + len(surface), score=score, position=0)


RESULTS = TypeResults("city", "i", "knn", 0, (
    TypeHit(id="d,1", score=0.875, source={"text": TEXT}, mentions=(mention("Paris, Texas", 0.9), mention("Tom", 0.6))),
    TypeHit(id="d2", score=0.5, source={"text": "plain"}, mentions=()),
))


def test_csv_quotes_commas_quotes_and_newlines_and_parses_back():
    text = "\n".join(render.results_csv(RESULTS))
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["id", "score", "text", "mentions"]
    assert rows[1] == ["d,1", "0.875000", TEXT, "Paris, Texas:20-32; Tom:0-3"]
    assert rows[2] == ["d2", "0.500000", "plain", ""]
    assert '"Tom said ""go"", then\nParis, Texas, waited."' in text  # RFC 4180: doubled quotes, quoted newline


def test_csv_of_no_hits_is_the_header():
    assert render.results_csv(TypeResults("city", "i", "knn", 0, ())) == ["id,score,text,mentions"]


def test_jsonl_is_one_object_per_hit_and_table_is_the_readable_lines():
    rows = [json.loads(line) for line in render.search_results(RESULTS, "jsonl")]
    assert [row["rank"] for row in rows] == [1, 2]
    assert [row["id"] for row in rows] == ["d,1", "d2"] and rows[0]["mentions"][0]["surface"] == "Paris, Texas"
    table = render.search_results(RESULTS, "table")
    assert table[0] == "1. 0.8750  d,1" and "[[Paris, Texas]]" in table[1] and "\n" not in table[1]
    with pytest.raises(ValueError, match="expected one of table, jsonl, csv"):
        render.search_results(RESULTS, "xml")


class FixedNerOs:
    """Stands in for the client (not for OpenSearch): answers every search with RESULTS."""

    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        pass

    def search_type(self, description, **options):
        return RESULTS


@pytest.mark.parametrize("flags, first", [
    ([], "1. 0.8750  d,1"), (["--format", "table"], "1. 0.8750  d,1"), (["--format", "csv"], "id,score,text,mentions"),
    (["--format", "jsonl"], '{"rank": 1'), (["--json"], '{"rank": 1'), (["--json", "--format", "jsonl"], '{"rank": 1'),
])
def test_search_prints_the_format_asked_for(monkeypatch, flags, first):
    monkeypatch.setattr(ner_os.client, "NerOs", FixedNerOs)
    result = CliRunner().invoke(cli, ["search", "city", *flags])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(first)


def test_json_with_another_format_is_a_usage_error(monkeypatch):
    monkeypatch.setattr(ner_os.client, "NerOs", FixedNerOs)
    result = CliRunner().invoke(cli, ["search", "city", "--json", "--format", "csv"])
    assert result.exit_code == 2 and "--json is --format jsonl" in result.output
