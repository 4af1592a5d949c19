"""The Ray engine's pieces that need no running Ray: the file's line-numbered byte ranges, the rows
between stages, the records of a Dataset, the summary's counting and the CLI's checks.

The engine against a real node and a local Ray: tests/integration/test_ray_load.py.
"""

from __future__ import annotations

import io
import json
import random

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner

pytest.importorskip("ray")

from ner_os.cli import cli  # noqa: E402
from ner_os.errors import ClusterError, ConfigError  # noqa: E402
from ner_os.loader.records import Document, Line, Rejected, is_blank, parse_line, read_lines  # noqa: E402
from ner_os.loader.sources import record_line  # noqa: E402
from ner_os.ray import rows as R  # noqa: E402
from ner_os.ray.api import _cause, _summary  # noqa: E402
from ner_os.ray.sink import id_hash  # noqa: E402
from ner_os.ray.source import JsonlDatasource, _reader, line_ranges, parse_records  # noqa: E402

pytestmark = pytest.mark.unit


def messy_corpus(seed: int) -> bytes:
    rng = random.Random(seed)
    lines = []
    for i in range(rng.randint(0, 120)):
        kind = rng.random()
        if kind < 0.1:
            lines.append(b"")
        elif kind < 0.2:
            lines.append(b"{broken")
        elif kind < 0.25:
            lines.append(json.dumps({"text": "Z" * 300}).encode())  # over the 200-byte limit below
        else:
            lines.append(json.dumps({"id": f"d{i % 40}", "text": f"Line {i} " + "w" * rng.randint(0, 60)}).encode())
    return b"\n".join(lines) + (b"\n" if rng.random() < 0.5 else b"")


def sequential(data: bytes) -> list[dict]:
    out = []
    for line in read_lines(io.BytesIO(data), 200):
        if not is_blank(line):
            parsed = parse_line(line, 200)
            out.append(R.reject_row(parsed) if isinstance(parsed, Rejected) else R.document_row(parsed))
    return out


@pytest.mark.parametrize("seed", range(12))
def test_byte_ranges_start_at_lines_and_number_them_as_the_sequential_reader(tmp_path, seed):
    data = messy_corpus(seed)
    path = tmp_path / "corpus.jsonl"
    path.write_bytes(data)
    source = JsonlDatasource(path, max_line_bytes=200, nested_limit=10_000, rows_per_block=7)
    for pieces in (1, 2, 3, 7):
        ranges = line_ranges(path, pieces)
        assert ranges[0][0] == 0 and ranges[-1][1] == len(data)
        for (start, end, before), following in zip(ranges, ranges[1:] + [(len(data), None, None)]):
            assert end == following[0] and start < end
            assert start == 0 or data[start - 1:start] == b"\n"
            assert before == data[:start].count(b"\n")
        rows = [row for start, end, before in ranges for table in _reader(source, start, end, before)()
                for row in table.to_pylist()]
        assert [{key: row[key] for key in ("line", "doc_id", "text", "reason", "excerpt")} for row in rows] == \
            [{key: row.get(key) for key in ("line", "doc_id", "text", "reason", "excerpt")} for row in sequential(data)]


def test_a_gzip_file_is_one_range_read_whole(tmp_path):
    import gzip

    data = messy_corpus(3)
    path = tmp_path / "corpus.jsonl.gz"
    path.write_bytes(gzip.compress(data))
    source = JsonlDatasource(path, max_line_bytes=200, nested_limit=10_000, rows_per_block=5)
    (task,) = source.get_read_tasks(8)
    rows = [row for table in task() for row in table.to_pylist()]
    assert [row["line"] for row in rows] == [row["line"] for row in sequential(data)]


def test_a_document_comes_out_of_its_row_as_the_parser_made_it():
    metadata = {"big": 2 ** 70, "neg": -0.0, "nested": [1, {"x": "é\u200d"}], "none": None}
    document = Document(7, "id-7", "Ada \x00 Nile \U0001f600", ((0, 3), (6, 10)), metadata)
    row = R.with_vectors(R.with_spans(R.document_row(document), document.mentions),
                         np.arange(6, dtype=np.float32).reshape(2, 3) / 7)
    (back,) = R.table([row]).to_pylist()
    assert R.to_document(back) == document
    assert R.spans_of(back) == document.mentions
    np.testing.assert_array_equal(R.vectors_of(back), np.arange(6, dtype=np.float32).reshape(2, 3) / 7)
    assert R.to_document(R.table([R.document_row(Document(1, "a", "b", None))]).to_pylist()[0]).mentions is None


def test_a_datasets_records_get_the_checks_and_ids_a_records_load_gives():
    records = [{"text": "Ada Nile", "lang": "en"}, {"lang": "fr"}, {"text": "Nile", "id": True}, {"text": "Oslo"}]
    columns = ("text", "lang", "id")
    table = pa.table({"pos": [1, 2, 3, 4], **{name: [record.get(name) for record in records] for name in columns}})
    rows = parse_records(table, position="pos", max_record_bytes=1 << 20, nested_limit=10_000).to_pylist()
    expected = []
    for i, record in enumerate(records):
        raw, problem = record_line(record)
        expected.append(parse_line(Line(i + 1, raw, 0, problem=problem), 1 << 20))
    assert [row["line"] for row in rows] == [1, 2, 3, 4]
    assert [row["reason"] for row in rows] == [getattr(outcome, "reason", None) for outcome in expected]
    # a null (the column another row has) is an absent field: the content ids are those of the records
    assert [row["doc_id"] for row in rows if row["reason"] is None] == \
        [outcome.id for outcome in expected if isinstance(outcome, Document)]
    assert json.loads(rows[3]["metadata"]) == {}


def test_the_summary_counts_an_id_written_twice_once_with_its_last_line(tmp_path):
    written = np.asarray([[id_hash("a"), 1, 2], [id_hash("b"), 2, 1], [id_hash("a"), 9, 5]], dtype=np.int64)
    results = [{"written": written[:2], "rejects": [(4, "bad", "x", None)], "seconds": {"encode": 1.0, "embed": 1.5},
                "first_ready": 100.0},
               {"written": written[2:], "rejects": [(3, "worse", "y", "c")], "seconds": {}, "first_ready": None}]
    from ner_os.config import Settings

    summary = _summary(results, "c.jsonl", "line", tmp_path / "c.rejects.jsonl", Settings.resolve(), False, 2.0,
                       began=99.0, ended=110.0)
    assert (summary.documents, summary.mentions, summary.superseded, summary.rejected) == (2, 6, 1, 2)
    assert summary.wall_seconds == pytest.approx(10.0) and summary.setup_seconds == pytest.approx(3.0)
    assert summary.stage_seconds["encode"] == 1.0 and summary.stage_seconds["head"] == pytest.approx(0.5)
    entries = [json.loads(text) for text in (tmp_path / "c.rejects.jsonl").read_text().splitlines()]
    assert [entry["line"] for entry in entries] == [3, 4]


def test_a_workers_ner_os_error_comes_back_as_itself():
    inner = ClusterError("index refuses writes")
    wrapper = RuntimeError("ray task failed")
    wrapper.cause = RuntimeError("user code")
    wrapper.cause.__cause__ = inner
    assert _cause(wrapper) is inner
    plain = RuntimeError("no ner-os error inside")
    assert _cause(plain) is plain


def test_the_cli_refuses_a_shard_and_stdin_on_ray_before_starting_anything(tmp_path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"text": "x"}\n')
    for args, message in ((["--shard", "1/2"], "splits the input itself"), ([], "not stdin")):
        source = "-" if not args else str(corpus)
        done = CliRunner().invoke(cli, ["load", source, "--engine", "ray", *args])
        assert done.exit_code == 2, done.output
        assert message in done.output and "Traceback" not in done.output


def test_options_out_of_range_are_config_errors(tmp_path):
    from ner_os.ray import load_file

    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"text": "x"}\n')
    with pytest.raises(ConfigError, match="workers 0"):
        load_file(corpus, dry_run=True, workers=0)
    with pytest.raises(ConfigError, match="overwrite the input"):
        load_file(corpus, rejects=corpus)
