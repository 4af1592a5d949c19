"""The batch loader: documents -> spans -> value vectors -> head -> OpenSearch, overlapped and resumable.

:func:`load` reads a JSONL corpus, :func:`load_records` records in memory; both run the same
pipeline (:mod:`ner_os.loader.sources` turns either into numbered lines). Four threads joined by
small bounded queues, so that the encoder never waits for I/O or spaCy: ``read`` parses and checks
lines (:mod:`ner_os.loader.records`), skips the lines of other shards, and gathers a bounded *window*
of documents that it sorts by token count and cuts into batches under the token budget
(:mod:`~ner_os.loader.batches`); ``spans`` detects mentions where none were given; ``embed`` runs
the encoder and the head (:mod:`~ner_os.loader.steps`); ``bulk`` tags mentions with registered types,
writes the documents (bounded by count and bytes, 429 and 5xx retried with backoff) and records what
OpenSearch acknowledged (:mod:`~ner_os.loader.writer`).

Each document is one parent with its mentions nested inside, under a deterministic ``_id`` (the
line's ``id`` or a hash of its content): reloading a file rewrites the same documents, and a
changed document replaces its old mentions in one write.

The checkpoint (:mod:`~ner_os.loader.checkpoint`) is the last line up to which every line is
settled (acknowledged by OpenSearch or written to the reject file), with the byte offset and SHA-256
of the input up to that line, so a resumed run skips exactly what the index already has and starts
over when the input changed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import logging
import os
import queue
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from ner_os.config import Settings
from ner_os.errors import BrokenInputError, ConfigError, NerOsError
from ner_os.loader.batches import Reader, token_counter
from ner_os.loader.checkpoint import Checkpoint, pipeline_identity
from ner_os.loader.ledger import LineLedger, Mark, RejectLog
from ner_os.loader.records import DEFAULT_NESTED_LIMIT, MAX_LINE_BYTES
from ner_os.loader.sources import FileSource, RecordSource
from ner_os.loader.stages import Progress, StageClock, Stages
from ner_os.loader.steps import DETECT_CLOCK, detect_spans, embed_batch, with_timed_encoder
from ner_os.loader.summary import STAGES, LoadSummary
from ner_os.loader.target import ClusterTarget
from ner_os.loader.writer import BulkWriter
from ner_os.mentions.embedder import MentionEmbedder, vectors_identity
from ner_os.registered_types import Tagger
from ner_os.spans import detector_from_name, detector_from_settings
from ner_os.spans.registry import check_fits
from ner_os.spans.union import reads_encoding

log = logging.getLogger(__name__)

QUEUE_DEPTH = 4  # batches waiting between two stages


@dataclass(frozen=True)
class LoadOptions:
    """The keyword options :func:`load` and :func:`load_records` share (documented at :func:`load`);
    any other keyword either takes is a settings flag."""

    dry_run: bool = False
    shard: tuple[int, int] = (0, 1)
    resume: bool = True
    rejects: str | os.PathLike | None = None
    progress: bool | None = None
    embedder: Any = None
    detector: Any = None
    client: Any = None
    tagger: Tagger | None = None
    replace_index: bool = False

    @classmethod
    def split(cls, keywords: dict[str, Any]) -> tuple[LoadOptions, dict[str, Any]]:
        """(the options among ``keywords``, the settings flags: the rest)."""
        names = {field.name for field in dataclasses.fields(cls)}
        return (cls(**{key: value for key, value in keywords.items() if key in names}),
                {key: value for key, value in keywords.items() if key not in names})


def _takes_load_options(function):
    """``function``'s signature (help(), editors) with LoadOptions' fields as keyword-only parameters before its
    ``**flags``: one list of the shared options, written once."""
    signature = inspect.signature(function)
    *own, flags = signature.parameters.values()
    shared = [inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=field.default, annotation=field.type)
              for field in dataclasses.fields(LoadOptions)]
    function.__signature__ = signature.replace(parameters=[*own, *shared, flags])
    return function


@_takes_load_options
def load(source: str | os.PathLike, settings: Settings | None = None, *, max_line_bytes: int = MAX_LINE_BYTES,
         **flags: Any) -> LoadSummary:
    """Load a JSONL corpus (a path, or ``-`` for stdin; gzip or plain) into the settings' index.

    ``settings`` (or ``Settings.resolve(**flags)``; flags also override given settings) picks the
    model, the index and the cluster; without an OpenSearch URL a local node is started. The index
    is created from the templates when missing. ``dry_run`` runs everything but the writes and
    needs no cluster. ``shard=(i, N)`` loads lines i+1, i+1+N, ... so that N workers together load
    the file once. ``resume`` continues after the checkpoint an earlier run of this input into this
    index left. ``embedder`` (a :class:`ner_os.mentions.embedder.MentionEmbedder`), ``detector`` (with
    ``detect(texts)``) and ``client`` replace what the settings would build; ``tagger`` fills each
    mention's ``types`` (see :data:`ner_os.registered_types.Tagger`). ``progress``: None shows a bar
    on a terminal only. ``replace_index`` deletes the index before loading: after a change of head or
    encoder, whose vectors cannot share an index with the old ones; the types registered on it are
    kept, re-embedded with the new model, and tag the documents loaded. Records held in memory:
    :func:`load_records`.
    """
    if not isinstance(source, (str, os.PathLike)):
        raise NerOsError(f"load() takes the path of a JSONL file (or '-' for stdin), not a {type(source).__name__}; "
                         "to load records held in memory (dicts), use ner_os.load_records(records)")
    return _load(FileSource(source), settings, *LoadOptions.split(flags), max_line_bytes, "max_line_bytes")


@_takes_load_options
def load_records(records: Iterable[dict], settings: Settings | None = None, *, name: str = "records",
                 max_record_bytes: int = MAX_LINE_BYTES, **flags: Any) -> LoadSummary:
    """Load records held in memory, any iterable of dicts, each one what a line of a JSONL corpus
    holds (``text``, optional ``id`` and ``mentions``, other fields kept as metadata): the same
    pipeline, checks, ids and summary as :func:`load`, whose options these are.

    Each record goes through exactly the checks a line gets (it is written as the JSON line a file
    would hold, ``max_record_bytes`` at most, and parsed back). An item that is no dict, or that JSON
    cannot represent (a ``set``, a ``datetime``, NaN), is rejected with its reason, and the records
    around it still load. Rejects are numbered by position, 1-based (``record`` in the reject file,
    "record N" in the summary); the reject file is ``rejects``, by default ``<name>.rejects.jsonl``
    in the working directory (created at the first reject only).

    Resuming: a collection that can be iterated again (a list, a tuple, any iterable that is not a
    one-shot iterator) keeps a checkpoint named after ``name`` and this index, so a rerun with the
    same records continues after the last record settled (and starts over when the records before
    it changed). A generator or another iterator cannot be re-read: no checkpoint is kept and a
    rerun loads every record again, which rewrites the same documents under the same ids.
    """
    if isinstance(records, (str, bytes, os.PathLike)):
        raise NerOsError(f"load_records() takes records (an iterable of dicts), not the path {records!r}: "
                         "to load a JSONL file, use ner_os.load(path)")
    if isinstance(records, dict):
        raise NerOsError("load_records() takes an iterable of dicts, got one dict: pass a list of records, "
                         "e.g. load_records([record])")
    try:
        iter(records)
    except TypeError:
        raise NerOsError(f"load_records() takes an iterable of dicts, got {type(records).__name__}") from None
    if not isinstance(name, str) or not name.strip():
        raise NerOsError(f"load_records(name=...) must be a non-empty string, got {name!r}")
    return _load(RecordSource(records, name), settings, *LoadOptions.split(flags), max_record_bytes,
                 "max_record_bytes")


def _load(source: FileSource | RecordSource, settings: Settings | None, options: LoadOptions, flags: dict[str, Any],
          max_line_bytes: int, limit_name: str) -> LoadSummary:
    """The one pipeline behind :func:`load` and :func:`load_records`."""
    dry_run, shard, replace_index = options.dry_run, options.shard, options.replace_index
    embedder, detector, tagger = options.embedder, options.detector, options.tagger
    settings = Settings.resolve(**flags) if settings is None else settings.replace(**flags)
    _check_options(shard, settings, max_line_bytes, limit_name)
    source.check()  # before any model loads, any cluster is reached and any index is made
    if replace_index and (dry_run or shard[1] > 1):
        raise ConfigError("--replace-index deletes the index: not with --dry-run, and not per --shard "
                          "(replace it once, then start the shards)")
    rejects_path = Path(options.rejects) if options.rejects is not None else source.default_rejects(shard)
    if source.overwritten_by(rejects_path):
        raise ConfigError(f"the reject file {rejects_path} would overwrite the input: choose another --rejects")
    started = time.perf_counter()
    target = None if dry_run else ClusterTarget.connect(settings, options.client)
    embedder = MentionEmbedder.from_settings(settings) if embedder is None else embedder
    getattr(getattr(embedder, "encoder", None), "start", lambda: None)()  # the model loads beside the detector
    detector = default_detector(settings, getattr(embedder, "encoder", None)) if detector is None else detector
    if reads_encoding(detector):  # spans read from the loader's own encoding: the detector must fit the encoder
        check_fits(detector, getattr(embedder, "encoder", None))
    if target is not None:
        if replace_index:
            target.drop_index(embedder)
        target.prepare_index(settings, embedder.dim, vectors_identity(embedder))
        if tagger is None:
            tagger = target.registered_type_tagger()
    checkpoint = None
    if target is not None and source.rereadable:
        checkpoint = Checkpoint.for_source(settings, source, shard, target.uuid, pipeline_identity(embedder, detector))
    summary = LoadSummary(source=source.name, index=None if dry_run else settings.index, dry_run=dry_run,
                          rejects_path=str(rejects_path), unit=source.unit)
    with contextlib.ExitStack() as opened:
        stream, mark = _open_at_checkpoint(source, checkpoint if options.resume else None, opened)
        summary.resumed_after_line = mark.line
        run = LoadRun(settings, summary, mark, RejectLog(rejects_path, keep_through_line=mark.line, unit=source.unit),
                      checkpoint, embedder, detector, target, tagger, shard, max_line_bytes)
        summary.setup_seconds = time.perf_counter() - started
        started = time.perf_counter()
        run.execute(stream, Progress(source.size(), options.progress, mark))
        broken = getattr(stream, "broken", None)
    summary.wall_seconds = time.perf_counter() - started
    if target is not None:
        summary.advice = target.shards_advice(summary.mentions)
    if broken:
        raise BrokenInputError(f"{source.name}: {broken}, after line {run.ledger.mark.line:,}; "
                               "the lines before the break are loaded, the rest of the input is missing (restore "
                               "the file and run the load again to resume after them)", summary)
    return summary


def _open_at_checkpoint(source, checkpoint: Checkpoint | None, opened: contextlib.ExitStack):
    """The input positioned after the checkpoint's last line when the input still starts with the bytes
    the checkpoint was taken on; otherwise at its start."""
    stream = source.open(opened)
    mark = checkpoint.read() if checkpoint is not None else None
    if mark is None:
        return stream, Mark.origin()
    if stream.skip_verified(mark):
        return stream, mark
    log.warning("%s changed since the checkpoint at %s %d; loading it from the start", source.name, source.unit,
                mark.line)
    opened.close()
    return source.open(opened), Mark.origin()


def _check_options(shard: tuple[int, int], settings: Settings, max_line_bytes: int, limit_name: str) -> None:
    index, count = shard
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"shard {index}/{count}: need 0 <= i < N")
    if settings.batch_tokens < 1:
        raise ConfigError(f"batch_tokens {settings.batch_tokens}: must be >= 1")
    if max_line_bytes < 1:
        raise ConfigError(f"{limit_name} {max_line_bytes}: must be >= 1")


def default_detector(settings: Settings | None = None, encoder=None):
    """The detector ``settings.spans`` names (unset: ``union`` where it fits ``encoder``, else spaCy)."""
    return detector_from_settings(settings, encoder) if settings is not None else detector_from_name("spacy")


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

    def execute(self, stream, bar: Progress) -> None:
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
        stages.step("embed", lambda batch: embed_batch(batch, embedder, self.ledger, self.reject_log, self.detector,
                                                        self.nested_limit, self.clock), to_embed, to_bulk)
        stages.sink(writer.write, to_bulk)
        try:
            stages.wait()
            writer.finish()
        finally:
            bar.close()
            self.reject_log.close()
        self._fill_summary(writer)

    def _fill_summary(self, writer: BulkWriter) -> None:
        mark, summary = self.ledger.mark, self.summary
        summary.documents, summary.mentions = mark.documents, mark.mentions
        summary.rejected = self.reject_log.count
        summary.run_documents, summary.run_mentions = writer.documents, writer.mentions
        seconds = self.clock.snapshot()
        detect = seconds.pop(DETECT_CLOCK, 0.0)  # spans read from the vectors, in the embed stage
        seconds["spans"] = seconds.get("spans", 0.0) + detect
        seconds["head"] = max(0.0, seconds.pop("embed", 0.0) - seconds.get("encode", 0.0) - detect)
        summary.stage_seconds = {name: seconds.get(name, 0.0) for name in STAGES}
