"""What the loader would detect in a few texts, per span detector: ``ner-os spans FILE|TEXT``.

A document can only be found through a mention detected in it; this shows the mentions each
detector finds (``union``, ``encoder``, ``spacy``), so that a user can see why a document is
missing from a search. Mentions given with a JSONL line are shown as ``given``. The encoder runs
once per text, whatever the detectors: the encoder-reading ones read the same vectors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ner_os.config import Settings
from ner_os.encoder import Encoder
from ner_os.errors import ConfigError
from ner_os.spans import DETECTORS, Span, SpanError, detector_from_name, validate_spans
from ner_os.spans.registry import head_detector_directory
from ner_os.spans.union import reads_encoding

PREVIEW_LIMIT = 20  # texts shown from a file by default


@dataclass
class SpanPreview:
    """One text and the spans each detector finds in it (``given``: the mentions that came with it)."""

    text: str
    spans: dict[str, list[Span]] = field(default_factory=dict)
    where: str = ""  # "line 3" for a file's line, "" for a text given directly

    def surfaces(self, detector: str) -> list[str]:
        return [self.text[span.start:span.end] for span in self.spans.get(detector, [])]


def preview_inputs(source: str, limit: int = PREVIEW_LIMIT) -> list[tuple[str, str, list[Span] | None]]:
    """``(where, text, given mentions or None)`` for ``source``: a file (JSONL lines with ``text``,
    or plain lines of text) when a file of that name exists, else the text itself."""
    path = Path(source)
    if not path.is_file():
        if not source.strip():
            raise ConfigError("nothing to preview: give a text or a file")
        return [("", source, None)]
    out: list[tuple[str, str, list[Span] | None]] = []
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, start=1):
            if len(out) >= limit:
                break
            if not line.strip():
                continue
            out.append(_input_line(path, number, line.rstrip("\n")))
    if not out:
        raise ConfigError(f"{path}: no text in the file")
    return out


def _input_line(path: Path, number: int, line: str) -> tuple[str, str, list[Span] | None]:
    where = f"line {number}"
    try:
        record = json.loads(line)
    except ValueError:
        return where, line, None
    if not isinstance(record, dict):
        return where, line, None
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{path}: {where}: field 'text' must be a non-empty string")
    mentions = record.get("mentions")
    try:
        given = validate_spans(text, mentions) if mentions is not None else None
    except SpanError as error:
        raise ConfigError(f"{path}: {where}: field 'mentions': {error}") from None
    return where, text, given


def preview_spans(source: str, settings: Settings | None = None, detectors: Sequence[str] = ("union", "spacy"),
                  limit: int = PREVIEW_LIMIT, encoder=None) -> list[SpanPreview]:
    """The spans each of ``detectors`` finds in ``source`` (see :func:`preview_inputs`), next to
    the given mentions of JSONL lines. ``encoder``: the one the encoder-reading detectors read
    (default: the settings' encoder, built only when such a detector is asked for)."""
    settings = settings or Settings.resolve()
    unknown = [name for name in detectors if name not in DETECTORS or name == "given"]
    if unknown or not detectors:
        choices = ", ".join(name for name in DETECTORS if name != "given")
        raise ConfigError(f"unknown span detector {', '.join(map(repr, unknown))}: choose from {choices}")
    inputs = preview_inputs(source, limit)
    texts = [text for _, text, _ in inputs]
    previews = [SpanPreview(text, {} if given is None else {"given": given}, where) for where, text, given in inputs]
    if any(name in ("encoder", "union") for name in detectors) and encoder is None:
        encoder = Encoder.from_settings(settings)
    encoded = None
    for name in dict.fromkeys(detectors):
        detector = detector_from_name(name, profile=settings.profile, encoder=encoder,
                                      directory=head_detector_directory(settings))
        if reads_encoding(detector):
            encoded = encoded if encoded is not None else encoder.encode(texts)
            found = detector.detect_encoded(texts, encoded)
        else:
            found = detector.detect(texts)
        for preview, spans in zip(previews, found):
            preview.spans[name] = list(spans)
    return previews
