"""The middle stages on Ray workers: span detection (``map_batches`` over tasks) and embedding (an actor
pool, each actor loading the encoder once), over the loader's own steps.

The rows' documents go through :func:`ner_os.loader.steps.detect_spans` and
:func:`ner_os.loader.steps.embed_batch`, in length-sorted batches under the token budget
(:func:`ner_os.loader.batches.plan_batches`), so that a document gets the spans, the vectors and the
rejects the single-process loader gives it. What those steps would settle in the loader's ledger
becomes rows: a rejected document leaves as a reject row.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import pyarrow as pa

from ner_os.loader.batches import Batch, plan_batches, token_counter
from ner_os.loader.ledger import LineLedger, Mark
from ner_os.loader.records import Line, Rejected
from ner_os.loader.stages import StageClock
from ner_os.loader.steps import detect_spans, embed_batch, with_timed_encoder
from ner_os.ray import rows as R

_BUILT: dict[str, Any] = {}  # per worker process: what a Shared built, by its key


@dataclass(frozen=True)
class Shared:
    """A zero-argument builder (of an embedder, a detector) whose result a worker process builds once."""

    build: Callable[[], Any]
    key: str = field(default_factory=lambda: uuid.uuid4().hex)

    def get(self) -> Any:
        if self.key not in _BUILT:
            _BUILT[self.key] = self.build()
        return _BUILT[self.key]


class Rejects:
    """The reject log of a step on a worker: the rejects are kept, to leave as rows."""

    def __init__(self):
        self.rejects: list[Rejected] = []
        self.count = 0

    def write(self, rejected: Rejected) -> None:
        self.rejects.append(rejected)
        self.count += 1

    def close(self) -> None:
        pass


def ledger_for(documents) -> LineLedger:
    """A ledger with the documents' lines open, for the loader's steps to settle (the rows carry the
    outcome on; the driver keeps no ledger)."""
    ledger = LineLedger(Mark.origin())
    for document in documents:
        ledger.open(Line(document.line, b"", 0), hashlib.sha256())
    return ledger


def spans_step(batch: pa.Table, *, detector: Shared, nested_limit: int) -> pa.Table:
    """Spans for the documents without given mentions (the loader's ``detect_spans``)."""
    rows = batch.to_pylist()
    documents, rejects = R.split(rows)
    rejects_log = Rejects()
    started = time.perf_counter()
    loaded = [R.to_document(row) for row in documents]
    kept = detect_spans(Batch(loaded), detector.get(), nested_limit, ledger_for(loaded), rejects_log)
    row_of = {id(document): row for document, row in zip(loaded, documents)}  # line numbers may repeat (0)
    out = [{**R.with_spans(row_of[id(document)], spans), "pending": position in kept.pending}
           for position, (document, spans) in enumerate(zip(kept.documents, kept.spans))]
    R.share(out, "spans_s", time.perf_counter() - started)
    return R.table(out + rejects + [R.reject_row(rejected) for rejected in rejects_log.rejects])


class EmbedStep:
    """One encoder per actor: rows with spans -> rows with their mention vectors. Documents ``pending``
    get their spans here, from their own encoding (an encoder-reading detector: the loader's
    ``embed_batch`` with the detector). ``warm``: load the detector before the first batch."""

    def __init__(self, embedder: Shared, batch_tokens: int, detector: Shared, nested_limit: int, warm: bool):
        if warm:  # the span step runs in this actor (fused): its detector loads before work starts
            detector.get()
        self.detector, self.nested_limit = detector, nested_limit
        self.embedder = embedder.get()
        self.ready_at = time.time()
        self.clock = StageClock()
        self.timed = with_timed_encoder(self.embedder, self.clock)
        self.count_tokens = token_counter(self.embedder)
        self.batch_tokens = batch_tokens

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        documents, rejects = R.split(rows)
        rejects_log = Rejects()
        out = []
        loaded = [R.to_document(row) for row in documents]
        ledger = ledger_for(loaded)
        row_of = {id(document): row for document, row in zip(loaded, documents)}  # line numbers may repeat (0)
        tokens = self.count_tokens([document.text for document in loaded]) if loaded else []
        for group in plan_batches(loaded, tokens, self.batch_tokens):
            before = self.clock.snapshot().get("encode", 0.0)
            started = time.perf_counter()
            group_rows = [row_of[id(document)] for document in group]
            pending = [position for position, row in enumerate(group_rows) if row.get("pending")]
            batch = Batch(group, [R.spans_of(row) for row in group_rows], pending=pending)
            done = embed_batch(batch, self.timed, ledger, rejects_log, self.detector.get() if pending else None,
                               self.nested_limit)
            embedded = [{**R.with_vectors(R.with_spans(row_of[id(document)], spans), vectors), "pending": False}
                        for document, spans, vectors in zip(done.documents, done.spans, done.vectors)]
            R.share(embedded, "embed_s", time.perf_counter() - started)
            R.share(embedded, "encode_s", self.clock.snapshot().get("encode", 0.0) - before)
            out.extend(embedded)
        for row in out:
            row["ready_at"] = self.ready_at
        return R.table(out + rejects + [R.reject_row(rejected) for rejected in rejects_log.rejects])
