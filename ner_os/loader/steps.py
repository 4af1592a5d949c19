"""The middle stages of a load: spans for the documents without given mentions, then their vectors."""

from __future__ import annotations

import copy

from ner_os.errors import NerOsError
from ner_os.loader.batches import Batch
from ner_os.loader.ledger import LineLedger, RejectLog
from ner_os.loader.records import Document, Rejected
from ner_os.mentions.proxy import EncoderProxy


def detect_spans(batch: Batch, detector, nested_limit: int, ledger: LineLedger, reject_log: RejectLog) -> Batch:
    """Given mentions stay; the others come from the detector. A document with more mentions than the
    index allows per document is rejected."""
    missing = [i for i, document in enumerate(batch.documents) if document.mentions is None]
    detected = detector.detect([batch.documents[i].text for i in missing]) if missing else []
    spans: list[tuple[tuple[int, int], ...]] = [document.mentions or () for document in batch.documents]
    for i, found in zip(missing, detected):
        spans[i] = tuple((int(span.start), int(span.end)) for span in found)
    kept = Batch([])
    for document, document_spans in zip(batch.documents, spans):
        if len(document_spans) > nested_limit:
            reject_document(document, f"{len(document_spans)} mentions detected, over the index's nested-object "
                                      f"limit of {nested_limit}", ledger, reject_log)
            continue
        kept.documents.append(document)
        kept.spans.append(document_spans)
    return kept


def embed_batch(batch: Batch, embedder, ledger: LineLedger, reject_log: RejectLog) -> Batch:
    """Unit vectors for every mention. A batch the embedder refuses is retried document by document, so
    that the bad document is rejected and the others still load."""
    try:
        batch.vectors = embedder.embed([document.text for document in batch.documents], list(batch.spans))
        return batch
    except NerOsError as error:
        if len(batch.documents) == 1:
            reject_document(batch.documents[0], str(error), ledger, reject_log)
            return Batch([])
    kept = Batch([])
    for document, document_spans in zip(batch.documents, batch.spans):
        try:
            vectors = embedder.embed([document.text], [document_spans])[0]
        except NerOsError as error:
            reject_document(document, str(error), ledger, reject_log)
            continue
        kept.documents.append(document)
        kept.spans.append(document_spans)
        kept.vectors.append(vectors)
    return kept


def reject_document(document: Document, reason: str, ledger: LineLedger, reject_log: RejectLog) -> None:
    reject_log.write(Rejected(document.line, reason, document.text[:200], document.id))
    ledger.settle(document.line, rejected=1)


def with_timed_encoder(embedder, clock):
    """A copy of ``embedder`` whose encoder adds the seconds spent in ``encode`` to ``clock`` under
    ``encode`` (the encoder's share of the wall time)."""
    timed = copy.copy(embedder)
    timed.encoder = EncoderProxy(embedder.encoder, clock=clock)
    return timed
