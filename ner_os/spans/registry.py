"""Choosing a span detector by name or from the settings."""

from __future__ import annotations

from typing import Any

from ner_os.errors import ConfigError
from ner_os.spans.base import NoDetector, SpanDetector
from ner_os.spans.spacy_detector import SpacyDetector


def detector_from_settings(settings: Any) -> SpanDetector:
    """The detector for a :class:`ner_os.config.Settings`: the spaCy default (no setting chooses
    another yet; input that carries its own mentions bypasses the detector anyway)."""
    return detector_from_name("spacy")


def detector_from_name(name: str, **options: Any) -> SpanDetector:
    """``"spacy"`` (the default detector) or ``"none"`` (mentions come with the input)."""
    if name == "spacy":
        return SpacyDetector(**options)
    if name == "none":
        return NoDetector()
    raise ConfigError(f"unknown span detector {name!r}: choose 'spacy' or 'none'")
