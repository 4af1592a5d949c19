"""Where a load's lines come from: a JSONL file (or stdin), or records in memory.

Both give the pipeline the same thing, numbered :class:`~ner_os.loader.records.Line` objects with a
running SHA-256 of everything read so far (the checkpoint's fingerprint of the input), so that
:func:`ner_os.loader.load` and :func:`ner_os.loader.load_records` share one reader, one parser and
one resume rule. A record is turned into the JSON line a file would hold (``json.dumps``), so it goes
through exactly the checks a line gets; an item that is no dict, or that JSON cannot represent, is
a line refused with that reason.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import reprlib
from collections.abc import Iterator as IteratorType
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator

from ner_os.loader.ledger import Mark
from ner_os.loader.records import (
    EXCERPT_CHARS,
    STDIN,
    Line,
    check_input,
    default_rejects_path,
    input_break,
    input_size,
    open_input,
    read_lines,
)

Numbered = Iterator[tuple[Line, Any]]  # each line, with the hashlib state after it
_EXCERPT = reprlib.Repr()
_EXCERPT.maxstring = _EXCERPT.maxother = EXCERPT_CHARS


class HashingReader:
    """A binary stream that hashes every byte read through it: the checkpoint's fingerprint of the input."""

    def __init__(self, stream: BinaryIO):
        self.stream = stream
        self.sha = hashlib.sha256()
        self.offset = 0

    @property
    def broken(self) -> str | None:
        """Why the input ended early (a truncated or corrupt gzip), or None."""
        return input_break(self.stream)

    def readline(self, limit: int = -1) -> bytes:
        chunk = self.stream.readline(limit)
        if chunk and not chunk.endswith(b"\n") and self.broken:
            return b""  # the line the break cuts off: neither read nor hashed, so a resume reads it whole
        self.sha.update(chunk)
        self.offset += len(chunk)
        return chunk

    def skip_verified(self, mark: Mark) -> bool:
        """Read up to the mark's offset; True when those bytes are the ones the mark was taken on."""
        remaining = mark.offset
        while remaining > 0:
            chunk = self.stream.read(min(remaining, 1 << 20))
            if not chunk:
                return False
            self.sha.update(chunk)
            self.offset += len(chunk)
            remaining -= len(chunk)
        return self.sha.hexdigest() == mark.sha256

    def lines(self, mark: Mark, max_line_bytes: int) -> Numbered:
        for line in read_lines(self, max_line_bytes, mark.line, mark.offset):
            yield line, self.sha.copy()


class FileSource:
    """A JSONL file (gzip or plain), or ``-`` for stdin; stdin cannot be read twice, so it is not resumed."""

    unit = "line"

    def __init__(self, path: str | os.PathLike):
        self.path = path
        self.name = str(path)
        self.rereadable = self.name != STDIN

    def size(self) -> int | None:
        return input_size(self.path)

    def check(self) -> None:
        """Refuse an input that cannot be read, before anything costly (a model, an index) is made."""
        check_input(self.path)

    def default_rejects(self, shard: tuple[int, int]) -> Path:
        return default_rejects_path(self.path, shard)

    def checkpoint_key(self) -> tuple[str, str]:
        """What identifies the input in a checkpoint, and the name its file starts with."""
        return str(Path(self.path).resolve()), Path(self.path).name

    def overwritten_by(self, path: Path) -> bool:
        return self.rereadable and path.resolve() == Path(self.path).resolve()

    def open(self, opened: contextlib.ExitStack) -> HashingReader:
        return HashingReader(opened.enter_context(open_input(self.path)))


class RecordSource:
    """Records in memory: any iterable of dicts. A sequence (anything but a one-shot iterator) can be
    read again, so a load of it resumes; a generator's cannot."""

    unit = "record"

    def __init__(self, records: Iterable[Any], name: str):
        self.records = records
        self.name = name
        self.rereadable = not isinstance(records, IteratorType)

    def check(self) -> None:
        pass

    def size(self) -> int | None:
        return None  # the progress bar counts the records' bytes as JSON, whose total is unknown ahead

    def default_rejects(self, shard: tuple[int, int]) -> Path:
        return default_rejects_path(self.name, shard)

    def checkpoint_key(self) -> tuple[str, str]:
        return f"records:{self.name}", Path(self.name).name

    def overwritten_by(self, path: Path) -> bool:
        return False

    def open(self, opened: contextlib.ExitStack) -> "RecordReader":
        return RecordReader(iter(self.records))


class RecordReader:
    """Records as numbered lines: the JSON line each would be in a file, hashed as a file's bytes are."""

    def __init__(self, items: Iterator[Any]):
        self.items = items
        self.sha = hashlib.sha256()
        self.offset = 0
        self.number = 0
        self.max_bytes: int | None = None

    def skip_verified(self, mark: Mark) -> bool:
        """Read the first ``mark.line`` records; True when they are the ones the mark was taken on."""
        while self.number < mark.line:
            if self._next() is None:
                return False
        return self.offset == mark.offset and self.sha.hexdigest() == mark.sha256

    def lines(self, mark: Mark, max_line_bytes: int) -> Numbered:
        self.max_bytes = max_line_bytes
        while True:
            line = self._next()
            if line is None:
                return
            yield line, self.sha.copy()

    def _next(self) -> Line | None:
        item = next(self.items, _END)
        if item is _END:
            return None
        raw, problem = record_line(item)
        self.number += 1
        self.sha.update(raw + b"\n")
        self.offset += len(raw) + 1
        if problem is None and self.max_bytes is not None and len(raw) > self.max_bytes:
            problem = f"record longer than the {self.max_bytes}-byte limit (as JSON)"
        if problem is not None:
            raw = raw[: EXCERPT_CHARS * 4]
        return Line(self.number, raw, self.offset, problem=problem)


_END = object()


def record_line(item: Any) -> tuple[bytes, str | None]:
    """The JSON line of a record (UTF-8, as ``json.dumps`` writes it), or a readable form of the item
    and why it cannot be one."""
    if not isinstance(item, dict):
        return _shown(item), f"expected a dict (a JSON object), got {type(item).__name__}"
    try:
        text = json.dumps(item, ensure_ascii=False, allow_nan=False)
    except RecursionError:
        return _shown(item), "nested too deeply to be written as JSON"
    except (TypeError, ValueError) as error:  # an object JSON has no form for, NaN, a circular reference
        return _shown(item), f"not representable as JSON: {error}"
    try:
        return text.encode("utf-8"), None
    except UnicodeEncodeError:  # a lone surrogate: escaped, the parser refuses it as it refuses the line
        return json.dumps(item, allow_nan=False).encode("ascii"), None


def _shown(item: Any) -> bytes:
    try:
        shown = _EXCERPT.repr(item)
    except Exception:  # a broken __repr__ must not stop the load
        shown = f"<{type(item).__name__}>"
    return shown.encode("utf-8", errors="replace")
