"""Reading and checking JSONL lines: every bad line becomes a reject with its line number and reason."""

from __future__ import annotations

import gzip
import io
import json

import pytest

from ner_os.loader.records import (
    Document,
    Line,
    Rejected,
    content_id,
    default_rejects_path,
    in_shard,
    input_size,
    is_blank,
    open_input,
    parse_line,
    parse_shard,
    read_lines,
)
from ner_os.errors import NerOsError

pytestmark = pytest.mark.unit


def line_of(value, number: int = 7) -> Line:
    raw = value if isinstance(value, bytes) else json.dumps(value, ensure_ascii=False).encode()
    return Line(number, raw, len(raw) + 1)


def test_a_valid_line_keeps_id_text_mentions_and_metadata():
    parsed = parse_line(line_of({"id": "d1", "text": "Ada Lovelace met Babbage.", "lang": "en",
                                 "mentions": [{"start": 17, "end": 24}, {"start": 0, "end": 12}]}))
    assert parsed == Document(7, "d1", "Ada Lovelace met Babbage.", ((0, 12), (17, 24)), {"lang": "en"})


def test_integer_ids_become_strings_and_missing_mentions_mean_detect():
    parsed = parse_line(line_of({"id": 42, "text": "Paris"}))
    assert parsed.id == "42" and parsed.mentions is None and parsed.metadata == {}


def test_without_id_the_id_is_a_content_hash():
    first = parse_line(line_of({"text": "Paris", "year": 1900}))
    again = parse_line(line_of({"year": 1900, "text": "Paris"}, number=99))
    changed = parse_line(line_of({"text": "Paris", "year": 1901}))
    assert first.id == again.id == content_id({"text": "Paris", "year": 1900})
    assert changed.id != first.id and len(first.id) == 32


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b'{"text": "a", ', "invalid JSON at column"),
        (b'["text"]', "expected a JSON object, got an array"),
        (b'"just a string"', "expected a JSON object, got a string"),
        (b'{"id": "x"}', "missing field `text`"),
        (b'{"text": ""}', "`text` is empty"),
        (b'{"text": "  \\n "}', "`text` is empty"),
        (b'{"text": 3}', "`text` must be a string, got a number"),
        (b'{"text": null}', "`text` must be a string, got null"),
        (b'{"text": "ok", "id": true}', "`id` must be a string or an integer, got a boolean"),
        (b'{"text": "ok", "id": ""}', "`id` is empty"),
        (b'{"text": "ok", "id": "' + b"x" * 513 + b'"}', "`id` is longer than 512 bytes"),
        (b'{"text": "caf\xe9"}', "invalid UTF-8 at byte"),
        (b'{"text": "ok", "score": NaN}', "invalid JSON: NaN is not valid JSON"),
        (b'{"text": "bad \\ud800 surrogate"}', "unpaired UTF-16 surrogate"),
        (b'{"text": "Paris", "mentions": {"start": 0, "end": 5}}', "`mentions` must be an array"),
        (b'{"text": "Paris", "mentions": [{"start": 0, "end": 9}]}', "outside the text"),
        (b'{"text": "Paris", "mentions": [{"start": 3, "end": 3}]}', "must be smaller than end"),
        (b'{"text": "Paris", "mentions": [{"start": -1, "end": 2}]}', "outside the text"),
        (b'{"text": "Paris", "mentions": [{"start": 0, "end": 2.0}]}', "end must be an integer"),
        (b'{"text": "Paris", "mentions": [{"start": 0}]}', "missing end"),
        (b'{"text": "Paris", "mentions": [{"start": 0, "end": 3}, {"start": 2, "end": 5}]}', "overlap"),
        (b'{"text": "a  b", "mentions": [{"start": 1, "end": 3}]}', "only whitespace"),
    ],
)
def test_each_kind_of_bad_line_is_rejected_with_its_reason(raw, reason):
    parsed = parse_line(line_of(raw, number=12))
    assert isinstance(parsed, Rejected), parsed
    assert parsed.line == 12 and reason in parsed.reason


def test_more_given_mentions_than_the_nested_limit_is_rejected():
    text = "a b c d"
    mentions = [{"start": i, "end": i + 1} for i in range(0, 7, 2)]
    assert isinstance(parse_line(line_of({"text": text, "mentions": mentions}), max_mentions=4), Document)
    parsed = parse_line(line_of({"text": text, "mentions": mentions}), max_mentions=3)
    assert isinstance(parsed, Rejected) and "over the index's nested-object limit of 3" in parsed.reason


def test_a_byte_order_mark_is_accepted_on_the_first_line_only():
    raw = b'\xef\xbb\xbf{"text": "Paris"}'
    assert isinstance(parse_line(Line(1, raw, len(raw))), Document)
    assert isinstance(parse_line(Line(2, raw, len(raw))), Rejected)


def test_read_lines_numbers_lines_tracks_offsets_and_skips_oversize_lines():
    data = b'{"text": "a"}\r\n' + b"x" * 50 + b"\n\n" + b'{"text": "tail, no newline"}'
    lines = list(read_lines(io.BufferedReader(io.BytesIO(data)), max_line_bytes=40))
    assert [line.number for line in lines] == [1, 2, 3, 4]
    assert lines[0].raw == b'{"text": "a"}' and lines[0].end_offset == 15
    assert lines[1].oversize and lines[1].end_offset == 15 + 51
    assert is_blank(lines[2]) and not is_blank(lines[1])
    assert lines[3].raw == b'{"text": "tail, no newline"}' and lines[3].end_offset == len(data)
    rejected = parse_line(lines[1], max_line_bytes=40)
    assert isinstance(rejected, Rejected) and rejected.reason == "line longer than the 40-byte limit"


def test_read_lines_continues_numbering_after_a_resume_point():
    lines = list(read_lines(io.BytesIO(b"a\nb\n"), after_line=10, after_offset=100))
    assert [(line.number, line.end_offset) for line in lines] == [(11, 102), (12, 104)]


def test_gzip_is_recognised_by_its_bytes_and_has_no_known_size(tmp_path):
    body = b'{"text": "one"}\n{"text": "two"}\n'
    packed = tmp_path / "corpus.data"  # no .gz suffix: the magic bytes decide
    packed.write_bytes(gzip.compress(body))
    plain = tmp_path / "corpus.jsonl"
    plain.write_bytes(body)
    for path in (packed, plain):
        with open_input(path) as stream:
            assert [line.raw for line in read_lines(stream)] == [b'{"text": "one"}', b'{"text": "two"}']
    assert input_size(packed) is None and input_size(plain) == len(body) and input_size("-") is None


def test_stdin_is_read_as_bytes(monkeypatch):
    class FakeStdin:
        buffer = io.BufferedReader(io.BytesIO(gzip.compress(b'{"text": "piped"}\n')))

    monkeypatch.setattr("sys.stdin", FakeStdin())
    with open_input("-") as stream:
        assert [line.raw for line in read_lines(stream)] == [b'{"text": "piped"}']


def test_a_missing_input_file_is_a_user_error(tmp_path):
    with pytest.raises(NerOsError, match="no such file"):
        with open_input(tmp_path / "absent.jsonl"):
            pass


def test_default_reject_file_sits_beside_the_input(tmp_path):
    assert default_rejects_path(tmp_path / "corpus.jsonl") == tmp_path / "corpus.rejects.jsonl"
    assert default_rejects_path(tmp_path / "corpus.jsonl.gz") == tmp_path / "corpus.rejects.jsonl"
    assert default_rejects_path(tmp_path / "data.txt", (1, 4)) == tmp_path / "data.txt.rejects.shard-1-of-4.jsonl"
    assert str(default_rejects_path("-")) == "stdin.rejects.jsonl"


def test_shards_deal_lines_round_robin():
    assert parse_shard("1/3") == (1, 3) and parse_shard(" 0 / 1 ") == (0, 1)
    for bad in ("3/3", "1", "a/b", "0/0"):
        with pytest.raises(NerOsError):
            parse_shard(bad)
    owners = [[shard for shard in range(3) if in_shard(line, (shard, 3))] for line in range(1, 10)]
    assert owners == [[0], [1], [2]] * 3
