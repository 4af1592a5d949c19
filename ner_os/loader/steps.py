"""The middle stages of a load: spans for the documents without given mentions, then their vectors.

A detector that reads text (spaCy) runs in the spans stage, before the encoder. One that reads the
encoder's vectors (``encoder``, ``union``: :func:`ner_os.spans.union.reads_encoding`) runs its text
part there, if it has one (``detect_text``), and marks the documents ``pending``; the embed stage
then encodes the batch once, detects their spans from those vectors and embeds the mentions from
the same vectors (:func:`encode_and_detect`): no second model pass.
"""

from __future__ import annotations

import copy
import time

from ner_os.errors import ConfigError, NerOsError
from ner_os.loader.batches import Batch
from ner_os.loader.ledger import LineLedger, RejectLog
from ner_os.loader.records import DEFAULT_NESTED_LIMIT, Document, Rejected
from ner_os.mentions.proxy import EncoderProxy
from ner_os.spans.union import reads_encoding

DETECT_CLOCK = "detect"  # seconds of detection from the vectors, spent in the embed stage (counted as spans)


def detect_spans(batch: Batch, detector, nested_limit: int, ledger: LineLedger, reject_log: RejectLog) -> Batch:
    """Given mentions stay; the others come from the detector. A document with more mentions than the
    index allows per document is rejected. With an encoder-reading detector the documents without
    mentions are left ``pending`` (see the module doc)."""
    missing = [i for i, document in enumerate(batch.documents) if document.mentions is None]
    texts = [batch.documents[i].text for i in missing]
    waits = reads_encoding(detector)
    text_part = getattr(detector, "detect_text", None) if waits else detector.detect
    detected = text_part(texts) if missing and callable(text_part) else [() for _ in missing]
    spans: list[tuple[tuple[int, int], ...]] = [document.mentions or () for document in batch.documents]
    for i, found in zip(missing, detected):
        spans[i] = tuple((int(span.start), int(span.end)) for span in found)
    pending = set(missing) if waits else set()
    kept = Batch([])
    for position, (document, document_spans) in enumerate(zip(batch.documents, spans)):
        if position not in pending and len(document_spans) > nested_limit:
            reject_document(document, f"{len(document_spans)} mentions detected, over the index's nested-object "
                                      f"limit of {nested_limit}", ledger, reject_log)
            continue
        if position in pending:
            kept.pending.append(len(kept.documents))
        kept.documents.append(document)
        kept.spans.append(document_spans)
    return kept


def encode_and_detect(batch: Batch, embedder, detector, nested_limit: int, ledger: LineLedger,
                      reject_log: RejectLog, clock=None) -> tuple[Batch, list]:
    """Encode the batch once; the ``pending`` documents get their spans from those vectors (united
    with what the detector's text part found). Returns the documents kept and their encodings; a
    document the encoder refuses, or with more mentions than ``nested_limit``, is rejected."""
    if detector is None or not reads_encoding(detector):
        raise ConfigError("documents wait for spans read from their encoding, but no encoder-reading detector "
                          "was given to embed_batch")
    batch, encoded = _encode(batch, embedder.encoder, ledger, reject_log)
    started = time.perf_counter()
    rows = batch.pending
    texts = [batch.documents[i].text for i in rows]
    options = {"text_spans": [batch.spans[i] for i in rows]} if callable(getattr(detector, "detect_text", None)) else {}
    found = detector.detect_encoded(texts, [encoded[i] for i in rows], **options) if rows else []
    for i, spans in zip(rows, found):
        batch.spans[i] = tuple((int(span.start), int(span.end)) for span in spans)
    if clock is not None:
        clock.add(DETECT_CLOCK, time.perf_counter() - started)
    kept, kept_encoded = Batch([]), []
    for document, spans, item in zip(batch.documents, batch.spans, encoded):
        if len(spans) > nested_limit:
            reject_document(document, f"{len(spans)} mentions detected, over the index's nested-object limit of "
                                      f"{nested_limit}", ledger, reject_log)
            continue
        kept.documents.append(document)
        kept.spans.append(spans)
        kept_encoded.append(item)
    return kept, kept_encoded


def _encode(batch: Batch, encoder, ledger: LineLedger, reject_log: RejectLog) -> tuple[Batch, list]:
    """Every document of the batch encoded, in one call; when the encoder refuses it, one by one, so
    that the bad document is rejected and the others kept."""
    try:
        return batch, list(encoder.encode([document.text for document in batch.documents]))
    except NerOsError:
        pass
    pending = set(batch.pending)
    kept, encoded = Batch([]), []
    for position, (document, spans) in enumerate(zip(batch.documents, batch.spans)):
        try:
            item = encoder.encode([document.text])[0]
        except NerOsError as error:
            reject_document(document, str(error), ledger, reject_log)
            continue
        if position in pending:
            kept.pending.append(len(kept.documents))
        kept.documents.append(document)
        kept.spans.append(spans)
        encoded.append(item)
    return kept, encoded


def embed_batch(batch: Batch, embedder, ledger: LineLedger, reject_log: RejectLog, detector=None,
                nested_limit: int = DEFAULT_NESTED_LIMIT, clock=None) -> Batch:
    """Unit vectors for every mention. A batch the embedder refuses is retried document by document, so
    that the bad document is rejected and the others still load. A batch with ``pending`` documents
    is encoded once and its spans detected from those vectors first (:func:`encode_and_detect`, with
    ``detector``; ``clock`` gets the detection seconds under :data:`DETECT_CLOCK`)."""
    encoded = None
    if batch.pending:
        batch, encoded = encode_and_detect(batch, embedder, detector, nested_limit, ledger, reject_log, clock)

    def embed(rows: list[int]) -> list:
        texts, spans = [batch.documents[i].text for i in rows], [batch.spans[i] for i in rows]
        if encoded is None:
            return embedder.embed(texts, spans)
        return embedder.embed_encoded(texts, [encoded[i] for i in rows], spans)

    try:
        batch.vectors = embed(list(range(len(batch.documents))))
        return batch
    except NerOsError as error:
        if len(batch.documents) == 1:
            reject_document(batch.documents[0], str(error), ledger, reject_log)
            return Batch([])
    kept = Batch([])
    for i, (document, document_spans) in enumerate(zip(batch.documents, batch.spans)):
        try:
            vectors = embed([i])[0]
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
