"""The union detector: the encoder detector's spans, plus the spaCy spans that end elsewhere.

Measured best on every dev split of issue #15 (``ner_os/heads/gemma3-270m/spans/MODEL_CARD.md``):
the encoder detector finds lowercase and common-noun mentions spaCy misses, spaCy adds a few
cased names the encoder leaves out, and the phrases around names ("Ovarian cancer" around the
encoder's "Ovarian", "2011 Scottish Parliament election" around "Scottish Parliament"): a name
inside a longer noun phrase is indexed as both (:func:`union_spans`). It runs in two parts, so that a pipeline can run the text
part while the encoder works: :meth:`detect_text` (spaCy, on the raw text) and
:meth:`detect_encoded` (the encoder detector on the vectors, merged with what the text part found).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ner_os.errors import ConfigError
from ner_os.spans.base import Span, SpanDetector
from ner_os.spans.encoder_detector import EncoderSpanDetector, union_spans


class UnionDetector(SpanDetector):
    """``primary`` (reads encoded texts) united with ``secondary`` (reads text) by :func:`union_spans`."""

    def __init__(self, primary: EncoderSpanDetector, secondary: SpanDetector, encoder: Any = None):
        self.primary, self.secondary = primary, secondary
        self.encoder = encoder if encoder is not None else primary.encoder
        self.name = f"union[{primary.name}, {secondary.name}]"

    def detect_text(self, texts: Sequence[str]) -> list[list[Span]]:
        """The part that reads the text alone (run before or beside the encoder)."""
        return self.secondary.detect(list(texts))

    def detect_encoded(self, texts: Sequence[str], encoded: Sequence, text_spans: Sequence | None = None
                       ) -> list[list[Span]]:
        """The union for texts already encoded; ``text_spans``: what :meth:`detect_text` found (else
        it runs now)."""
        secondary = self.detect_text(texts) if text_spans is None else text_spans
        primary = self.primary.detect_encoded(texts, encoded)
        return [union_spans(p, [Span(*_bounds(s)) for s in other]) for p, other in zip(primary, secondary)]

    def detect(self, texts: Sequence[str]) -> list[list[Span]]:
        if self.encoder is None:
            raise ConfigError("UnionDetector.detect needs an encoder: pass encoder=..., or call detect_encoded")
        return self.detect_encoded(texts, self.encoder.encode(list(texts)))


def _bounds(span) -> tuple[int, int]:
    return (int(span.start), int(span.end)) if hasattr(span, "start") else (int(span[0]), int(span[1]))


def reads_encoding(detector) -> bool:
    """Whether ``detector`` reads the encoder's vectors (has ``detect_encoded``): the loader then
    detects from the batch's own encoding instead of before it."""
    return callable(getattr(detector, "detect_encoded", None))
