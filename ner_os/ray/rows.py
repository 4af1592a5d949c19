"""The rows that flow between the Ray stages: one table schema for documents and rejects alike.

A row is a document (``reason`` null) or a reject (``reason`` set), so that the lines refused while
reading, detecting or embedding reach the sink with their line numbers and end in one reject file.
Everything of a free shape travels as text or bytes, never as Arrow types inferred per block:
``given``, ``spans`` and ``metadata`` as JSON, ``vectors`` as the float32 bytes of a ``[n, dim]``
array, so that a document comes out of the pipeline exactly as the parser made it.
"""

from __future__ import annotations

import json
from typing import Iterable

import numpy as np
import pyarrow as pa

from ner_os.loader.batches import Batch
from ner_os.loader.records import Document, Rejected

SCHEMA = pa.schema([
    ("line", pa.int64()),  # 1-based line (or record) number; 0 when the input gives none
    ("doc_id", pa.string()),
    ("text", pa.string()),
    ("given", pa.string()),  # JSON [[start, end], ...] of the given mentions; null: detect them
    ("metadata", pa.string()),  # JSON object of the line's other fields
    ("spans", pa.string()),  # JSON [[start, end], ...] once detected
    ("pending", pa.bool_()),  # spans still to be read from the document's own encoding (in the embed step)
    ("vectors", pa.binary()),  # float32 [n_spans, dim], C order
    ("dim", pa.int32()),
    ("reason", pa.string()),  # a reject: why; null for a document
    ("excerpt", pa.string()),
    ("read_s", pa.float64()),  # this row's share of each stage's busy seconds
    ("spans_s", pa.float64()),
    ("encode_s", pa.float64()),
    ("embed_s", pa.float64()),
    ("ready_at", pa.float64()),  # when the worker that embedded it had its encoder loaded (epoch seconds)
])


def table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def document_row(document: Document) -> dict:
    given = None if document.mentions is None else json.dumps([list(span) for span in document.mentions])
    return {"line": document.line, "doc_id": document.id, "text": document.text, "given": given,
            "metadata": json.dumps(document.metadata, ensure_ascii=False)}


def reject_row(rejected: Rejected) -> dict:
    return {"line": rejected.line, "doc_id": rejected.id, "reason": rejected.reason, "excerpt": rejected.excerpt}


def to_document(row: dict) -> Document:
    given = row.get("given")
    mentions = None if given is None else tuple((int(start), int(end)) for start, end in json.loads(given))
    return Document(int(row["line"]), row["doc_id"], row["text"], mentions, json.loads(row["metadata"]))


def to_rejected(row: dict) -> Rejected:
    return Rejected(int(row["line"]), row["reason"], row.get("excerpt") or "", row.get("doc_id"))


def spans_of(row: dict) -> tuple[tuple[int, int], ...]:
    return tuple((int(start), int(end)) for start, end in json.loads(row["spans"]))


def vectors_of(row: dict) -> np.ndarray:
    dim = int(row["dim"])
    return np.frombuffer(row["vectors"], dtype=np.float32).reshape(-1, dim) if dim else np.zeros((0, 0), np.float32)


def with_spans(row: dict, spans: Iterable[tuple[int, int]]) -> dict:
    return {**row, "spans": json.dumps([list(span) for span in spans])}


def with_vectors(row: dict, vectors: np.ndarray) -> dict:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    return {**row, "vectors": vectors.tobytes(), "dim": int(vectors.shape[1]) if vectors.ndim == 2 else 0}


def split(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """The documents and the rejects among ``rows``."""
    documents = [row for row in rows if row.get("reason") is None]
    return documents, [row for row in rows if row.get("reason") is not None]


def batch_of(rows: list[dict]) -> Batch:
    """Embedded document rows as the loader's :class:`~ner_os.loader.batches.Batch`."""
    return Batch([to_document(row) for row in rows], [spans_of(row) for row in rows],
                 [vectors_of(row) for row in rows])


def share(rows: list[dict], column: str, seconds: float) -> None:
    """Spread a stage's busy seconds over the rows it handled (their sum is what the summary shows)."""
    if rows:
        each = seconds / len(rows)
        for row in rows:
            row[column] = (row.get(column) or 0.0) + each
