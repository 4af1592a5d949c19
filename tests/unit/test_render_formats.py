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
    TypeHit(id="d,1", score=0.875, source={"text": TEXT}, mentions=(mention("Paris, Texas", 0.9), mention("Tom", 0.6)),
            rank_score=0.875),
    TypeHit(id="d2", score=0.5, source={"text": "plain"}, mentions=(), rank_score=0.5),
), total=1234, total_relation="eq")
HYBRID = TypeResults("city", "i", "hybrid-client", 0, (
    TypeHit(id="a", score=0.9, source={"text": "Paris"}, mentions=(), rank_score=0.0325),), total=10000,
    total_relation="gte")
FAILED = TypeResults("river", "gone", "knn", 0, (), error="index 'gone' does not exist (any more)")


def test_csv_quotes_commas_quotes_and_newlines_and_parses_back():
    text = "\n".join(render.results_csv([RESULTS]))
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["id", "score", "rank_score", "total", "total_relation", "text", "mentions"]
    assert rows[1] == ["d,1", "0.875000", "0.875000", "1234", "eq", TEXT, "Paris, Texas:20-32; Tom:0-3"]
    assert rows[2] == ["d2", "0.500000", "0.500000", "1234", "eq", "plain", ""]
    assert '"Tom said ""go"", then\nParis, Texas, waited."' in text  # RFC 4180: doubled quotes, quoted newline


def test_csv_of_no_hits_is_the_header():
    assert render.results_csv([TypeResults("city", "i", "knn", 0, ())]) == \
        ["id,score,rank_score,total,total_relation,text,mentions"]


def test_jsonl_is_one_object_per_hit_and_table_is_the_readable_lines():
    rows = [json.loads(line) for line in render.search_results(RESULTS, "jsonl")]
    assert [row["rank"] for row in rows] == [1, 2] and "query" not in rows[0]
    assert [row["id"] for row in rows] == ["d,1", "d2"] and rows[0]["mentions"][0]["surface"] == "Paris, Texas"
    assert (rows[0]["score"], rows[0]["rank_score"], rows[0]["total"], rows[0]["total_relation"]) == (0.875, 0.875, 1234, "eq")
    table = render.search_results(RESULTS, "table")
    assert table[0] == "'city': 1,234 documents (knn); score: k-NN score of the best mention, (1 + cosine) / 2"
    assert table[1] == "1. 0.8750  d,1" and "[[Paris, Texas]]" in table[2] and "\n" not in table[2]
    with pytest.raises(ValueError, match="expected one of table, jsonl, csv"):
        render.search_results(RESULTS, "xml")


def test_hybrid_table_labels_the_ranking_and_a_lower_bound_says_at_least():
    table = render.search_results(HYBRID, "table")
    assert table[0].startswith("'city': at least 10,000 documents (hybrid-client); score: k-NN score")
    assert table[0].endswith("ranked by reciprocal rank fusion of k-NN and BM25 (RRF), in brackets")
    assert table[1] == "1. 0.9000  a  (rrf 0.0325)"


def test_several_results_are_numbered_in_every_format_and_a_failure_named():
    batch = [RESULTS, FAILED]
    table = render.search_results(batch, "table")
    assert table[0] == "[1]" and table[-2:] == ["[2]", "'river' failed: index 'gone' does not exist (any more)"]
    rows = [json.loads(line) for line in render.search_results(batch, "jsonl")]
    assert [(row["query"], row["description"]) for row in rows] == [(1, "city"), (1, "city"), (2, "river")]
    assert rows[-1] == {"query": 2, "description": "river", "error": "index 'gone' does not exist (any more)"}
    lines = list(csv.reader(io.StringIO(render.search_results(batch, "csv")[0])))
    assert lines[0][:3] == ["query", "description", "id"] and [row[0] for row in lines[1:]] == ["1", "1"]


class FixedNerOs:
    """Stands in for the client (not for OpenSearch): answers every search with RESULTS, a batch with
    RESULTS per query (FAILED for a query named "gone")."""

    batches: list = []

    def __init__(self, settings=None, *args, **kwargs):
        self.settings = settings

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        pass

    def index_name(self, index=None):
        return index or "i"

    def search_type(self, description, **options):
        return RESULTS

    def search_types(self, queries, **options):
        FixedNerOs.batches.append((list(queries), options))
        return [FAILED if query == "gone" else RESULTS for query in queries]


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("NER_OS_CACHE_DIR", str(tmp_path))
    FixedNerOs.batches = []


@pytest.mark.parametrize("flags, first", [
    ([], "'city': 1,234 documents"), (["--format", "table"], "'city': 1,234"), (["--format", "csv"], "id,score,rank_score"),
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


def test_several_descriptions_and_a_batch_file_are_one_batch(monkeypatch, tmp_path):
    monkeypatch.setattr(ner_os.client, "NerOs", FixedNerOs)
    batch = tmp_path / "queries.txt"
    batch.write_text('# types\nriver\n\n{"description": "person", "size": 2}\n')
    result = CliRunner().invoke(cli, ["search", "city", "--batch", str(batch), "-n", "4", "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    queries, options = FixedNerOs.batches[0]
    assert queries == ["city", "river", {"description": "person", "size": 2}] and options["size"] == 4
    assert [json.loads(line)["query"] for line in result.output.splitlines()] == [1, 1, 2, 2, 3, 3]
    result = CliRunner().invoke(cli, ["search", "--batch", "-"], input="river\n")
    assert result.exit_code == 0 and result.output.startswith("[1]\n'city': 1,234 documents")


def test_a_failed_query_of_a_batch_is_named_and_exits_1(monkeypatch):
    monkeypatch.setattr(ner_os.client, "NerOs", FixedNerOs)
    result = CliRunner().invoke(cli, ["search", "city", "gone", "--format", "csv"])
    assert result.exit_code == 1
    assert "query 2 ('river') failed: index 'gone' does not exist" in result.stderr
    assert len(list(csv.reader(io.StringIO(result.stdout)))) == 3  # the header and query 1's two rows


def test_examples_go_with_one_query_and_a_bad_batch_file_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr(ner_os.client, "NerOs", FixedNerOs)
    result = CliRunner().invoke(cli, ["search", "city", "river", "--like", "Nile"])
    assert result.exit_code == 2 and "go with one query" in result.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"description": \n')
    result = CliRunner().invoke(cli, ["search", "--batch", str(bad)])
    assert result.exit_code == 2 and "bad.jsonl:1: not a JSON object" in result.output
    assert "Traceback" not in result.output
