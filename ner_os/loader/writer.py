"""The last stage of a load: tag the mentions with the registered types, write, settle what was acknowledged."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ner_os.errors import NerOsError
from ner_os.fields import vector_fields
from ner_os.loader.batches import Batch
from ner_os.loader.checkpoint import Checkpoint
from ner_os.loader.ledger import LineLedger, RejectLog
from ner_os.loader.records import Document
from ner_os.loader.stages import Progress, StageClock
from ner_os.loader.steps import reject_document
from ner_os.loader.target import ClusterTarget
from ner_os.registered_types import Tagger


def document_source(document: Document, spans, vectors: np.ndarray, types: Sequence[Sequence[str]] | None) -> dict:
    """The indexed document (see ``index_templates/``): id, text, the line's other fields under
    ``metadata``, and the mentions as nested objects."""
    mentions = []
    for position, ((start, end), vector) in enumerate(zip(spans, vectors)):
        mention = {"start": start, "end": end, "surface": document.text[start:end], **vector_fields(vector)}
        if types is not None:
            mention["types"] = list(types[position])
        mentions.append(mention)
    return {"doc_id": document.id, "text": document.text, "metadata": document.metadata, "mentions": mentions}


class BulkWriter:
    """The last stage: tag, write, settle the acknowledged lines, move the checkpoint and the bar."""

    def __init__(self, target: ClusterTarget | None, index: str, ledger: LineLedger, reject_log: RejectLog,
                 checkpoint: Checkpoint | None, tagger: Tagger | None, bar: Progress, clock: StageClock):
        self.target, self.index, self.ledger, self.reject_log = target, index, ledger, reject_log
        self.checkpoint, self.tagger, self.bar, self.clock = checkpoint, tagger, bar, clock
        self.documents = 0
        self.mentions = 0

    def write(self, batch: Batch) -> None:
        with self.clock.timed("tag"):
            types = self._types(batch)
        with self.clock.timed("bulk"):
            failures = self._send(batch, types)
        for document, spans in zip(batch.documents, batch.spans):
            reason = failures.get(document.id)
            if reason is not None:
                reject_document(document, f"OpenSearch refused the document: {reason}", self.ledger, self.reject_log)
                continue
            self.ledger.settle(document.line, documents=1, mentions=len(spans))
            self.documents += 1
            self.mentions += len(spans)
        self._advance()

    def finish(self) -> None:
        self._advance()
        if self.target is not None:
            self.target.refresh()

    def _types(self, batch: Batch) -> list[list[list[str]] | None]:
        if self.tagger is None:
            return [None] * len(batch.documents)
        counts = [len(vectors) for vectors in batch.vectors]
        dim = batch.vectors[0].shape[1] if batch.vectors else 0
        stacked = np.concatenate(batch.vectors) if counts and sum(counts) else np.zeros((0, dim), np.float32)
        tags = [list(types) for types in self.tagger(stacked)] if len(stacked) else []
        if len(tags) != len(stacked):
            raise NerOsError(f"the registered-type tagger gave {len(tags)} tag lists for {len(stacked)} mentions")
        bounds = np.cumsum([0] + counts)
        return [tags[bounds[i]:bounds[i + 1]] for i in range(len(counts))]

    def _send(self, batch: Batch, types) -> dict[str, str]:
        if self.target is None:
            return {}
        actions = (
            {"_op_type": "index", "_index": self.index, "_id": document.id,
             "_source": document_source(document, spans, vectors, document_types)}
            for document, spans, vectors, document_types in zip(batch.documents, batch.spans, batch.vectors, types)
        )
        return self.target.write(actions)

    def _advance(self) -> None:
        """Move the mark; save it with the lines acknowledged beyond it (after every write: the shortest
        batches of a window are written first, so the mark alone can trail far behind)."""
        self.ledger.advance()
        mark = self.ledger.mark
        if self.checkpoint is not None:
            self.checkpoint.save(self.ledger.checkpoint_mark())
        self.bar.update(mark, self.documents, self.mentions)
