"""The spans stage: character spans of the entity mentions in a text.

``base`` (Span, SpanDetector, NoDetector, validate_spans for mentions given with the input),
``spacy_detector`` (the default detector and its SpanRules; spaCy is imported when one is built),
``encoder_detector`` (EncoderSpanDetector: spans read from the encoder's value vectors), ``union``
(UnionDetector: encoder + spaCy), ``registry`` (detector_from_name, detector_from_settings, DETECTORS).
"""

from ner_os.spans.base import NoDetector, Span, SpanDetector, SpanError, validate_spans
from ner_os.spans.registry import DEFAULT_DETECTOR, DETECTORS, detector_from_name, detector_from_settings
from ner_os.spans.spacy_detector import SpacyDetector, SpanRules

__all__ = [
    "Span",
    "SpanError",
    "SpanDetector",
    "NoDetector",
    "validate_spans",
    "SpacyDetector",
    "SpanRules",
    "detector_from_name",
    "detector_from_settings",
    "DETECTORS",
    "DEFAULT_DETECTOR",
]
