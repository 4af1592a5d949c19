"""Reading a JSONL corpus: one JSON object per line, each checked and turned into a document or a reject.

A line holds ``text`` (required, a non-empty string), ``id`` (optional string or integer; without
it the document's id is a hash of its content, so reloading a file yields the same ids), optional
``mentions`` (``[{"start": s, "end": e}, ...]`` character offsets into ``text``, counted in
Unicode code points like Python's ``str``; given mentions bypass span detection) and any other
fields, kept as document metadata. The input is a path, ``-`` for stdin, gzip-compressed or not
(recognised by its magic bytes, whatever the file name).

Nothing here raises on bad input: every line becomes a :class:`Document` or a :class:`Rejected`
with its line number and reason.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from ner_os.errors import ConfigError, NerOsError
from ner_os.spans import SpanError, validate_spans

STDIN = "-"
MAX_LINE_BYTES = 8 * 1024 * 1024  # a longer line is rejected without being held in memory
DEFAULT_NESTED_LIMIT = 10_000  # OpenSearch's index.mapping.nested_objects.limit default
MAX_ID_BYTES = 512  # OpenSearch refuses longer _ids
MAX_JSON_DEPTH = 100  # deeper nesting is refused (OpenSearch's index.mapping.depth.limit is 20 anyway)
EXCERPT_CHARS = 200
RESERVED_FIELDS = ("text", "id", "mentions")
GZIP_MAGIC = b"\x1f\x8b"
_READ_CHUNK = 1 << 16
_GZIP_CHUNK = 1 << 10  # compressed bytes inflated at a time: a corrupt gzip loses at most this much before it
# a \uD800-\uDFFF escape in the raw line is the only way a decoded string can hold a lone surrogate
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


@dataclass(frozen=True)
class Line:
    """One raw line of the input."""

    number: int  # 1-based
    raw: bytes  # without the line break; only a prefix when ``oversize``
    end_offset: int  # bytes of the (decompressed) input up to and including this line's break
    oversize: bool = False
    problem: str | None = None  # why the line is refused before it is parsed (a record that is no JSON object)


@dataclass(frozen=True)
class Document:
    """A valid line: what gets encoded and indexed."""

    line: int
    id: str
    text: str
    mentions: tuple[tuple[int, int], ...] | None  # given offsets, sorted; None: detect spans
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Rejected:
    """A line that is not loaded, and why."""

    line: int
    reason: str
    excerpt: str = ""
    id: str | None = None

    def to_json(self, unit: str = "line") -> dict[str, Any]:
        """The reject file's entry; ``unit``: the key of the position (``line``, or ``record`` for
        :func:`ner_os.loader.load_records`)."""
        out: dict[str, Any] = {unit: self.line, "reason": self.reason}
        if self.id is not None:
            out["id"] = self.id
        out["excerpt"] = self.excerpt
        return out


@contextlib.contextmanager
def open_input(source: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary stream over the input's (decompressed) bytes: a path or ``-`` for stdin. A gzip stream
    that breaks off ends at the break instead of raising: :func:`input_break` then says where."""
    if str(source) == STDIN:
        raw = sys.stdin.buffer
        yield _maybe_gunzip(raw)
        return
    check_input(source)
    with Path(source).open("rb") as handle:
        yield _maybe_gunzip(handle)


def check_input(source: str | os.PathLike) -> None:
    """Refuse, with a one-line ``ConfigError``, an input path that cannot be read: missing, a
    directory, or without read permission (a pipe or a device is fine; ``-`` is stdin)."""
    if str(source) == STDIN:
        return
    path = Path(source)
    try:
        if path.is_dir():
            inside = sorted(path.glob("*.jsonl*"))[:1]
            hint = f" (a file inside it, e.g. {inside[0]}?)" if inside else ""
            raise ConfigError(f"{path}: is a directory, not a JSONL file{hint}")
        if not path.exists():
            raise ConfigError(f"{path}: no such file")
    except OSError as error:  # a path component without search permission
        raise ConfigError(f"{path}: cannot be read ({error.strerror or error})") from None
    if not os.access(path, os.R_OK):
        raise ConfigError(f"{path}: cannot be read (permission denied)")


def _maybe_gunzip(stream: BinaryIO) -> BinaryIO:
    if not hasattr(stream, "peek"):
        stream = io.BufferedReader(stream)
    if stream.peek(2)[:2] == GZIP_MAGIC:
        return io.BufferedReader(Gunzip(stream), buffer_size=_READ_CHUNK)
    return stream


class Gunzip(io.RawIOBase):
    """The decompressed bytes of a gzip stream (members one after another, zero padding allowed). Where
    the stream breaks off (truncated) or stops being gzip (corrupt), it ends instead of raising, so that
    the lines before the break are read; ``broken`` then says why and at which compressed byte."""

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.consumed = 0  # compressed bytes read from ``raw``
        self.inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self.pending = b""
        self.broken: str | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self.pending and self.broken is None and self._inflate():
            pass
        size = min(len(buffer), len(self.pending))
        buffer[:size] = self.pending[:size]
        self.pending = self.pending[size:]
        return size

    def _inflate(self) -> bool:
        """Decompress the next piece into ``pending``; False at the end of the input (clean or broken)."""
        if self.inflater.eof:  # a member ended: another one, zero padding, or the end
            data = self.inflater.unused_data.lstrip(b"\0") or self._next_compressed().lstrip(b"\0")
            if not data:
                return False
            self.inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        else:
            data = self.inflater.unconsumed_tail or self._next_compressed()
            if not data:
                self.broken = (f"truncated gzip: the compressed data ends at byte {self.consumed:,}, before the "
                               "end of its stream")
                return False
        try:
            self.pending = self.inflater.decompress(data, _READ_CHUNK)
        except zlib.error as error:
            self.broken = f"corrupt gzip data before byte {self.consumed:,} ({error})"
            return False
        return True

    def _next_compressed(self) -> bytes:
        chunk = self.raw.read(_GZIP_CHUNK)
        self.consumed += len(chunk)
        return chunk


def input_break(stream) -> str | None:
    """Why a stream from :func:`open_input` ended early (a truncated or corrupt gzip), or None."""
    return getattr(getattr(stream, "raw", None), "broken", None)


def input_size(source: str | os.PathLike) -> int | None:
    """Bytes of a regular uncompressed file; None for stdin, a pipe or gzip (whose size is unknown
    until it is read)."""
    if str(source) == STDIN:
        return None
    path = Path(source)
    try:
        if not path.is_file():
            return None
        with path.open("rb") as handle:
            if handle.read(2) == GZIP_MAGIC:
                return None
        return path.stat().st_size
    except OSError:
        return None


def read_lines(stream: BinaryIO, max_line_bytes: int = MAX_LINE_BYTES, after_line: int = 0,
               after_offset: int = 0) -> Iterator[Line]:
    """Every line of the stream, numbered from 1 (from ``after_line + 1`` when the stream was already
    read up to that line and byte offset); a line over ``max_line_bytes`` is skipped to its end."""
    number = after_line
    offset = after_offset
    while True:
        chunk = stream.readline(max_line_bytes + 1)
        if not chunk:
            return
        number += 1
        offset += len(chunk)
        if len(chunk) > max_line_bytes and not chunk.endswith(b"\n"):
            prefix = chunk[: EXCERPT_CHARS * 4]
            offset += _skip_to_line_end(stream)
            if getattr(stream, "broken", None):  # the input breaks off inside this line: not settled
                return
            yield Line(number, prefix, offset, oversize=True)
            continue
        yield Line(number, chunk.rstrip(b"\r\n") if chunk.endswith(b"\n") else chunk.rstrip(b"\r"), offset)


def _skip_to_line_end(stream: BinaryIO) -> int:
    skipped = 0
    while True:
        chunk = stream.readline(_READ_CHUNK)
        skipped += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            return skipped


def is_blank(line: Line) -> bool:
    return not line.oversize and line.problem is None and not line.raw.strip()


def parse_line(line: Line, max_line_bytes: int = MAX_LINE_BYTES,
               max_mentions: int = DEFAULT_NESTED_LIMIT) -> Document | Rejected:
    """Check one line and turn it into a document, or say why it is rejected."""
    if line.problem is not None:
        return _reject(line, line.problem)
    if line.oversize:
        return _reject(line, f"line longer than the {max_line_bytes}-byte limit")
    raw = line.raw[3:] if line.number == 1 and line.raw.startswith(b"\xef\xbb\xbf") else line.raw
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return _reject(line, f"invalid UTF-8 at byte {error.start}")
    try:
        record = json.loads(decoded, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:  # the C decoder recurses once per nesting level
        return _reject(line, f"invalid JSON: nested deeper than {MAX_JSON_DEPTH} levels")
    except (json.JSONDecodeError, ValueError) as error:
        where = f" at column {error.colno}" if isinstance(error, json.JSONDecodeError) else ""
        message = error.msg if isinstance(error, json.JSONDecodeError) else str(error)
        return _reject(line, f"invalid JSON{where}: {message}")
    if not isinstance(record, dict):
        return _reject(line, f"expected a JSON object, got {_json_kind(record)}")
    if _nested_deeper_than(record, MAX_JSON_DEPTH):
        return _reject(line, f"invalid JSON: nested deeper than {MAX_JSON_DEPTH} levels")
    if _SURROGATE_ESCAPE.search(raw) and not _encodes_as_utf8(record):
        return _reject(line, "a \\u escape makes an unpaired UTF-16 surrogate (invalid UTF-8)")
    problem = _text_problem(record)
    if problem:
        return _reject(line, problem)
    text = record["text"]
    doc_id, problem = _document_id(record)
    if problem:
        return _reject(line, problem)
    mentions, problem = _given_mentions(record, text, max_mentions)
    if problem:
        return _reject(line, problem, doc_id)
    metadata = {key: value for key, value in record.items() if key not in RESERVED_FIELDS}
    return Document(line.number, doc_id, text, mentions, metadata)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):  # 1e999: json reads it as infinity, which is not JSON
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _nested_deeper_than(record: Any, limit: int) -> bool:
    """True when arrays and objects nest more than ``limit`` levels (checked without recursion)."""
    level = [record]
    for _ in range(limit):
        level = [child for node in level if isinstance(node, (dict, list))
                 for child in (node.values() if isinstance(node, dict) else node)]
        if not any(isinstance(node, (dict, list)) for node in level):
            return False
    return True


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array",
            dict: "an object"}[type(value)]


def _encodes_as_utf8(record: Any) -> bool:
    try:
        json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _text_problem(record: dict) -> str | None:
    if "text" not in record:
        return "missing field `text`"
    text = record["text"]
    if not isinstance(text, str):
        return f"`text` must be a string, got {_json_kind(text)}"
    if not text.strip():
        return "`text` is empty"
    return None


def _document_id(record: dict) -> tuple[str, str | None]:
    if "id" not in record or record["id"] is None:
        return content_id(record), None
    value = record["id"]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return "", f"`id` must be a string or an integer, got {_json_kind(value)}"
    doc_id = str(value)
    if not doc_id.strip():
        return "", "`id` is empty"
    if len(doc_id.encode("utf-8")) > MAX_ID_BYTES:
        return "", f"`id` is longer than {MAX_ID_BYTES} bytes"
    return doc_id, None


def content_id(record: dict) -> str:
    """The id of a document without one: a hash of everything it holds (the same line, the same id)."""
    content = {key: value for key, value in record.items() if key != "id"}
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


Offsets = tuple[tuple[int, int], ...]


def _given_mentions(record: dict, text: str, max_mentions: int) -> tuple[Offsets | None, str | None]:
    if "mentions" not in record or record["mentions"] is None:
        return None, None
    given = record["mentions"]
    if not isinstance(given, list):
        return None, f"`mentions` must be an array, got {_json_kind(given)}"
    if len(given) > max_mentions:
        return None, f"{len(given)} mentions, over the index's nested-object limit of {max_mentions}"
    try:
        spans = validate_spans(text, given)
    except SpanError as error:
        return None, f"`mentions`: {error}"
    return tuple((span.start, span.end) for span in spans), None


def _reject(line: Line, reason: str, doc_id: str | None = None) -> Rejected:
    return Rejected(line.number, reason, excerpt(line.raw), doc_id)


def excerpt(raw: bytes, limit: int = EXCERPT_CHARS) -> str:
    text = raw[: limit * 4].decode("utf-8", errors="replace")
    return text if len(text) <= limit else text[:limit] + "…"


def default_rejects_path(source: str | os.PathLike, shard: tuple[int, int] = (0, 1)) -> Path:
    """``corpus.jsonl`` -> ``corpus.rejects.jsonl`` beside it (``stdin.rejects.jsonl`` in the working
    directory for ``-``); one file per shard when sharded."""
    if str(source) == STDIN:
        base = Path("stdin")
    else:
        base = Path(source)
        for suffix in (".gz", ".jsonl", ".ndjson", ".json"):
            if base.name.endswith(suffix) and base.name != suffix:
                base = base.with_name(base.name[: -len(suffix)])
    index, count = shard
    tag = f".shard-{index}-of-{count}" if count > 1 else ""
    return base.with_name(f"{base.name}.rejects{tag}.jsonl")


def parse_shard(value: str) -> tuple[int, int]:
    """``"i/N"`` -> ``(i, N)`` with ``0 <= i < N``."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", value or "")
    if not match:
        raise NerOsError(f"--shard {value!r}: expected i/N, e.g. 0/4")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or index >= count:
        raise NerOsError(f"--shard {value}: need 0 <= i < N")
    return index, count


def in_shard(line_number: int, shard: tuple[int, int]) -> bool:
    """Lines are dealt round-robin: line n belongs to shard (n - 1) mod N."""
    index, count = shard
    return (line_number - 1) % count == index

