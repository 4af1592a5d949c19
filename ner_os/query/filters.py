"""Document-field conditions of a type query: the ``bool.filter`` clause and the CLI's ``--filter`` syntax."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from ner_os.errors import NerOsError
from ner_os.fields import MENTIONS_PATH

RANGE_OPERATORS = frozenset({"gt", "gte", "lt", "lte"})
FILTER_OPERATORS = ((">=", "gte"), ("<=", "lte"), (">", "gt"), ("<", "lt"), ("=", None))


def filter_clause(filters: Mapping[str, Any] | None) -> dict | None:
    """Root-level metadata conditions as one ``bool.filter`` clause (None when there are none).

    ``{"lang": "en"}`` -> term, ``{"lang": ["en", "de"]}`` -> terms, ``{"year": {"gte": 2000}}`` ->
    range. Conditions on ``mentions.*`` are refused: they would mix nested and root conditions in
    one efficient k-NN filter, which matches nothing (k-NN #3047).
    """
    if not filters:
        return None
    clauses = []
    for name, value in sorted(filters.items()):
        if not isinstance(name, str) or not name.strip():
            raise NerOsError(f"a filter needs a field name, got {name!r}")
        if name == MENTIONS_PATH or name.startswith(MENTIONS_PATH + "."):
            raise NerOsError(f"filter on {name!r}: filters apply to document fields only, not to "
                             f"{MENTIONS_PATH}.* (nested and root conditions cannot share a k-NN filter)")
        if isinstance(value, Mapping):
            unknown = set(value) - RANGE_OPERATORS
            if unknown or not value:
                raise NerOsError(f"filter on {name!r}: a range takes {', '.join(sorted(RANGE_OPERATORS))}, "
                                 f"got {sorted(map(str, value)) or 'nothing'}")
            clauses.append({"range": {name: dict(value)}})
        elif isinstance(value, (list, tuple, set, frozenset)):
            if not value:
                raise NerOsError(f"filter on {name!r}: an empty list matches nothing")
            clauses.append({"terms": {name: sorted(value, key=str) if isinstance(value, (set, frozenset)) else list(value)}})
        elif value is None:
            raise NerOsError(f"filter on {name!r}: no value given")
        else:
            clauses.append({"term": {name: value}})
    return {"bool": {"filter": clauses}}


def parse_filter_args(args: Iterable[str]) -> dict[str, Any]:
    """``FIELD=VALUE`` (repeat a field for any of several values), ``FIELD>=VALUE``, ``>``, ``<=``, ``<``."""
    filters: dict[str, Any] = {}
    for arg in args:
        for symbol, operator in FILTER_OPERATORS:
            name, found, value = arg.partition(symbol)
            if found:
                break
        else:
            raise NerOsError(f"filter {arg!r}: expected FIELD=VALUE (or FIELD>=VALUE, >, <=, <)")
        name, value = name.strip(), value.strip()
        if not name or not value:
            raise NerOsError(f"filter {arg!r}: expected FIELD=VALUE with both sides non-empty")
        if operator is not None:
            filters.setdefault(name, {})
            if not isinstance(filters[name], dict):
                raise NerOsError(f"filter on {name!r}: cannot combine = with a range")
            filters[name][operator] = value
        elif name in filters:
            if isinstance(filters[name], dict):
                raise NerOsError(f"filter on {name!r}: cannot combine = with a range")
            previous = filters[name]
            filters[name] = (previous if isinstance(previous, list) else [previous]) + [value]
        else:
            filters[name] = value
    return filters

