"""The loader on Ray Data: the same documents, ids, vectors and rejects as :func:`ner_os.loader.load`,
with the encoder on an actor pool that Ray places on many machines and GPUs, retries and streams.

Pipeline: read (:mod:`ner_os.ray.source`: a JSONL file, or any Ray Dataset with a ``text`` column)
-> spans (``map_batches``) -> embed (``map_batches`` on an actor pool, one encoder per actor, a GPU
each when asked) -> :class:`ner_os.ray.sink.IndexSink` (the loader's bulk writer). On CPU workers
the span step runs inside the embedding actors (Ray fuses the two, they ask for the same
resources); with GPUs it runs in CPU tasks of its own, so that the GPUs only encode.

Not here (the single-process loader has them): a checkpoint to resume from (a rerun rewrites the
same documents under the same ids, so it adds nothing, but encodes again) and ``--shard``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import ray

from ner_os.config import Settings
from ner_os.encoder import Encoder
from ner_os.errors import ConfigError, NerOsError
from ner_os.loader.ledger import RejectLog
from ner_os.loader.records import (
    DEFAULT_NESTED_LIMIT,
    MAX_LINE_BYTES,
    STDIN,
    Rejected,
    check_input,
    default_rejects_path,
)
from ner_os.loader.summary import STAGES, LoadSummary
from ner_os.loader.target import ClusterTarget
from ner_os.mentions.embedder import MentionEmbedder, vectors_identity
from ner_os.ray.sink import IndexSink
from ner_os.ray.source import JsonlDatasource, parse_records
from ner_os.ray.steps import EmbedStep, Shared, spans_step
from ner_os.spans import detector_from_settings
from ner_os.store.node.lifecycle import ensure_cluster_url

BATCH_DOCS = 64  # documents per Ray batch; each is cut again into token-budget batches


def load_file(path: str | os.PathLike, settings: Settings | None = None, *, rejects=None,
              max_line_bytes: int = MAX_LINE_BYTES, shard: tuple[int, int] = (0, 1), resume: bool = True,
              **options: Any) -> LoadSummary:
    """Load a JSONL corpus (plain or gzip; not stdin) on Ray: what :func:`ner_os.loader.load` writes,
    with the same reject file (``<input>.rejects.jsonl`` by default, the same line numbers).
    ``options``: those of :func:`load_dataset`, and settings flags. ``shard`` must stay ``(0, 1)`` (Ray
    splits the file itself); ``resume`` has no effect: no checkpoint is kept, a rerun rewrites the same
    documents under the same ids."""
    if tuple(shard) != (0, 1):
        raise ConfigError("the Ray engine splits the input itself: leave --shard out (or use --engine local)")
    if str(path) == STDIN:
        raise ConfigError("the Ray engine reads a file, not stdin: give the file's path, or use --engine local")
    check_input(path)
    path = Path(path)
    rejects_path = Path(rejects) if rejects is not None else default_rejects_path(path)
    if path.is_file() and rejects_path.resolve() == path.resolve():
        raise ConfigError(f"the reject file {rejects_path} would overwrite the input: choose another --rejects")
    if max_line_bytes < 1:
        raise ConfigError(f"max_line_bytes {max_line_bytes}: must be >= 1")

    def rows(nested_limit: int, batch_docs: int):
        source = JsonlDatasource(path, max_line_bytes=max_line_bytes, nested_limit=nested_limit,
                                 rows_per_block=batch_docs)
        return ray.data.read_datasource(source, num_cpus=0)

    return _run(rows, str(path), "line", rejects_path, settings, **options)


def load_dataset(dataset, settings: Settings | None = None, *, position: str | None = None, name: str = "dataset",
                 rejects=None, max_record_bytes: int = MAX_LINE_BYTES, **options: Any) -> LoadSummary:
    """Load a Ray Dataset whose rows are records (``text``; optional ``id``, ``mentions``; any other
    column kept as metadata, a null value counting as an absent field) on Ray, with the checks, ids
    and documents of :func:`ner_os.loader.load_records`.

    ``position``: a column numbering the rows, used for the rejects (``record`` in the reject file,
    ``<name>.rejects.jsonl`` by default) and dropped from the records; without it they are numbered 0.
    Options (all keyword): ``ray_address`` (None: the running Ray, else a local one), ``workers``
    (embedding actors, default 1), ``gpus_per_worker`` (0), ``cpus_per_worker`` (1), ``batch_docs``
    (documents per Ray batch), ``writers`` (write tasks at a time, default 1: in input order, so that
    a repeated id keeps its later line), ``dry_run``, ``replace_index``, ``progress``, ``embedder`` and
    ``detector`` (zero-argument callables that build them, run once in each worker; default: the
    settings' model and the spaCy detector), and settings flags.
    """
    rejects_path = Path(rejects) if rejects is not None else default_rejects_path(name)
    if max_record_bytes < 1:
        raise ConfigError(f"max_record_bytes {max_record_bytes}: must be >= 1")

    def rows(nested_limit: int, batch_docs: int):
        return dataset.map_batches(parse_records, batch_format="pyarrow", batch_size=batch_docs, num_cpus=0,
                                   fn_kwargs={"position": position, "max_record_bytes": max_record_bytes,
                                              "nested_limit": nested_limit})

    return _run(rows, name, "record", rejects_path, settings, **options)


def _run(rows: Callable, name: str, unit: str, rejects_path: Path, settings: Settings | None, *,
         ray_address: str | None = None, workers: int = 1, gpus_per_worker: float = 0.0, cpus_per_worker: float = 1.0,
         batch_docs: int = BATCH_DOCS, writers: int = 1, dry_run: bool = False, replace_index: bool = False,
         progress: bool | None = None, embedder: Callable | None = None, detector: Callable | None = None,
         **flags: Any) -> LoadSummary:
    started = time.perf_counter()
    settings = Settings.resolve(**flags) if settings is None else settings.replace(**flags)
    _check(settings, workers, gpus_per_worker, cpus_per_worker, batch_docs, writers, dry_run, replace_index)
    connect(ray_address)
    if not dry_run:
        settings = settings.replace(opensearch_url=ensure_cluster_url(settings))  # the workers' cluster
    target = None if dry_run else ClusterTarget.connect(settings)
    worker_settings = settings.replace(device="cuda") if gpus_per_worker else settings
    build_embedder = embedder or _SettingsEmbedder(worker_settings, max(1, int(cpus_per_worker)))
    tagger = None
    if target is not None:
        # the driver's embedder: the index's vector size and identity (and, with replace_index, the
        # registered types re-embedded); it builds the ONNX export the local workers then find
        local = embedder() if embedder is not None else MentionEmbedder.from_settings(settings.replace(device="cpu"))
        if replace_index:
            target.drop_index(local)
        target.prepare_index(settings, local.dim, vectors_identity(local))
        tagger = target.registered_type_tagger()
        del local
    nested_limit = target.nested_limit if target is not None else DEFAULT_NESTED_LIMIT
    sink = IndexSink(None if dry_run else settings, tagger)
    dataset = _pipeline(rows(nested_limit, batch_docs), Shared(build_embedder),
                        Shared(detector or _SettingsDetector(worker_settings)),
                        settings.batch_tokens, nested_limit, workers, gpus_per_worker, cpus_per_worker, batch_docs)
    dataset.context.execution_options.preserve_order = True
    dataset.context.enable_progress_bars = sys.stderr.isatty() if progress is None else progress
    setup = time.perf_counter() - started
    began = time.time()
    try:
        dataset.write_datasink(sink, ray_remote_args={"num_cpus": 0}, concurrency=writers)
    except Exception as error:  # a worker's NerOsError (a refusing cluster, ...) comes back wrapped by Ray
        cause = _cause(error)
        if cause is error:
            raise
        raise cause from None
    if target is not None:
        target.refresh()
    return _summary(sink.results, name, unit, rejects_path, settings, dry_run, setup, began, time.time())


def _pipeline(rows, embedder: Shared, detector: Shared, batch_tokens: int, nested_limit: int, workers: int,
              gpus: float, cpus: float, batch_docs: int):
    # equal resources make Ray fuse the span step into the embedding actors; with GPUs it stays on CPUs
    span_resources = {"num_cpus": cpus} if not gpus else {"num_cpus": 1}
    spanned = rows.map_batches(spans_step, batch_format="pyarrow", batch_size=batch_docs,
                               fn_kwargs={"detector": detector, "nested_limit": nested_limit}, **span_resources)
    embed_resources = {"num_cpus": cpus, **({"num_gpus": gpus} if gpus else {})}
    return spanned.map_batches(EmbedStep, batch_format="pyarrow", batch_size=batch_docs,
                               compute=ray.data.ActorPoolStrategy(size=workers),
                               fn_constructor_kwargs={"embedder": embedder, "batch_tokens": batch_tokens,
                                                      "detector": detector, "nested_limit": nested_limit,
                                                      "warm": not gpus},
                               **embed_resources)


def _cause(error: BaseException) -> BaseException:
    """The NerOsError a worker raised, out of Ray's wrappers (``cause``, ``__cause__``); else ``error``."""
    seen, current = set(), error
    while current is not None and id(current) not in seen:
        if isinstance(current, NerOsError):
            return current
        seen.add(id(current))
        current = getattr(current, "cause", None) or current.__cause__
    return error


def _check(settings, workers, gpus, cpus, batch_docs, writers, dry_run, replace_index) -> None:
    if settings.batch_tokens < 1:
        raise ConfigError(f"batch_tokens {settings.batch_tokens}: must be >= 1")
    for label, value, least in (("workers", workers, 1), ("batch_docs", batch_docs, 1), ("writers", writers, 1),
                                ("gpus_per_worker", gpus, 0), ("cpus_per_worker", cpus, 0)):
        if value < least:
            raise ConfigError(f"{label} {value}: must be >= {least}")
    if replace_index and dry_run:
        raise ConfigError("--replace-index deletes the index: not with --dry-run")


def connect(address: str | None = None) -> None:
    """Join the Ray cluster at ``address`` (``auto``: the one this machine belongs to); without one, the
    Ray already initialised in this process, else a new local Ray on this machine's CPUs."""
    if ray.is_initialized():
        return
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise ConfigError(f"cannot reach the Ray cluster at {address!r}: {error}") from None


class _SettingsEmbedder:
    """Builds the settings' embedder in a worker, the encoder on ``threads`` CPU threads."""

    def __init__(self, settings: Settings, threads: int):
        self.settings, self.threads = settings, threads

    def __call__(self) -> MentionEmbedder:
        threads = None if self.settings.device == "cuda" else self.threads
        return MentionEmbedder.from_settings(self.settings, Encoder.from_settings(self.settings, threads=threads))


class _SettingsDetector:
    """Builds the span detector the settings name (``settings.spans``), as the single-process loader does."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def __call__(self):
        return detector_from_settings(self.settings)


def _summary(results: list[dict], name: str, unit: str, rejects_path: Path, settings: Settings, dry_run: bool,
             setup: float, began: float, ended: float) -> LoadSummary:
    summary = LoadSummary(source=name, index=None if dry_run else settings.index, dry_run=dry_run,
                          rejects_path=str(rejects_path), unit=unit)
    rejects = sorted((Rejected(*entry) for result in results for entry in result["rejects"]), key=lambda r: r.line)
    log = RejectLog(rejects_path, unit=unit)
    try:
        for rejected in rejects:
            log.write(rejected)
    finally:
        log.close()
    written = np.concatenate([result["written"] for result in results] or [np.zeros((0, 3), np.int64)])
    latest = written[np.lexsort((written[:, 1], written[:, 0]))] if len(written) else written
    last = np.append(latest[1:, 0] != latest[:-1, 0], True) if len(latest) else np.zeros(0, bool)
    summary.documents = summary.run_documents = int(last.sum())  # an id written twice counts once, its last line
    summary.mentions = summary.run_mentions = int(latest[last, 2].sum())
    summary.rejected, summary.superseded = len(rejects), len(written) - summary.documents
    ready = min((result["first_ready"] for result in results if result["first_ready"]), default=began)
    ready = min(max(ready, began), ended)
    summary.setup_seconds = setup + (ready - began)  # ... and until the first worker had its encoder
    summary.wall_seconds = ended - ready
    seconds = {stage: sum(result["seconds"].get(stage, 0.0) for result in results) for stage in
               ("read", "spans", "encode", "embed", "tag", "bulk")}
    seconds["head"] = max(0.0, seconds.pop("embed") - seconds["encode"])
    summary.stage_seconds = {stage: seconds.get(stage, 0.0) for stage in STAGES}
    return summary
