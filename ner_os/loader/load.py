"""The batch loader: a JSONL corpus -> spans -> value vectors -> head -> OpenSearch, overlapped and resumable.

Four threads joined by small bounded queues, so that the encoder never waits for I/O or spaCy:
``read`` parses and checks lines (:mod:`ner_os.loader.records`), skips the lines of other shards, and
gathers a bounded *window* of documents that it sorts by token count and cuts into batches under
the token budget; ``spans`` detects mentions where none were given; ``embed`` runs the encoder and
the head; ``bulk`` tags mentions with registered types, writes the documents (``streaming_bulk``,
bounded by count and bytes, 429 and 5xx retried with backoff) and records what OpenSearch
acknowledged.

Each document is one parent with its mentions nested inside, under a deterministic ``_id`` (the
line's ``id`` or a hash of its content): reloading a file rewrites the same documents, and a
changed document replaces its old mentions in one write.

The checkpoint is the last line up to which every line is settled (acknowledged by OpenSearch or
written to the reject file). It lives under ``<data_dir>/checkpoints/<index>/``, named after the
input, and holds the byte offset and SHA-256 of the input up to that line, so a resumed run skips
exactly what the index already has and starts over when the input changed.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import os
import queue
import threading
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from ner_os.config import Settings
from ner_os.loader.records import (
    DEFAULT_NESTED_LIMIT,
    MAX_LINE_BYTES,
    STDIN,
    Document,
    Line,
    Rejected,
    default_rejects_path,
    in_shard,
    input_size,
    is_blank,
    open_input,
    parse_line,
    read_lines,
)
from ner_os.errors import ClusterError, ConfigError, NerOsError
from ner_os.mentions.embedder import vectors_identity

log = logging.getLogger(__name__)

WINDOW_BUDGETS = 8  # a sort window holds about this many token budgets of documents
WINDOW_MAX_DOCS = 4096
QUEUE_DEPTH = 4  # batches waiting between two stages
BULK_MAX_DOCS = 500  # a bulk request holds at most this many documents ...
BULK_MAX_BYTES = 10 * 1024 * 1024  # ... and this many bytes
BULK_ATTEMPTS = 6  # for 5xx and lost connections (streaming_bulk retries 429s itself)
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 30.0
CHECKPOINT_FORMAT = "ner-os-load-checkpoint"
CHECKPOINT_VERSION = 1
STAGES = ("read", "spans", "encode", "head", "tag", "bulk")

# Registered-type tagging, applied just before the bulk write: float32 [n_mentions, dim] unit
# vectors of a batch -> the type names of each mention, stored in ``mentions.types``.
Tagger = Callable[[np.ndarray], Sequence[Sequence[str]]]


@dataclass
class LoadSummary:
    """What a load did. ``documents``, ``mentions`` and ``rejected`` cover the whole input, lines settled
    by the earlier run this one resumed from included; ``run_*`` and the timings cover this run."""

    source: str
    index: str | None
    dry_run: bool = False
    documents: int = 0
    mentions: int = 0
    rejected: int = 0
    superseded: int = 0  # lines replaced by a later line with the same id
    resumed_after_line: int = 0
    rejects_path: str | None = None
    run_documents: int = 0
    run_mentions: int = 0
    setup_seconds: float = 0.0  # connecting, loading the model and the span detector, preparing the index
    wall_seconds: float = 0.0  # from the first line read to the last write acknowledged
    stage_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def docs_per_s(self) -> float:
        return self.run_documents / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def mentions_per_s(self) -> float:
        return self.run_mentions / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def encoder_share(self) -> float:
        return self.stage_seconds.get("encode", 0.0) / self.wall_seconds if self.wall_seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(docs_per_s=self.docs_per_s, mentions_per_s=self.mentions_per_s, encoder_share=self.encoder_share)
        return out

    def describe(self) -> str:
        where = "dry run, nothing written" if self.dry_run else f"index {self.index!r}"
        lines = [f"{self.documents:,} documents, {self.mentions:,} mentions ({where})"]
        if self.resumed_after_line:
            lines.append(f"resumed after line {self.resumed_after_line:,}")
        lines.append(f"this run: {self.run_documents:,} documents in {self.wall_seconds:.1f} s "
                     f"({self.docs_per_s:.1f} docs/s, {self.mentions_per_s:.1f} mentions/s) "
                     f"after {self.setup_seconds:.1f} s of setup")
        lines.append("busy seconds: " + ", ".join(f"{name} {self.stage_seconds.get(name, 0.0):.1f}" for name in STAGES)
                     + f"; encoder {self.encoder_share:.0%} of wall time")
        if self.superseded:
            lines.append(f"{self.superseded:,} lines replaced by a later line with the same id")
        lines.append(f"{self.rejected:,} lines rejected, listed in {self.rejects_path}" if self.rejected
                     else "no line rejected")
        return "\n".join(lines)


def load(
    source: str | os.PathLike,
    settings: Settings | None = None,
    *,
    dry_run: bool = False,
    shard: tuple[int, int] = (0, 1),
    resume: bool = True,
    rejects: str | os.PathLike | None = None,
    max_line_bytes: int = MAX_LINE_BYTES,
    progress: bool | None = None,
    embedder=None,
    detector=None,
    client=None,
    tagger: Tagger | None = None,
    replace_index: bool = False,
    **flags: Any,
) -> LoadSummary:
    """Load a JSONL corpus (a path, or ``-`` for stdin; gzip or plain) into the settings' index.

    ``settings`` (or ``Settings.resolve(**flags)``; flags also override given settings) picks the
    model, the index and the cluster; without an OpenSearch URL a local node is started. The index
    is created from the templates when missing. ``dry_run`` runs everything but the writes and
    needs no cluster. ``shard=(i, N)`` loads lines i+1, i+1+N, ... so that N workers together load
    the file once. ``resume`` continues after the checkpoint an earlier run of this input into this
    index left. ``embedder`` (a :class:`ner_os.mentions.embedder.MentionEmbedder`), ``detector`` (with
    ``detect(texts)``) and ``client`` replace what the settings would build; ``tagger`` fills each
    mention's ``types`` (see :data:`Tagger`). ``progress``: None shows a bar on a terminal only.
    ``replace_index`` deletes the index before loading: after a change of head or encoder, whose
    vectors cannot share an index with the old ones; the types registered on it are kept,
    re-embedded with the new model, and tag the documents loaded.
    """
    settings = Settings.resolve(**flags) if settings is None else settings.replace(**flags)
    _check_options(shard, settings, max_line_bytes)
    if replace_index and (dry_run or shard[1] > 1):
        raise ConfigError("--replace-index deletes the index: not with --dry-run, and not per --shard "
                          "(replace it once, then start the shards)")
    rejects_path = Path(rejects) if rejects is not None else default_rejects_path(source, shard)
    if str(source) != STDIN and rejects_path.resolve() == Path(source).resolve():
        raise ConfigError(f"the reject file {rejects_path} would overwrite the input: choose another --rejects")
    started = time.perf_counter()
    target = None if dry_run else ClusterTarget.connect(settings, client)
    if embedder is None:
        from ner_os.mentions.embedder import MentionEmbedder

        embedder = MentionEmbedder.from_settings(settings)
    if detector is None:
        detector = default_detector()
    if target is not None:
        if replace_index:
            target.drop_index(embedder)
        target.prepare_index(settings, embedder.dim, vectors_identity(embedder))
        if tagger is None:
            tagger = target.registered_type_tagger()

    checkpoint = None
    if target is not None and str(source) != STDIN:
        checkpoint = Checkpoint.for_input(settings, source, shard, target.uuid, pipeline_identity(embedder, detector))
    summary = LoadSummary(source=str(source), index=None if dry_run else settings.index, dry_run=dry_run,
                          rejects_path=str(rejects_path))
    with contextlib.ExitStack() as opened:
        stream, mark = _open_at_checkpoint(source, checkpoint if resume else None, opened)
        summary.resumed_after_line = mark.line
        run = LoadRun(settings, summary, mark, RejectLog(rejects_path, keep_through_line=mark.line), checkpoint,
                      embedder, detector, target, tagger, shard, max_line_bytes)
        summary.setup_seconds = time.perf_counter() - started
        started = time.perf_counter()
        run.execute(stream, Progress(input_size(source), progress, mark))
    summary.wall_seconds = time.perf_counter() - started
    return summary


def _open_at_checkpoint(source, checkpoint: "Checkpoint | None", opened: contextlib.ExitStack):
    """The input positioned after the checkpoint's last line when the input still starts with the bytes
    the checkpoint was taken on; otherwise at its start."""
    stream = HashingReader(opened.enter_context(open_input(source)))
    mark = checkpoint.read() if checkpoint is not None else None
    if mark is None:
        return stream, Mark.origin()
    if stream.skip_verified(mark):
        return stream, mark
    log.warning("%s changed since the checkpoint at line %d; loading it from the start", source, mark.line)
    opened.close()
    return HashingReader(opened.enter_context(open_input(source))), Mark.origin()


def _check_options(shard: tuple[int, int], settings: Settings, max_line_bytes: int) -> None:
    index, count = shard
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"shard {index}/{count}: need 0 <= i < N")
    if settings.batch_tokens < 1:
        raise ConfigError(f"batch_tokens {settings.batch_tokens}: must be >= 1")
    if max_line_bytes < 1:
        raise ConfigError(f"max_line_bytes {max_line_bytes}: must be >= 1")


def default_detector():
    from ner_os.spans.core import detector_from_name

    return detector_from_name("spacy")


def pipeline_identity(embedder, detector) -> dict[str, Any]:
    """What produced the vectors: a checkpoint left by another model, head or detector is not resumed."""
    return {
        "vectors": vectors_identity(embedder),
        "dim": int(embedder.dim),
        "detector": str(getattr(detector, "name", type(detector).__name__)),
    }


class LoadRun:
    """One load, wired as four threads: read -> spans -> embed -> bulk."""

    def __init__(self, settings, summary, mark, reject_log, checkpoint, embedder, detector, target, tagger,
                 shard, max_line_bytes):
        self.settings, self.summary, self.reject_log = settings, summary, reject_log
        self.checkpoint, self.embedder, self.detector = checkpoint, embedder, detector
        self.target, self.tagger, self.shard, self.max_line_bytes = target, tagger, shard, max_line_bytes
        self.ledger = LineLedger(mark)
        self.clock = StageClock()
        self.nested_limit = target.nested_limit if target is not None else DEFAULT_NESTED_LIMIT

    def execute(self, stream: "HashingReader", bar: "Progress") -> None:
        reader = Reader(stream, self.ledger, self.reject_log, self.shard, self.max_line_bytes, self.nested_limit,
                        token_counter(self.embedder), self.settings.batch_tokens, self.summary)
        writer = BulkWriter(self.target, self.settings.index, self.ledger, self.reject_log, self.checkpoint,
                            self.tagger, bar, self.clock)
        embedder = with_timed_encoder(self.embedder, self.clock)
        stages = Stages(self.clock)
        to_spans, to_embed, to_bulk = (queue.Queue(QUEUE_DEPTH) for _ in range(3))
        stages.source("read", reader.batches(), to_spans)
        stages.step("spans", lambda batch: detect_spans(batch, self.detector, self.nested_limit, self.ledger,
                                                         self.reject_log), to_spans, to_embed)
        stages.step("embed", lambda batch: embed_batch(batch, embedder, self.ledger, self.reject_log),
                    to_embed, to_bulk)
        stages.sink(writer.write, to_bulk)
        try:
            stages.wait()
            writer.finish()
        finally:
            bar.close()
            self.reject_log.close()
        self._fill_summary(writer)

    def _fill_summary(self, writer: "BulkWriter") -> None:
        mark, summary = self.ledger.mark, self.summary
        summary.documents, summary.mentions = mark.documents, mark.mentions
        summary.rejected = self.reject_log.count
        summary.run_documents, summary.run_mentions = writer.documents, writer.mentions
        seconds = self.clock.snapshot()
        seconds["head"] = max(0.0, seconds.pop("embed", 0.0) - seconds.get("encode", 0.0))
        summary.stage_seconds = {name: seconds.get(name, 0.0) for name in STAGES}


# --- reading ------------------------------------------------------------------------------------


class HashingReader:
    """A binary stream that hashes every byte read through it: the checkpoint's fingerprint of the input."""

    def __init__(self, stream):
        self.stream = stream
        self.sha = hashlib.sha256()
        self.offset = 0

    def readline(self, limit: int = -1) -> bytes:
        chunk = self.stream.readline(limit)
        self.sha.update(chunk)
        self.offset += len(chunk)
        return chunk

    def skip_verified(self, mark: "Mark") -> bool:
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


@dataclass(frozen=True)
class Mark:
    """A point in the input: every line up to ``line`` is settled; the totals are what those lines gave."""

    line: int
    offset: int
    sha256: str
    documents: int = 0
    mentions: int = 0
    rejected: int = 0

    @classmethod
    def origin(cls) -> "Mark":
        return cls(0, 0, hashlib.sha256().hexdigest())


@dataclass
class _Pending:
    offset: int
    sha: Any  # hashlib state after this line
    settled: bool = False
    documents: int = 0
    mentions: int = 0
    rejected: int = 0


class LineLedger:
    """Lines in flight, in input order. A line is settled when OpenSearch acknowledged it, when it is in
    the reject file, or when it needs nothing (blank, another shard's); the mark moves over the longest
    settled prefix."""

    def __init__(self, mark: Mark):
        self.mark = mark
        self._pending: dict[int, _Pending] = {}  # insertion order is input order
        self._lock = threading.Lock()

    def open(self, line: Line, sha, settled: bool = False, rejected: int = 0) -> None:
        with self._lock:
            self._pending[line.number] = _Pending(line.end_offset, sha, settled, rejected=rejected)

    def settle(self, line_number: int, documents: int = 0, mentions: int = 0, rejected: int = 0) -> None:
        with self._lock:
            entry = self._pending[line_number]
            entry.settled = True
            entry.documents, entry.mentions, entry.rejected = documents, mentions, rejected

    def advance(self) -> bool:
        """Move the mark over the settled lines at the front; True when it moved."""
        with self._lock:
            documents, mentions, rejected = self.mark.documents, self.mark.mentions, self.mark.rejected
            last = None
            while self._pending:
                number = next(iter(self._pending))
                entry = self._pending[number]
                if not entry.settled:
                    break
                del self._pending[number]
                documents, mentions, rejected = (documents + entry.documents, mentions + entry.mentions,
                                                 rejected + entry.rejected)
                last = (number, entry)
            if last is None:
                return False
            number, entry = last
            self.mark = Mark(number, entry.offset, entry.sha.hexdigest(), documents, mentions, rejected)
            return True

    def unsettled(self) -> int:
        with self._lock:
            return sum(not entry.settled for entry in self._pending.values())


class RejectLog:
    """The reject file: one JSON object per rejected line (``line``, ``reason``, ``id`` when known,
    ``excerpt``), created at the first reject. A fresh run removes the file an earlier run left; a
    resumed run keeps its entries up to the checkpoint (the lines after it are read again)."""

    def __init__(self, path: Path, keep_through_line: int = 0):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._handle = None
        self._kept = self._entries_through(keep_through_line) if keep_through_line else []
        self.path.unlink(missing_ok=True)
        self.count = len(self._kept)
        if self._kept:
            self._open()

    def _entries_through(self, last_line: int) -> list[str]:
        if not self.path.is_file():
            return []
        kept = []
        for text in self.path.read_text(encoding="utf-8").splitlines():
            try:
                line = json.loads(text).get("line")
            except (json.JSONDecodeError, AttributeError):
                continue
            if isinstance(line, int) and line <= last_line:
                kept.append(text)
        return kept

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.path.open("w", encoding="utf-8")
        self._handle.writelines(text + "\n" for text in self._kept)
        self._handle.flush()

    def write(self, rejected: Rejected) -> None:
        with self._lock:
            if self._handle is None:
                self._open()
            self._handle.write(json.dumps(rejected.to_json(), ensure_ascii=False) + "\n")
            self._handle.flush()  # before the checkpoint can move past this line
            self.count += 1

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None


@dataclass
class Batch:
    """Documents encoded together; ``spans`` and ``vectors`` are filled by the later stages."""

    documents: list[Document]
    spans: list[tuple[tuple[int, int], ...]] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)


class Reader:
    """Lines -> checked documents -> length-sorted, token-budgeted batches, one bounded window at a time."""

    def __init__(self, stream: HashingReader, ledger: LineLedger, reject_log: RejectLog, shard: tuple[int, int],
                 max_line_bytes: int, nested_limit: int, count_tokens: Callable[[list[str]], list[int]],
                 batch_tokens: int, summary: LoadSummary):
        self.stream, self.ledger, self.reject_log = stream, ledger, reject_log
        self.shard, self.max_line_bytes, self.nested_limit = shard, max_line_bytes, nested_limit
        self.count_tokens, self.batch_tokens, self.summary = count_tokens, batch_tokens, summary

    def documents(self) -> Iterator[Document]:
        mark = self.ledger.mark
        for line in read_lines(self.stream, self.max_line_bytes, mark.line, mark.offset):
            sha = self.stream.sha.copy()
            if not in_shard(line.number, self.shard) or is_blank(line):
                self.ledger.open(line, sha, settled=True)
                continue
            parsed = parse_line(line, self.max_line_bytes, self.nested_limit)
            if isinstance(parsed, Rejected):
                self.reject_log.write(parsed)
                self.ledger.open(line, sha, settled=True, rejected=1)
                continue
            self.ledger.open(line, sha)
            yield parsed

    def batches(self) -> Iterator["Batch"]:
        window: dict[str, Document] = {}
        window_chars = 0
        window_budget_chars = self.batch_tokens * WINDOW_BUDGETS * 4  # ~4 characters a token
        for document in self.documents():
            earlier = window.pop(document.id, None)
            if earlier is not None:
                # sorting reorders a window: keep only the later line so that it is the one that stays
                self.summary.superseded += 1
                self.ledger.settle(earlier.line)
            window[document.id] = document
            window_chars += len(document.text)
            if window_chars >= window_budget_chars or len(window) >= WINDOW_MAX_DOCS:
                yield from self._cut(list(window.values()))
                window, window_chars = {}, 0
        if window:
            yield from self._cut(list(window.values()))

    def _cut(self, documents: list[Document]) -> Iterator["Batch"]:
        tokens = self.count_tokens([document.text for document in documents])
        for group in plan_batches(documents, tokens, self.batch_tokens):
            yield Batch(group)


def plan_batches(items: Sequence, lengths: Sequence[int], budget: int) -> list[list]:
    """Items sorted by length and packed so that each batch's padded size (count x longest) stays
    within ``budget``; an item longer than the budget goes alone (the encoder chunks it)."""
    order = sorted(range(len(items)), key=lambda i: (lengths[i], i))
    batches: list[list] = []
    current: list = []
    longest = 0
    for i in order:
        length = max(1, int(lengths[i]))
        if current and max(longest, length) * (len(current) + 1) > budget:
            batches.append(current)
            current, longest = [], 0
        current.append(items[i])
        longest = max(longest, length)
    if current:
        batches.append(current)
    return batches


def token_counter(embedder) -> Callable[[list[str]], list[int]]:
    """Tokens the encoder will see per text (BOS included), from its tokenizer; ~4 characters a token
    for an encoder without one."""
    tokenizer = getattr(getattr(embedder, "encoder", None), "tokenizer", None)
    if callable(tokenizer):
        return lambda texts: [len(ids) + 1 for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]
    return lambda texts: [len(text) // 4 + 2 for text in texts]


# --- spans and vectors ----------------------------------------------------------------------------


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


class TimedEncoder:
    """The encoder with the seconds spent in ``encode`` recorded (the encoder's share of the wall time)."""

    def __init__(self, encoder, clock: "StageClock"):
        self._encoder, self._clock = encoder, clock

    def encode(self, texts):
        with self._clock.timed("encode"):
            return self._encoder.encode(texts)

    def __getattr__(self, name):
        return getattr(self._encoder, name)


def with_timed_encoder(embedder, clock: "StageClock"):
    timed = copy.copy(embedder)
    timed.encoder = TimedEncoder(embedder.encoder, clock)
    return timed


# --- writing ------------------------------------------------------------------------------------


def document_source(document: Document, spans, vectors: np.ndarray, types: Sequence[Sequence[str]] | None) -> dict:
    """The indexed document (see ``index_templates/``): id, text, the line's other fields under
    ``metadata``, and the mentions as nested objects."""
    mentions = []
    for position, ((start, end), vector) in enumerate(zip(spans, vectors)):
        mention = {"start": start, "end": end, "surface": document.text[start:end],
                   "vector": np.asarray(vector, dtype=np.float32).tolist()}
        if types is not None:
            mention["types"] = list(types[position])
        mentions.append(mention)
    return {"doc_id": document.id, "text": document.text, "metadata": document.metadata, "mentions": mentions}


class BulkWriter:
    """The last stage: tag, write, settle the acknowledged lines, move the checkpoint and the bar."""

    def __init__(self, target: "ClusterTarget | None", index: str, ledger: LineLedger, reject_log: RejectLog,
                 checkpoint: "Checkpoint | None", tagger: Tagger | None, bar: "Progress", clock: "StageClock"):
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
        if not self.ledger.advance():
            return
        mark = self.ledger.mark
        if self.checkpoint is not None:
            self.checkpoint.save(mark)
        self.bar.update(mark, self.documents, self.mentions)


class ClusterTarget:
    """The index being loaded: created from the templates when missing, checked, and written to."""

    def __init__(self, client, index: str):
        self.client, self.index = client, index
        self.uuid: str | None = None
        self.nested_limit = DEFAULT_NESTED_LIMIT

    @classmethod
    def connect(cls, settings: Settings, client=None) -> "ClusterTarget":
        """A client for the settings' cluster (a local node is started when no URL is set), once it
        answers; an unreachable cluster is a ``ClusterError`` after ``settings.timeout_s``."""
        from ner_os.store.index import client_from_settings, wait_until_reachable

        if client is None:
            client = client_from_settings(settings)
        else:
            wait_until_reachable(client, settings.opensearch_url or "the given client's cluster", settings.timeout_s)
        return cls(client, settings.index)

    def drop_index(self, embedder) -> None:
        """Delete the index. The types registered on it stay, re-embedded with ``embedder`` (their old
        vectors came from the model that filled it), so that the load tags its documents with them."""
        from ner_os.registered_types import read_types, store_type

        kept = read_types(self.client, self.index)
        if self.client.indices.exists(index=self.index):
            self.client.indices.delete(index=self.index)
        vectors = embedder.embed_types([registered.description for registered in kept])
        for registered, vector in zip(kept, vectors):
            store_type(self.client, self.index, registered.reembedded(vector, vectors_identity(embedder)))
            log.info("index %s replaced: registered type %r re-embedded with the new model", self.index,
                     registered.name)

    def prepare_index(self, settings: Settings, dim: int, vectors: dict | None = None) -> None:
        """Create the index for ``dim``-d mention vectors when missing, recording ``vectors`` (what makes
        them); refuse one of another size, or one whose vectors another encoder or head made."""
        from ner_os.store.index import check_dimension, check_vectors, create_index, index_vector_dimension, \
            install_templates

        if self.client.indices.exists(index=self.index):
            check_dimension(self.client, self.index, dim)
            if index_vector_dimension(self.client, self.index) is None:
                raise ConfigError(f"index {self.index!r} has no mentions.vector field, so it was not made by "
                                  "ner-os: choose another --index")
            check_vectors(self.client, self.index, vectors)
        else:
            install_templates(self.client, settings, dim)
            create_index(self.client, self.index, dim, vectors)
        flat = self.client.indices.get_settings(index=self.index, include_defaults=True, flat_settings=True)
        values = next(iter(flat.values()))
        merged = {**values.get("defaults", {}), **values.get("settings", {})}
        self.uuid = merged.get("index.uuid")
        self.nested_limit = int(merged.get("index.mapping.nested_objects.limit", DEFAULT_NESTED_LIMIT))

    def registered_type_tagger(self) -> "Tagger | None":
        """Tags for the types registered on this index (``ner-os types add``); None when there are none."""
        from ner_os.registered_types import tagger_for_index

        return tagger_for_index(self.client, self.index)

    def write(self, actions: Iterable[dict]) -> dict[str, str]:
        """Index the actions; ``{_id: reason}`` for the documents OpenSearch refused for good. 429s are
        retried by ``streaming_bulk``; 5xx and lost connections here, with exponential backoff; when
        they persist the load stops (a rerun resumes)."""
        from ner_os.store.index import bulk_index

        pending = list(actions)
        refused: dict[str, str] = {}
        for attempt in range(BULK_ATTEMPTS):
            if attempt:
                time.sleep(min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (attempt - 1)))
            by_id = {action["_id"]: action for action in pending}
            retry: list[dict] = []
            result = bulk_index(self.client, pending, chunk_size=BULK_MAX_DOCS, max_chunk_bytes=BULK_MAX_BYTES)
            for failure in result.failures:
                if failure.doc_id not in by_id:  # never take a write for done without knowing which it was
                    raise ClusterError(f"a bulk write to {self.index!r} failed for an unknown document: "
                                       f"{failure.status} {failure.reason}")
                if is_index_block(failure.reason):  # the index, not the document: stop before rejecting them all
                    raise ClusterError(f"index {self.index!r} refuses writes ({failure.status} {failure.reason}); "
                                       "free disk space or lift the block (index.blocks.*), then run the load "
                                       "again to resume")
                if is_retryable(failure.status):
                    retry.append(by_id[failure.doc_id])
                else:
                    refused[str(failure.doc_id)] = failure.reason
            if not retry:
                return refused
            last = result.failures[-1]
            pending = retry
        raise ClusterError(f"OpenSearch kept failing {len(pending)} writes to {self.index!r} after {BULK_ATTEMPTS} "
                           f"attempts (last: {last.status} {last.reason}); run the load again to resume")

    def refresh(self) -> None:
        self.client.indices.refresh(index=self.index)


def is_index_block(reason: str) -> bool:
    """A write refused because of an index or cluster block (read-only, the disk flood-stage watermark)."""
    return "cluster_block_exception" in reason


def is_retryable(status) -> bool:
    """429, 5xx, or no HTTP status at all (the connection failed)."""
    return not isinstance(status, int) or status == 429 or status >= 500


class Checkpoint:
    """The mark of a load, under ``<data_dir>/checkpoints/<index>/<input name>.<hash of its path>.json``.

    It is only read back for the same input path, index (by UUID, so a deleted and recreated index
    starts over), shard and pipeline (model, head, detector)."""

    def __init__(self, path: Path, identity: dict[str, Any]):
        self.path = path
        self.identity = json.loads(json.dumps(identity))  # as it reads back from disk

    @classmethod
    def for_input(cls, settings: Settings, source, shard: tuple[int, int], index_uuid: str | None,
                  pipeline: dict[str, Any]) -> "Checkpoint":
        resolved = str(Path(source).resolve())
        index, count = shard
        name = f"{Path(source).name}.{hashlib.sha256(resolved.encode()).hexdigest()[:16]}"
        name += f".shard-{index}-of-{count}.json" if count > 1 else ".json"
        identity = {"input": resolved, "index": settings.index, "index_uuid": index_uuid, "shard": [index, count],
                    "pipeline": pipeline}
        return cls(settings.data_path / "checkpoints" / settings.index / name, identity)

    def read(self) -> Mark | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError) as error:
            log.warning("ignoring unreadable checkpoint %s (%s)", self.path, error)
            return None
        if data.get("format") != CHECKPOINT_FORMAT or data.get("version") != CHECKPOINT_VERSION:
            return None
        if data.get("identity") != self.identity:
            log.info("checkpoint %s is for another index, model or shard; starting from the first line", self.path)
            return None
        try:
            return Mark(**data["mark"])
        except (KeyError, TypeError):
            return None

    def save(self, mark: Mark) -> None:
        payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "identity": self.identity,
                   "mark": asdict(mark), "updated": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
        os.replace(temporary, self.path)  # a kill mid-write leaves the previous checkpoint whole


# --- running the stages ---------------------------------------------------------------------------


class Progress:
    """A progress bar over the input's bytes (an ETA when the size is known), with docs/s and mentions/s."""

    def __init__(self, total_bytes: int | None, enabled: bool | None, mark: Mark):
        from tqdm import tqdm

        self.started = time.perf_counter()
        self.bar = tqdm(total=total_bytes, initial=mark.offset, unit="B", unit_scale=True, unit_divisor=1024,
                        desc="load", dynamic_ncols=True, disable=None if enabled is None else not enabled)

    def update(self, mark: Mark, documents: int, mentions: int) -> None:
        self.bar.update(mark.offset - self.bar.n)
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        self.bar.set_postfix_str(f"{documents / elapsed:.1f} docs/s, {mentions / elapsed:.1f} mentions/s",
                                 refresh=False)

    def close(self) -> None:
        self.bar.close()


class StageClock:
    """Busy seconds per stage, added up across threads."""

    def __init__(self):
        self._seconds: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self._seconds[name] += seconds

    @contextlib.contextmanager
    def timed(self, name: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - started)

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return dict(self._seconds)


_END = object()  # flows down the queues after the last batch
_STOPPED = object()  # what a stage gets instead when another stage failed


class Stages:
    """Threads joined by bounded queues. The first failure stops every stage and is raised by ``wait``."""

    def __init__(self, clock: StageClock):
        self.clock = clock
        self.stop = threading.Event()
        self.failure: BaseException | None = None
        self.threads: list[threading.Thread] = []

    def source(self, name: str, items: Iterable, outbox: queue.Queue) -> None:
        def body():
            iterator = iter(items)
            while True:
                with self.clock.timed(name):
                    item = next(iterator, _END)
                if not self._put(outbox, item) or item is _END:
                    return

        self._spawn(name, body)

    def step(self, name: str, work: Callable, inbox: queue.Queue, outbox: queue.Queue) -> None:
        def body():
            while True:
                item = self._get(inbox)
                if item is _STOPPED:
                    return
                if item is _END:
                    self._put(outbox, _END)
                    return
                with self.clock.timed(name):
                    result = work(item)
                if not self._put(outbox, result):
                    return

        self._spawn(name, body)

    def sink(self, work: Callable, inbox: queue.Queue) -> None:
        def body():
            while True:
                item = self._get(inbox)
                if item is _STOPPED or item is _END:
                    return
                work(item)

        self._spawn("sink", body)

    def wait(self) -> None:
        try:
            for thread in self.threads:
                while thread.is_alive():
                    thread.join(0.2)
        except BaseException:  # Ctrl-C: let the stages stop at their next batch, keep the checkpoint whole
            self.stop.set()
            for thread in self.threads:
                thread.join()
            raise
        if self.failure is not None:
            raise self.failure

    def _spawn(self, name: str, body: Callable[[], None]) -> None:
        def run():
            try:
                body()
            except BaseException as error:  # handed to wait(), which raises it in the caller's thread
                if self.failure is None:
                    self.failure = error
                self.stop.set()

        thread = threading.Thread(target=run, name=f"ner-os-load-{name}", daemon=True)
        thread.start()
        self.threads.append(thread)

    def _put(self, outbox: queue.Queue, item) -> bool:
        while not self.stop.is_set():
            try:
                outbox.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, inbox: queue.Queue):
        while not self.stop.is_set():
            try:
                return inbox.get(timeout=0.1)
            except queue.Empty:
                continue
        return _STOPPED
