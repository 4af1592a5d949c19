"""The first stage: lines (of a JSONL file) or records (of a Ray Dataset) -> document and reject rows.

Both go through the loader's own parser (:func:`ner_os.loader.records.parse_line`), so a line is
accepted, refused and given an id exactly as the single-process loader does it.

A file is read here, not by ``ray.data.read_json``: ``read_json`` has no line numbers for the reject
file, refuses a whole file for one bad line, and parses ``text`` and metadata into Arrow types that
change a document's content (and so its content-hash id). :class:`JsonlDatasource` cuts a plain file
into byte ranges at line breaks, counting the lines before each range in one pass over the bytes
(no parsing), so that each read task numbers its lines as the single-process reader does. A gzip
file cannot be entered in the middle: it is one read task.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Iterator

import pyarrow as pa
from ray.data import Datasource, ReadTask
from ray.data.block import BlockMetadata

from ner_os.errors import NerOsError
from ner_os.loader.records import (
    GZIP_MAGIC,
    STDIN,
    Line,
    Rejected,
    input_break,
    is_blank,
    open_input,
    parse_line,
    read_lines,
)
from ner_os.loader.sources import record_line
from ner_os.ray import rows as R

MIN_RANGE_BYTES = 4 << 20  # a read task covers at least this much of a plain file
_SCAN_CHUNK = 1 << 20


class JsonlDatasource(Datasource):
    """A JSONL file (plain or gzip) as rows of parsed documents and rejects, ``rows_per_block`` a block."""

    def __init__(self, path: str | os.PathLike, *, max_line_bytes: int, nested_limit: int, rows_per_block: int):
        if str(path) == STDIN:
            raise NerOsError("the Ray engine reads a file, not stdin: give the file's path, or use --engine local")
        self.path = Path(path)
        self.max_line_bytes, self.nested_limit, self.rows_per_block = max_line_bytes, nested_limit, rows_per_block

    @property
    def supports_distributed_reads(self) -> bool:
        return False  # the file is the driver's: its read tasks run on the driver's machine

    def estimate_inmemory_data_size(self) -> int | None:
        return self.path.stat().st_size

    def get_read_tasks(self, parallelism: int, per_task_row_limit=None, data_context=None) -> list[ReadTask]:
        with self.path.open("rb") as handle:
            gzipped = handle.read(2) == GZIP_MAGIC
        size = self.path.stat().st_size
        pieces = 1 if gzipped else max(1, min(parallelism if parallelism > 0 else 1, size // MIN_RANGE_BYTES))
        ranges = [(0, None, 0)] if gzipped else line_ranges(self.path, pieces)
        tasks = []
        for start, end, lines_before in ranges:
            metadata = BlockMetadata(num_rows=None, size_bytes=(end or size) - start, input_files=[str(self.path)],
                                     exec_stats=None)
            tasks.append(ReadTask(_reader(self, start, end, lines_before), metadata, schema=R.SCHEMA))
        return tasks


def _reader(source: JsonlDatasource, start: int, end: int | None, lines_before: int):
    def read() -> Iterator[pa.Table]:
        with contextlib.ExitStack() as opened:
            if end is None:
                stream = opened.enter_context(open_input(source.path))
            else:
                handle = opened.enter_context(source.path.open("rb"))
                handle.seek(start)
                stream = _Bounded(handle, end - start)
            lines = read_lines(stream, source.max_line_bytes, after_line=lines_before, after_offset=start)
            yield from parsed_tables(lines, source.max_line_bytes, source.nested_limit, source.rows_per_block)
            broken = input_break(stream)
            if broken:  # a truncated or corrupt gzip: what came before it is loaded, the load fails
                raise NerOsError(f"{source.path}: {broken}; the lines before the break are loaded, the rest is "
                                 "missing (restore the file and run the load again)")

    return read


def parsed_tables(lines, max_line_bytes: int, nested_limit: int, rows_per_block: int) -> Iterator[pa.Table]:
    """Lines -> tables of document and reject rows (blank lines need nothing and give no row)."""
    block: list[dict] = []
    started = time.perf_counter()
    for line in lines:
        if is_blank(line):
            continue
        parsed = parse_line(line, max_line_bytes, nested_limit)
        block.append(R.reject_row(parsed) if isinstance(parsed, Rejected) else R.document_row(parsed))
        if len(block) >= rows_per_block:
            R.share(block, "read_s", time.perf_counter() - started)
            yield R.table(block)
            block, started = [], time.perf_counter()
    if block:
        R.share(block, "read_s", time.perf_counter() - started)
        yield R.table(block)


def line_ranges(path: Path, pieces: int) -> list[tuple[int, int, int]]:
    """``pieces`` byte ranges ``(start, end, lines before start)`` of about equal size, each starting at a
    line's first byte (one pass counting line breaks)."""
    size = path.stat().st_size
    targets = [size * k // pieces for k in range(1, pieces)]
    cuts = [(0, 0)]  # (offset, lines before it)
    offset = lines = 0
    with path.open("rb") as handle:
        while targets:
            chunk = handle.read(_SCAN_CHUNK)
            if not chunk:
                break
            position = 0
            while targets and offset + len(chunk) > targets[0]:
                newline = chunk.find(b"\n", max(position, targets[0] - offset))
                if newline < 0:
                    break
                cut = offset + newline + 1
                cuts.append((cut, lines + chunk.count(b"\n", 0, newline + 1)))
                position = newline + 1
                targets = [target for target in targets if target >= cut]
            lines += chunk.count(b"\n")
            offset += len(chunk)
    cuts = [cut for i, cut in enumerate(cuts) if i == 0 or cut[0] > cuts[i - 1][0]]
    ends = [cut[0] for cut in cuts[1:]] + [size]
    return [(start, end, before) for (start, before), end in zip(cuts, ends) if end > start] or [(0, size, 0)]


class _Bounded:
    """``readline`` over a file, stopping after ``limit`` bytes (a read task's range)."""

    def __init__(self, handle, limit: int):
        self.handle, self.left = handle, limit

    def readline(self, size: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        size = self.left if size is None or size < 0 else min(size, self.left)
        chunk = self.handle.readline(size)
        self.left -= len(chunk)
        return chunk


def parse_records(batch: pa.Table, *, position: str | None, max_record_bytes: int, nested_limit: int) -> pa.Table:
    """A Ray Dataset's rows as records, through the loader's checks: each becomes the JSON line a file
    would hold (:func:`ner_os.loader.sources.record_line`) and is parsed as one. A null value is an
    absent field (a column another row has). ``position``: the column numbering the records (dropped
    from the record; 0 without one)."""
    parsed = []
    started = time.perf_counter()
    for row in batch.to_pylist():
        number = int(row.pop(position) or 0) if position is not None else 0
        record = {key: value for key, value in row.items() if value is not None}
        raw, problem = record_line(record)
        if problem is None and len(raw) > max_record_bytes:
            problem = f"record longer than the {max_record_bytes}-byte limit (as JSON)"
        outcome = parse_line(Line(number, raw if problem is None else raw[:800], 0, problem=problem), max_record_bytes,
                             nested_limit)
        parsed.append(R.reject_row(outcome) if isinstance(outcome, Rejected) else R.document_row(outcome))
    R.share(parsed, "read_s", time.perf_counter() - started)
    return R.table(parsed)

