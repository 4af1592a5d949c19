"""``load_records``: records in memory through the loader's one pipeline, as dry runs with a tiny
random-initialised encoder (no cluster)."""

from __future__ import annotations

import datetime
import json

import pytest

import ner_os
from ner_os.config import Settings
from ner_os.errors import NerOsError
from ner_os.loader import load, load_records
from ner_os.loader.sources import RecordSource, record_line
from ner_os.spans import NoDetector
from tiny_load import embedder, tiny_records  # noqa: F401 (embedder: the shared fixture)

pytestmark = pytest.mark.unit


def records(count: int) -> list[dict]:
    """Documents of varied length with given mentions (the first and last word)."""
    return tiny_records(count, numbered=True)


def dry_run(items, embedder, tmp_path, **options):
    options.setdefault("detector", NoDetector())
    options.setdefault("rejects", tmp_path / "rejects.jsonl")
    return load_records(items, Settings.resolve(data_dir=str(tmp_path / "data")), dry_run=True, embedder=embedder,
                        progress=False, **options)


def rejects(tmp_path) -> list[dict]:
    path = tmp_path / "rejects.jsonl"
    return [json.loads(text) for text in path.read_text().splitlines()] if path.exists() else []


def test_a_list_of_dicts_loads_like_the_same_lines_of_a_file(tmp_path, embedder):
    given = records(20)
    summary = dry_run(given, embedder, tmp_path)
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in given))
    from_file = load(path, Settings.resolve(data_dir=str(tmp_path / "data")), dry_run=True, embedder=embedder,
                     detector=NoDetector(), progress=False)
    assert (summary.documents, summary.mentions, summary.rejected) == (20, 40, 0)
    assert (summary.documents, summary.mentions) == (from_file.documents, from_file.mentions)
    assert summary.source == "records" and summary.unit == "record" and "no record rejected" in summary.describe()


def test_a_generator_loads_too(tmp_path, embedder):
    summary = dry_run((record for record in records(7)), embedder, tmp_path)
    assert (summary.documents, summary.mentions) == (7, 14)
    assert not RecordSource(iter([]), "x").rereadable and RecordSource([], "x").rereadable


def test_rejects_are_numbered_by_position_and_the_records_around_them_load(tmp_path, embedder):
    good = records(6)
    items = [good[0], "not a dict", good[1], {"text": ""}, good[2], {"text": "x", "when": datetime.date(2020, 1, 1)},
             good[3], None, good[4], {"text": "Paris", "mentions": [{"start": 0, "end": 99}]}, good[5],
             {"text": "bad", "score": float("nan")}]
    summary = dry_run(items, embedder, tmp_path)
    assert (summary.documents, summary.rejected) == (6, 6)
    entries = rejects(tmp_path)
    assert [entry["record"] for entry in entries] == [2, 4, 6, 8, 10, 12] and all("line" not in e for e in entries)
    reasons = [entry["reason"] for entry in entries]
    assert reasons[0] == "expected a dict (a JSON object), got str" and "'not a dict'" in entries[0]["excerpt"]
    assert reasons[1] == "`text` is empty"  # the very check a JSONL line gets
    assert "not representable as JSON" in reasons[2] and "date" in reasons[2]
    assert reasons[3] == "expected a dict (a JSON object), got NoneType"
    assert reasons[4].startswith("`mentions`:") and "not representable as JSON" in reasons[5]
    assert "6 records rejected" in summary.describe()


def test_a_record_checks_exactly_as_its_json_line_does():
    from ner_os.loader.records import Line, parse_line

    record = {"id": 7, "text": "Ada Lovelace", "lang": "en", "mentions": [{"start": 0, "end": 3}]}
    raw, problem = record_line(record)
    assert problem is None and raw == json.dumps(record, ensure_ascii=False).encode("utf-8")
    document = parse_line(Line(1, raw, len(raw) + 1))
    assert (document.id, document.text, document.mentions, document.metadata) == ("7", "Ada Lovelace", ((0, 3),),
                                                                                   {"lang": "en"})
    lone_surrogate, problem = record_line({"text": "a\ud800b"})
    assert problem is None
    assert "surrogate" in parse_line(Line(1, lone_surrogate, 0)).reason


def test_an_oversize_record_is_rejected(tmp_path, embedder):
    summary = dry_run([{"text": "Ada " * 100}, records(1)[0]], embedder, tmp_path, max_record_bytes=200)
    assert (summary.documents, summary.rejected) == (1, 1)
    assert rejects(tmp_path)[0]["reason"] == "record longer than the 200-byte limit (as JSON)"


def test_load_given_records_points_to_load_records():
    for wrong in ([{"text": "Ada"}], ({"text": "Ada"},), {"text": "Ada"}, 42):
        with pytest.raises(NerOsError, match=rf"not a {type(wrong).__name__}.*load_records"):
            ner_os.load(wrong)


def test_load_records_given_a_path_or_no_iterable_says_so(tmp_path):
    with pytest.raises(NerOsError, match=r"not the path .*use ner_os.load\(path\)"):
        load_records(str(tmp_path / "corpus.jsonl"))
    with pytest.raises(NerOsError, match="got one dict"):
        load_records({"text": "Ada"})
    with pytest.raises(NerOsError, match="iterable of dicts, got int"):
        load_records(42)


def test_load_and_load_records_take_the_same_options_written_once():
    import dataclasses
    import inspect

    from ner_os.loader.api import LoadOptions

    shared = [field.name for field in dataclasses.fields(LoadOptions)]
    for function, own in ((load, ["source", "settings", "max_line_bytes"]),
                          (load_records, ["records", "settings", "name", "max_record_bytes"])):
        parameters = inspect.signature(function).parameters
        assert list(parameters) == own + shared + ["flags"]
        assert all(parameters[name].kind is inspect.Parameter.KEYWORD_ONLY for name in shared)
    options, flags = LoadOptions.split({"dry_run": True, "shard": (1, 2), "index": "x"})
    assert (options.dry_run, options.shard, options.resume, flags) == (True, (1, 2), True, {"index": "x"})
    with pytest.raises(TypeError, match="dryrun"):  # a misspelt option is an unknown setting, as before
        load_records([{"text": "Ada"}], dryrun=True)
