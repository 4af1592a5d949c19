"""``ner-os eval``: retrieval quality of ner-os against BM25 and a sentence embedder, side by side.

A BIO/CoNLL file becomes a corpus of one sentence per document (:mod:`ner_os.evaluation.corpus`).
Every system (:mod:`ner_os.evaluation.plan`) ranks the same documents in the same OpenSearch, each
from a fresh index (:class:`ner_os.evaluation.session.EvalSession`); the rankings are scored
(:mod:`ner_os.evaluation.metrics`) into an :class:`ner_os.evaluation.results.EvalResult`, and, with
``out``, written as a report (:mod:`ner_os.evaluation.report`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from ner_os.config import Settings, redacted_text
from ner_os.evaluation.corpus import count_sentences, eval_types, read_corpus
from ner_os.evaluation.plan import DEFAULT_SYSTEMS, SPAN_SOURCES, SYSTEMS, parse_choices, plan_runs, span_plan
from ner_os.evaluation.readers import read_type_names
from ner_os.evaluation.report import write_report
from ner_os.evaluation.results import EvalResult
from ner_os.evaluation.session import EvalSession
from ner_os.loader.stages import StageClock

log = logging.getLogger(__name__)


def evaluate(
    data: str | Path,
    type_names: str | Path,
    *,
    settings: Settings | None = None,
    systems: Sequence[str] | str = DEFAULT_SYSTEMS,
    span_sources: Sequence[str] | str = SPAN_SOURCES,
    data_format: str = "bio",
    limit: int | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    keep_indexes: bool = False,
    vector_cache: bool = False,
    progress: bool | None = None,
    say: Callable[[str], None] = log.info,
    command: str | None = None,
    **flags: Any,
) -> EvalResult:
    """Rank the corpus of ``data`` for each of its types with each system and score the rankings.

    ``settings`` (or ``Settings.resolve(**flags)``) pick the cluster, the model and the head;
    ``settings.index`` is the prefix of the eval's indexes (``<index>-eval-<run id>-<part>``), which
    are deleted at the end unless ``keep_indexes``. ``vector_cache`` keeps the corpus's token vectors
    under the cache dir (:class:`ner_os.mentions.cache.VectorCache`), so that a rerun with another
    head, span source or index setting encodes nothing. With ``out``, the markdown table, the JSON and the chart are
    written there (see :mod:`ner_os.evaluation.report`).
    """
    started = time.perf_counter()
    settings = settings if settings is not None else Settings.resolve(**flags)
    command = recordable_command(command, settings)
    systems = parse_choices(systems, SYSTEMS, "system")
    span_sources, detector_name = span_plan(span_sources)
    if detector_name is not None:
        settings = settings.replace(spans=detector_name)
    clock = StageClock()
    with clock.timed("read corpus"):
        names = read_type_names(type_names)
        documents = read_corpus(data, data_format, limit, seed)
        types = eval_types(documents, names)
        in_file = len(documents) if limit is None else count_sentences(data, data_format)
    say(f"{len(documents):,} documents, {len(types)} types, systems {', '.join(systems)}; "
        f"mention systems with {' and '.join(span_sources)} spans"
        + (f" (detector: {settings.spans})" if "detected" in span_sources else ""))
    session = EvalSession(settings, documents, types, clock, progress=progress, say=say, vector_cache=vector_cache)
    try:
        runs = session.run_all(plan_runs(systems, span_sources))
    finally:
        session.close(delete_indexes=not keep_indexes)
    result = EvalResult(
        data=str(data), data_format=data_format, sentences_in_file=in_file, limit=limit, seed=seed,
        documents=len(documents), types=types, runs=runs, span_sources=span_sources,
        span_detection=session.span_detection, loads=session.loads, timings=clock.snapshot(),
        wall_seconds=time.perf_counter() - started, model=session.model_description(), command=command,
    )
    if out is not None:
        write_report(result, out)
    return result



def recordable_command(command: str | None, settings: Settings) -> str | None:
    """The command line as the report records it: no URL credential, and never the password itself."""
    if command is None:
        return None
    command = redacted_text(command)
    return command.replace(settings.password, "***") if settings.password else command
