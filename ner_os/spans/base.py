"""Mention spans: the :class:`Span` type, the :class:`SpanDetector` interface, and the check of
mentions given with the input (:func:`validate_spans`: spans given with the input bypass detection).

The detector does not care which type a span has, only that it names an entity: a mention's
vector is read at its last token, so where a span *ends* matters most.
"""

from __future__ import annotations

import numbers
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ner_os.errors import NerOsError


class SpanError(NerOsError):
    """User-given mention offsets that cannot be used."""


@dataclass(frozen=True, order=True)
class Span:
    """A mention as character offsets ``[start, end)`` into its text."""

    start: int
    end: int

    def overlaps(self, other: "Span") -> bool:
        return self.start < other.end and other.start < self.end


class SpanDetector(ABC):
    """Finds mention spans in texts, in batches."""

    name: str = "detector"

    @abstractmethod
    def detect(self, texts: Sequence[str]) -> list[list[Span]]:
        """One sorted list of spans per text, in input order: spans stay apart or nest (a name inside a
        phrase, each ending elsewhere: :func:`crossing_spans` finds none)."""


class NoDetector(SpanDetector):
    """Finds nothing: every mention must come with the input."""

    name = "none"

    def detect(self, texts: Sequence[str]) -> list[list[Span]]:
        return [[] for _ in texts]


# --- mentions given with the input ------------------------------------------------------------


def validate_spans(text: str, spans: Iterable[Any]) -> list[Span]:
    """Check user-given mentions against their text; return them as sorted :class:`Span`.

    Each mention is a mapping with integer ``start`` and ``end``, a ``(start, end)`` pair or a
    :class:`Span`. Raises :class:`SpanError` naming the first bad mention and why.
    """
    if isinstance(spans, (str, bytes, Mapping)) or not isinstance(spans, Iterable):
        raise SpanError(f"mentions must be a list of {{start, end}} objects, got {type(spans).__name__}")
    checked = [_checked_span(text, position, raw) for position, raw in enumerate(spans)]
    crossing = crossing_spans(checked)
    if crossing:
        before, after = crossing
        how = "end at the same character" if before.end == after.end else "overlap"
        raise SpanError(f"mentions [{before.start}, {before.end}) and [{after.start}, {after.end}) {how}")
    return sorted(checked)


def crossing_spans(spans: Iterable[Span]) -> tuple[Span, Span] | None:
    """Two spans that neither stay apart nor nest with different ends ("New York" in "New York Times"
    nests; two spans ending together are one mention, its vector read at that end), or None."""
    open_spans: list[Span] = []  # the spans holding the current one, innermost last
    ends: dict[int, Span] = {}
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if span.end in ends:
            return ends[span.end], span
        ends[span.end] = span
        while open_spans and open_spans[-1].end <= span.start:
            open_spans.pop()
        if open_spans and span.end > open_spans[-1].end:
            return open_spans[-1], span
        open_spans.append(span)
    return None


def _checked_span(text: str, position: int, raw: Any) -> Span:
    where = f"mention {position}"
    start, end = _offsets(raw, where)
    if not 0 <= start < end <= len(text):
        if start >= end:
            raise SpanError(f"{where}: start {start} must be smaller than end {end}")
        raise SpanError(f"{where}: [{start}, {end}) is outside the text (length {len(text)})")
    if not text[start:end].strip():
        raise SpanError(f"{where}: [{start}, {end}) covers only whitespace")
    return Span(start, end)


def _offsets(raw: Any, where: str) -> tuple[int, int]:
    if isinstance(raw, Span):
        return raw.start, raw.end
    if isinstance(raw, Mapping):
        missing = [key for key in ("start", "end") if key not in raw]
        if missing:
            raise SpanError(f"{where}: missing {' and '.join(missing)}")
        values = raw["start"], raw["end"]
    elif isinstance(raw, Sequence) and not isinstance(raw, (str, bytes)) and len(raw) == 2:
        values = tuple(raw)
    else:
        raise SpanError(f"{where}: expected {{\"start\": int, \"end\": int}}, got {raw!r}")
    for name, value in zip(("start", "end"), values):
        # bool is an int in Python and a float may be 3.0: neither is an offset a user meant
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise SpanError(f"{where}: {name} must be an integer, got {value!r}")
    return int(values[0]), int(values[1])
