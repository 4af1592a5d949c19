"""The last stage: a Ray ``Datasink`` that writes through the loader's own writer.

Each write task hands its blocks to :class:`ner_os.loader.writer.BulkWriter` (registered-type tags,
:func:`~ner_os.loader.writer.document_source`, and :func:`ner_os.store.bulk.write_documents`:
deterministic ``_id``\\ s, bounded requests, 429 / 5xx retried, refusals per document), so both engines
write identical documents. A task that Ray runs again rewrites the same documents under the same
ids: a retry never duplicates. Rejects and, per document written, its id's hash, line and mention
count go back to the driver, which writes the reject file and counts each id once (its last line).

The writes run in input order (the pipeline preserves order, and one write task runs at a time by
default), so that when an id comes back later in the input the later line is the one that stays, as
with the single-process loader.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable

import numpy as np
from ray.data import Datasink
from ray.data.block import BlockAccessor

from ner_os.config import Settings
from ner_os.loader.stages import StageClock
from ner_os.loader.target import ClusterTarget
from ner_os.loader.writer import BulkWriter
from ner_os.ray import rows as R
from ner_os.ray.steps import Rejects, ledger_for
from ner_os.registered_types import Tagger

_TARGETS: dict[tuple, ClusterTarget] = {}  # per worker process: one connection per cluster and index


def id_hash(doc_id: str) -> int:
    """64 bits of the id, for the driver to count documents without holding every id."""
    return int.from_bytes(hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest(), "little", signed=True)


class _NoBar:
    def update(self, mark, documents: int, mentions: int) -> None:
        pass


class IndexSink(Datasink):
    """Writes the rows' documents into ``settings.index`` (nothing with ``settings=None``: a dry run)."""

    def __init__(self, settings: Settings | None, tagger: Tagger | None = None, rows_per_write: int = 128):
        self.settings, self.tagger, self.rows_per_write = settings, tagger, rows_per_write
        self.results: list[dict] = []

    @property
    def min_rows_per_write(self) -> int:
        return self.rows_per_write

    def write(self, blocks: Iterable, ctx) -> dict[str, Any]:
        clock, rejects = StageClock(), Rejects()
        index = self.settings.index if self.settings else ""
        seconds = dict.fromkeys(("read", "spans", "encode", "embed"), 0.0)
        ready, written = [], []
        for block in blocks:
            rows = BlockAccessor.for_block(block).to_arrow().to_pylist()
            for row in rows:
                for name in seconds:
                    seconds[name] += row.get(f"{name}_s") or 0.0
            documents, refused = R.split(rows)
            for row in refused:
                rejects.write(R.to_rejected(row))
            latest = {row["doc_id"]: row for row in sorted(documents, key=lambda row: row["line"])}
            ready += [row["ready_at"] for row in documents if row.get("ready_at")]
            if latest:
                batch = R.batch_of(list(latest.values()))
                writer = BulkWriter(self._target(), index, ledger_for(batch.documents), rejects, None, self.tagger,
                                    _NoBar(), clock)
                writer.write(batch)
                refused = {rejected.id for rejected in rejects.rejects}
                written += [(id_hash(document.id), document.line, len(spans))
                            for document, spans in zip(batch.documents, batch.spans) if document.id not in refused]
        return {"written": np.asarray(written, dtype=np.int64).reshape(-1, 3),
                "rejects": [(rejected.line, rejected.reason, rejected.excerpt, rejected.id)
                            for rejected in rejects.rejects],
                "seconds": {**seconds, **clock.snapshot()}, "first_ready": min(ready, default=None)}

    def on_write_complete(self, write_result) -> None:
        self.results = list(write_result.write_returns)

    def _target(self) -> ClusterTarget | None:
        if self.settings is None:
            return None
        key = (self.settings.opensearch_url, self.settings.index, self.settings.username)
        if key not in _TARGETS:
            target = ClusterTarget.connect(self.settings)
            _TARGETS[key] = target
        return _TARGETS[key]
