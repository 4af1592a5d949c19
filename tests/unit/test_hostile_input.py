"""Hostile input, property-based: the JSONL reader over arbitrary bytes, deep JSON, huge lines and unicode
edge cases; mention offsets anywhere in such texts through the real (tiny) encoder; and type descriptions,
which may only ever reach ``match`` and ``knn`` bodies, never a ``query_string`` or a script.

Every property runs a bounded number of examples (seconds in all): the point is breadth of odd input,
not search depth.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ner_os.config import Settings
from ner_os.loader.records import MAX_JSON_DEPTH, Document, Line, Rejected, is_blank, parse_line, read_lines
from ner_os.errors import NerOsError
from ner_os.loader import load
from ner_os.query import (
    TypeQuery,
    bm25_search_body,
    dsl_request,
    hybrid_search_body,
    knn_search_body,
    template_request_line,
    type_search_steps,
)
from ner_os.store.search import search_template_script
from ner_os.spans import NoDetector

pytestmark = pytest.mark.unit

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# characters that break naive text handling: combining marks, right-to-left text and marks, zero-width
# characters, a byte-order mark, astral-plane emoji (a surrogate pair in UTF-16) and joined emoji
# sequences, the line and paragraph separators (line breaks to str.splitlines, not to JSONL)
EDGE_CHARACTERS = ("e\u0301", "\u0301", "\u05e9\u05dc\u05d5\u05dd", "\u0627\u0644\u0646\u064a\u0644", "\u200f",
                   "\u202e", "\u200b", "\u200d", "\u2060", "\ufeff", "\U0001f600", "\U0001f469\u200d\U0001f52c",
                   "\U0001f1eb\U0001f1f7", "\u2028", "\u2029", "\x00", "\x85", "\t", "\r", " ", "A", "Nile")
edge_text = st.lists(st.one_of(st.sampled_from(EDGE_CHARACTERS), st.characters()), max_size=40).map("".join)
lone_surrogate = st.integers(0xD800, 0xDFFF).map(chr)
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False),
                        edge_text)
json_value = st.recursive(json_scalar, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                               st.dictionaries(edge_text, inner, max_size=4)),
                          max_leaves=12)


def lines_of(data: bytes) -> list[bytes]:
    """The lines of a JSONL input, as a reader must see them: split on ``\\n`` only."""
    parts = data.split(b"\n")
    return parts[:-1] if parts[-1] == b"" else parts


def account(data: bytes, max_line_bytes: int = 1 << 20) -> tuple[list[Line], list[Document | Rejected]]:
    lines = list(read_lines(io.BytesIO(data), max_line_bytes))
    return lines, [parse_line(line, max_line_bytes) for line in lines if not is_blank(line)]


def assert_well_formed(outcome: Document | Rejected) -> None:
    if isinstance(outcome, Rejected):
        assert outcome.reason.strip() and "\n" not in outcome.reason
        json.dumps(outcome.to_json(), ensure_ascii=False).encode("utf-8")  # the reject file can hold it
        return
    assert outcome.text.strip()
    # what the bulk request will serialise: it must encode (no lone surrogate anywhere, keys included)
    json.dumps({"id": outcome.id, "text": outcome.text, "metadata": outcome.metadata},
               ensure_ascii=False, allow_nan=False).encode("utf-8")
    for start, end in outcome.mentions or ():
        assert 0 <= start < end <= len(outcome.text)


# --- the JSONL reader ---------------------------------------------------------------------------------


@FAST
@given(st.lists(st.binary(max_size=120), max_size=12), st.sampled_from([b"\n", b"\r\n"]), st.booleans())
def test_arbitrary_bytes_every_line_is_read_once_and_settled_with_a_reason(raw_lines, newline, trailing):
    data = newline.join(raw_lines) + (newline if trailing and raw_lines else b"")
    lines, outcomes = account(data)
    assert [line.number for line in lines] == list(range(1, len(lines_of(data)) + 1))
    assert lines[-1].end_offset == len(data) if lines else data == b""
    assert len(outcomes) == sum(not is_blank(line) for line in lines)
    for outcome in outcomes:
        assert_well_formed(outcome)


@FAST
@given(st.lists(st.binary(min_size=0, max_size=300), min_size=1, max_size=8))
def test_lines_over_the_limit_are_skipped_whole_and_rejected_with_their_number(raw_lines):
    raw_lines = [line.replace(b"\n", b" ") for line in raw_lines]
    data = b"\n".join(raw_lines) + b"\n"
    lines, outcomes = account(data, max_line_bytes=64)
    assert len(lines) == len(raw_lines)
    for line, raw in zip(lines, raw_lines):
        assert line.oversize == (len(raw) + 1 > 65)  # the line break counts towards the limit read
    oversize = [outcome for outcome in outcomes if "64-byte limit" in getattr(outcome, "reason", "")]
    assert len(oversize) == sum(line.oversize for line in lines)


@FAST
@given(st.dictionaries(edge_text, json_value, max_size=5), edge_text, st.one_of(st.none(), json_value))
def test_json_objects_with_unicode_edge_cases_become_sound_documents_or_rejects(extra, text, doc_id):
    record = {**extra, "text": text}
    if doc_id is not None:
        record["id"] = doc_id
    for ensure_ascii in (True, False):
        raw = json.dumps(record, ensure_ascii=ensure_ascii).encode("utf-8", errors="surrogatepass")
        (outcome,) = account(raw + b"\n")[1] or [None]
        if outcome is not None:
            assert_well_formed(outcome)


@FAST
@given(edge_text, lone_surrogate, st.sampled_from(["text", "id", "key", "value"]))
def test_a_lone_surrogate_escape_anywhere_is_rejected_not_loaded(text, surrogate, where):
    record = {"text": text + "x", "id": "a", "meta": "v"}
    if where == "key":
        record[surrogate] = 1
    elif where == "value":
        record["meta"] = surrogate
    else:
        record[where] = record[where] + surrogate
    raw = json.dumps(record).encode()  # ensure_ascii: the surrogate travels as a \udXXX escape
    assert b"\\ud" in raw
    (outcome,) = account(raw)[1]
    assert isinstance(outcome, Rejected) and "surrogate" in outcome.reason


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 5_000, 200_000])
def test_deep_json_is_rejected_not_a_crash(depth):
    nested = b'{"text": "x", "deep": ' + b"[" * depth + b"]" * depth + b"}"
    (outcome,) = account(nested)[1]
    assert isinstance(outcome, Rejected) and "nested deeper" in outcome.reason
    (bare,) = account(b"[" * depth)[1]
    assert isinstance(bare, Rejected)


def test_json_at_the_depth_limit_loads():
    depth = MAX_JSON_DEPTH - 1  # the object itself is one level
    (outcome,) = account(b'{"text": "x", "deep": ' + b"[" * depth + b"]" * depth + b"}")[1]
    assert isinstance(outcome, Document)


@pytest.mark.parametrize("number", [b"1e999", b"-1e999", b"NaN", b"Infinity", b"1" * 5000])
def test_numbers_json_cannot_carry_are_rejected(number):
    (outcome,) = account(b'{"text": "x", "n": ' + number + b"}")[1]
    assert isinstance(outcome, Rejected) and "invalid JSON" in outcome.reason


@FAST
@given(edge_text.filter(lambda text: text.strip()), st.lists(st.tuples(st.integers(-3, 60), st.integers(-3, 60)),
                                                              max_size=4))
def test_given_offsets_anywhere_are_kept_in_code_points_or_rejected(text, pairs):
    mentions = [{"start": start, "end": end} for start, end in pairs]
    (outcome,) = account(json.dumps({"text": text, "mentions": mentions}).encode())[1]
    assert_well_formed(outcome)
    if isinstance(outcome, Document):
        assert sorted(outcome.mentions) == sorted(set(pairs))


# --- offsets that split characters, through the real (tiny) encoder -----------------------------------


@pytest.fixture(scope="module")
def embedder(tmp_path_factory):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_encoder_tiny import tiny_encoder  # the encoder tests' tiny random-initialised model

    from ner_os.mentions.embedder import MentionEmbedder

    return MentionEmbedder(tiny_encoder("llama", tmp_path_factory), None)


def split_points(text: str) -> list[int]:
    """Offsets inside a character as other encodings count them: between a base and its combining mark,
    inside a joined emoji sequence or flag, next to zero-width characters."""
    return [i for i in range(1, len(text)) if not text[i].isalnum() or not text[i - 1].isalnum()]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.lists(edge_text.filter(lambda text: text.strip()), min_size=1, max_size=4), st.data())
def test_mentions_at_any_code_point_boundary_embed_as_unit_vectors(embedder, texts, data):
    from ner_os.spans import Span

    spans = []
    for text in texts:
        points = sorted(set(split_points(text)) | {0, len(text)})
        cuts = sorted(set(data.draw(st.lists(st.sampled_from(points), max_size=6))) | {0, len(text)})
        # a whitespace-only span is refused up front (by the corpus reader, or the embedder's one-line error)
        spans.append([Span(start, end) for start, end in zip(cuts, cuts[1:]) if text[start:end].strip()])
    vectors = embedder.embed(texts, spans)
    assert [len(rows) for rows in vectors] == [len(row) for row in spans]
    for rows in vectors:
        assert np.all(np.isfinite(rows))
        if len(rows):
            np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-4)



def test_a_lone_surrogate_in_a_text_embeds_where_its_code_point_is(embedder):
    """No tokenizer encodes an unpaired surrogate; the encoder reads it as U+FFFD, one code point
    for one, so the offsets around it still hold (the loader refuses such a line before this)."""
    from ner_os.spans import Span

    texts = ["a \ud800 Nile", "Nile \udfff"]
    vectors = embedder.embed(texts, [[Span(4, 8)], [Span(0, 4)]])
    assert [len(rows) for rows in vectors] == [1, 1]
    np.testing.assert_allclose([np.linalg.norm(rows[0]) for rows in vectors], 1.0, atol=1e-4)


HOSTILE_LINES = [
    b"",  # blank: needs nothing
    json.dumps({"id": "rtl", "text": "\u05e9\u05dc\u05d5\u05dd Nile \u202e", "mentions": [{"start": 0, "end": 4}]}).encode(),
    json.dumps({"id": "combining", "text": "Cafe\u0301 A", "mentions": [{"start": 0, "end": 4}]}).encode(),  # splits e+acute
    json.dumps({"id": "emoji", "text": "\U0001f469\u200d\U0001f52c Ada", "mentions": [{"start": 0, "end": 2}]}).encode(),
    json.dumps({"id": "zero-width", "text": "\u200b\u200d\u2060A\ufeff"}).encode(),
    json.dumps({"id": "nul", "text": "a\x00b Nile", "k\x00": "v"}).encode(),
    b'{"id": "surrogate", "text": "a \\ud83d b"}',
    b'{"id": "pair", "text": "a \\ud83d\\ude00 b", "mentions": [{"start": 2, "end": 3}]}',
    b'{"text": "latin-1 caf\xe9"}',
    b"\xff\xfe\x00{",
    b'{"text": "x", "deep": ' + b"[" * 3000 + b"]" * 3000 + b"}",
    b'{"text": "x", "n": 1e999}',
    b'{"text": "' + b"A " * 3000 + b'"}',  # over the 4 KiB limit below
    b'"just a string"',
    b'{"text": "\\u0000"}',
    b'{"id": "split", "text": "\\ud83d\\ude00\\ud83d\\ude00", "mentions": [{"start": 0, "end": 1}, {"start": 1, "end": 2}]}',
    b'{"id": "past-end", "text": "\\ud83d\\ude00", "mentions": [{"start": 0, "end": 2}]}',
    json.dumps({"id": "zero-width-mention", "text": "a \u200b b", "mentions": [{"start": 2, "end": 3}]}).encode(),
    json.dumps({"id": "separator-mention", "text": "a \u2028 b", "mentions": [{"start": 2, "end": 3}]}).encode(),
]


def test_a_dry_run_over_hostile_lines_settles_every_line(tmp_path, embedder):
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(b"\n".join(HOSTILE_LINES) + b"\n")
    summary = load(path, Settings.resolve(data_dir=str(tmp_path / "data")), dry_run=True, embedder=embedder,
                   detector=NoDetector(), progress=False, max_line_bytes=4096)
    rejects = [json.loads(text) for text in (tmp_path / "hostile.rejects.jsonl").read_text().splitlines()]
    blank = sum(not line.strip() for line in HOSTILE_LINES)
    assert summary.documents + summary.rejected + blank == len(HOSTILE_LINES)
    assert len(rejects) == summary.rejected and all(entry["reason"] for entry in rejects)
    rejected_lines = {entry["line"] for entry in rejects}
    loaded = {"rtl", "combining", "emoji", "zero-width", "nul", "pair", "split", "zero-width-mention"}
    assert summary.documents == len(loaded) + 1  # "\u0000" is text too
    assert rejected_lines == {7, 9, 10, 11, 12, 13, 14, 17, 19}


# --- type descriptions only reach match and knn bodies ------------------------------------------------


FORBIDDEN_QUERIES = {"query_string", "simple_query_string", "script", "script_score", "function_score",
                     "intervals", "regexp", "wildcard", "template"}


def occurrences(node, needle: str, path=()):
    """Every path (tuple of keys) at which a key or a string containing ``needle`` occurs in a JSON body."""
    if isinstance(node, dict):
        for key, value in node.items():
            if needle in str(key):
                yield path + (key,)
            yield from occurrences(value, needle, path + (key,))
    elif isinstance(node, list):
        for value in node:
            yield from occurrences(value, needle, path + ("[]",))
    elif isinstance(node, str) and needle in node:
        yield path


def all_keys(node):
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from all_keys(value)
    elif isinstance(node, list):
        for value in node:
            yield from all_keys(value)


def every_request_body(description: str) -> list[dict]:
    """The bodies each search mode sends, driven through ``type_search_steps`` with answers that keep it
    going to its last request (the page fetch of the hybrid modes)."""
    vector = [0.6, 0.8]
    bodies = []
    queries = [TypeQuery(description), TypeQuery(description, hybrid=False), TypeQuery(description, min_score=0.5)]
    for query in queries:
        for server_hybrid in (False, True):
            steps = type_search_steps(vector, query, index="docs", server_hybrid=server_hybrid)
            answer = None
            try:
                while True:
                    request = steps.send(answer)
                    sent = list(getattr(request, "bodies", None) or [request.body])
                    bodies += sent
                    responses = [{"took": 1, "hits": {"hits": [{"_id": "d1", "_score": 1.0, "_source": {},
                                                                  "fields": {"doc_id": ["d1"]}}]}} for _ in sent]
                    answer = responses if hasattr(request, "bodies") else responses[0]
            except StopIteration:
                pass
        bodies += [knn_search_body(vector, query), hybrid_search_body(vector, query), bm25_search_body(query)]
        for server_hybrid in (False, True):
            bodies.append(json.loads(dsl_request(vector, query, index="docs", server_hybrid=server_hybrid)
                                     .split("\n", 1)[1]))
        bodies.append(json.loads(template_request_line("docs", "t", vector, query).split("\n", 1)[1]))
    return bodies


@FAST
@given(st.one_of(edge_text, st.text(min_size=1, max_size=80),
                 st.sampled_from(['title:"x" OR _exists_:secret', "*:*", "ctx._source.x = 1", "{{#toJson}}x{{/toJson}}",
                                  '"}}, "script": {"source": "1"', "a\\\" OR 1=1", "</script>", "\\u0000"])))
def test_a_description_only_ever_reaches_a_match_query(hostile):
    description = f"Qzx {hostile} xzQ"  # markers make every occurrence of the description its own
    try:
        query = TypeQuery(description)
    except NerOsError as error:  # empty or over-long descriptions are refused with a one-line message
        assert "\n" not in str(error)
        return
    needle = query.description
    bodies = every_request_body(description)
    for body in bodies:
        assert not FORBIDDEN_QUERIES & set(all_keys(body)), body
        for path in occurrences(body, needle):
            # the only place: the query text of a match on the document text
            assert path[-3:] == ("match", "text", "query"), (path, body)
    assert any(list(occurrences(body, needle)) for body in bodies)  # it does reach the BM25 leg
    assert "Qzx" not in json.dumps(search_template_script())  # the stored template takes only the vector
