"""Several type queries at once (``search_types``): each a description or a dict of
:meth:`ner_os.client.NerOs.search_type` options, run side by side so that each round of requests is one
``_msearch``; one :class:`ner_os.query.TypeResults` per query, in order, a failed one with its ``error``.

Also the batch file of ``ner-os search --batch``: one description per line, or one JSON object per line.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ner_os import query as q
from ner_os.client.prepare import query_steps
from ner_os.errors import NerOsError
from ner_os.store import search as store

QUERY_OPTIONS = tuple(name for name in inspect.signature(query_steps).parameters if name != "ner")


def query_spec(query: Any, options: Mapping[str, Any], number: int) -> dict[str, Any]:
    """Query ``number`` (from 1) as ``search_type`` keyword arguments: the shared ``options`` under its own."""
    if isinstance(query, str):
        spec = {**options, "description": query}
    elif isinstance(query, Mapping):
        spec = {**options, **query}
    else:
        raise NerOsError(f"query {number}: expected a description or a dict of search_type options, "
                         f"got {type(query).__name__}")
    unknown = sorted(set(spec) - set(QUERY_OPTIONS))
    if unknown:
        raise NerOsError(f"query {number}: unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                         f"(expected: {', '.join(QUERY_OPTIONS)})")
    return spec


def prepare_batch(ner, queries: Sequence[Any], options: Mapping[str, Any]) -> tuple[q.Steps, list[dict]]:
    """The batch's steps (:func:`ner_os.query.batch_steps`) and each query's spec. A query that cannot be
    asked (a bad option, a missing index, an empty description) fails the batch before any search, naming it."""
    if isinstance(queries, (str, Mapping)) or not queries:
        raise NerOsError("search_types takes a non-empty list of queries (descriptions or dicts of options)")
    specs, searches = [], []
    for number, query in enumerate(queries, start=1):
        spec = query_spec(query, options, number)
        try:
            steps, index = query_steps(ner, **spec)
        except NerOsError as error:
            raise NerOsError(f"query {number} ({label(spec)!r}): {error}") from None
        specs.append({**spec, "index": index})
        searches.append((index, steps))
    return q.batch_steps(searches), specs


def batch_results(ner, outcomes: Sequence[Any], specs: Sequence[Mapping[str, Any]]) -> list[q.TypeResults]:
    """The batch's outcomes as results: a failed query's has no hits and its ``error``."""
    results = []
    for outcome, spec in zip(outcomes, specs, strict=True):
        if isinstance(outcome, q.TypeResults):
            results.append(outcome)
            continue
        if isinstance(outcome, store.MissingIndex):
            ner.forget_index(spec["index"])
        mode = "radial" if spec.get("min_score") is not None else "hybrid" if spec.get("hybrid") else "knn"
        results.append(q.TypeResults(description=label(spec), index=spec["index"], mode=mode,
                                     offset=spec.get("offset", 0), hits=(), error=str(outcome)))
    return results


def search_types(ner, queries: Sequence[Any], **options: Any) -> list[q.TypeResults]:
    """:meth:`ner_os.client.NerOs.search_types` over the sync client."""
    steps, specs = prepare_batch(ner, queries, options)
    outcomes = q.drive(steps, lambda batch: store.send_batch(ner.opensearch, batch.requests))
    return batch_results(ner, outcomes, specs)


def label(spec: Mapping[str, Any]) -> str:
    return q.query_label(spec.get("description"), spec.get("examples") or ())


def read_batch(path: str | Path, lines: Iterable[str] | None = None) -> list[Any]:
    """The queries of a batch file (``lines`` instead of reading ``path``, e.g. stdin): one description per
    line, or a JSON object of ``search_type`` options (``{"description": "river", "size": 5}``); blank lines
    and lines starting with ``#`` are skipped."""
    if lines is None:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise NerOsError(f"batch file {path}: cannot be read ({error})") from None
    queries: list[Any] = []
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("{"):
            try:
                queries.append(json.loads(line))
            except ValueError as error:
                raise NerOsError(f"{path}:{number}: not a JSON object ({error})") from None
        else:
            queries.append(line)
    if not queries:
        raise NerOsError(f"batch file {path}: no query in it")
    return queries
