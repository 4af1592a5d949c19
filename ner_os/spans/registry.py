"""Choosing a span detector by name or from the settings.

``encoder`` (the detector over the encoder's value vectors, shipped per profile), ``spacy``,
``union`` (both; the default, measured best: ``ner_os/heads/gemma3-270m/spans/MODEL_CARD.md``) and
``given`` (no detection: mentions come with the input; ``none`` is its old name). Unset
(``Settings.spans`` None), the default is ``union`` where a detector ships for the profile and fits
the encoder, else ``spacy``. A ``--head`` directory with a ``spans/`` detector in it (``ner-os train --data
FILE --spans``) replaces the shipped one.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ner_os.errors import ConfigError
from ner_os.spans.base import NoDetector, SpanDetector
from ner_os.spans.spacy_detector import SpacyDetector

DETECTORS = ("union", "encoder", "spacy", "given")
DEFAULT_DETECTOR = "union"
FALLBACK_DETECTOR = "spacy"  # the default where no encoder detector fits

log = logging.getLogger(__name__)


def detector_from_settings(settings: Any, encoder: Any = None) -> SpanDetector:
    """The detector ``settings.spans`` names, for the settings' profile. ``encoder``: what
    ``detect(texts)`` of an encoder-reading detector encodes with (a pipeline that already has the
    vectors calls ``detect_encoded`` and needs none); it is checked against the detector's training."""
    name = getattr(settings, "spans", None)
    profile = getattr(settings, "profile", "gemma3-270m")
    directory = head_detector_directory(settings)
    if name is not None:
        return detector_from_name(name, profile=profile, encoder=encoder, directory=directory)
    try:
        return detector_from_name(DEFAULT_DETECTOR, profile=profile, encoder=encoder, directory=directory)
    except ConfigError as error:  # another profile or layer: the text-only detector
        log.info("span detector: %s (%s)", FALLBACK_DETECTOR, error)
        return detector_from_name(FALLBACK_DETECTOR)


def head_detector_directory(settings: Any) -> Path | None:
    """``<--head dir>/spans`` when the settings' head directory holds a detector (``ner-os train --data
    FILE --spans`` puts one there, as ``ner_os/heads/<profile>/spans`` ships one), else None."""
    head = getattr(settings, "head", None)
    if not head or str(head).lower() == "none":
        return None
    directory = Path(head) / "spans"
    return directory if (directory / "manifest.json").is_file() else None


def detector_from_name(name: str, profile: str = "gemma3-270m", encoder: Any = None, directory: str | Path | None = None,
                       **options: Any) -> SpanDetector:
    """A detector by name (see the module doc); ``directory``: the encoder detector's weights (default: the
    one shipped for ``profile``); ``options`` go to :class:`SpacyDetector`."""
    if name == "spacy":
        return SpacyDetector(**options)
    if name in ("given", "none"):
        return NoDetector()
    if name in ("encoder", "union"):
        from ner_os.spans.encoder_detector import EncoderSpanDetector
        from ner_os.spans.union import UnionDetector

        primary = (EncoderSpanDetector.load(directory, encoder=encoder) if directory is not None
                   else EncoderSpanDetector.for_profile(profile, encoder=encoder))
        if encoder is not None:
            check_fits(primary, encoder)
        return primary if name == "encoder" else UnionDetector(primary, SpacyDetector(**options))
    raise ConfigError(f"unknown span detector {name!r}: choose one of {', '.join(DETECTORS)}")


def check_fits(detector: Any, encoder: Any) -> None:
    """Raise a ConfigError unless an encoder-reading detector was trained on ``encoder``'s vectors."""
    primary = getattr(detector, "primary", detector)
    if encoder is None or not callable(getattr(primary, "check_encoder", None)):
        return
    profile = getattr(getattr(encoder, "profile", None), "name", None)
    try:
        primary.check_encoder(profile, getattr(encoder, "layer", None), getattr(encoder, "d_v", None))
    except ConfigError as error:
        raise ConfigError(f"{error}: choose --spans spacy for this encoder") from None
