"""What an eval runs: the systems, the span sources, and one :class:`RunSpec` per row of the results.

==============  ==============================================================================
``bm25``        ``match`` on ``text``
``dense``       k-NN over one all-MiniLM-L6-v2 vector per sentence
``raw``         nested k-NN over the mentions' value vectors, no head
``ner-os``      nested k-NN over the projected mention vectors
``hybrid``      ``ner-os`` and BM25 fused by the query layer (RRF)
``ner-os-exact``  exact cosine in numpy over the same projected vectors: what HNSW costs
``raw-exact``   the same for the raw value vectors (not run by default)
==============  ==============================================================================

The mention systems run once per span source: ``gold`` (the file's own mentions; ``given`` is
the same) and ``detected`` (the loader's span detector, ``Settings.spans``); a detector's name
(``union``, ``encoder``, ``spacy``) stands for ``detected`` with that detector (:func:`span_plan`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ner_os.errors import ConfigError

SYSTEMS = ("bm25", "dense", "raw", "ner-os", "hybrid", "ner-os-exact", "raw-exact")
DEFAULT_SYSTEMS = ("bm25", "dense", "raw", "ner-os", "hybrid", "ner-os-exact")
SPAN_SOURCES = ("gold", "detected")
DETECTOR_NAMES = ("union", "encoder", "spacy")  # ner_os.spans.registry.DETECTORS but "given"
SPAN_FREE_SYSTEMS = frozenset({"bm25", "dense"})
# which mention vectors each mention system reads: "raw" value vectors or "ner-os" projected ones
VECTOR_SPACE = {"raw": "raw", "raw-exact": "raw", "ner-os": "ner-os", "hybrid": "ner-os", "ner-os-exact": "ner-os"}
EXACT_SYSTEMS = frozenset({"raw-exact", "ner-os-exact"})


@dataclass(frozen=True)
class RunSpec:
    """One row of the results: a system, and for mention systems the span source it read."""

    system: str
    spans: str | None = None

    @property
    def name(self) -> str:
        return self.system if self.spans is None else f"{self.system} [{self.spans}]"


def parse_choices(text: str | Sequence[str], known: Sequence[str], what: str) -> tuple[str, ...]:
    """``"bm25, dense"`` or ``["bm25", "dense"]`` -> checked names, in the given order, once each."""
    items = text.split(",") if isinstance(text, str) else list(text)
    chosen = tuple(dict.fromkeys(item.strip().lower() for item in items if item.strip()))
    if not chosen:
        raise ConfigError(f"no {what} given; choose from {', '.join(known)}")
    unknown = [item for item in chosen if item not in known]
    if unknown:
        raise ConfigError(f"unknown {what} {', '.join(map(repr, unknown))}; choose from {', '.join(known)}")
    return chosen


def plan_runs(systems: Sequence[str], span_sources: Sequence[str]) -> list[RunSpec]:
    """Span-free systems once, mention systems once per span source."""
    runs = [RunSpec(system) for system in systems if system in SPAN_FREE_SYSTEMS]
    runs += [RunSpec(system, spans) for spans in span_sources for system in systems if system not in SPAN_FREE_SYSTEMS]
    return runs



def span_plan(text: str | Sequence[str]) -> tuple[tuple[str, ...], str | None]:
    """``--spans`` of an eval -> (span sources, the detector named or None).

    ``gold`` or ``given``: the file's mentions; ``detected``: the settings' detector; ``union``,
    ``encoder`` or ``spacy``: ``detected`` with that detector (one detector per eval)."""
    chosen = parse_choices(text, ("gold", "given", "detected", *DETECTOR_NAMES), "span source")
    detectors = [item for item in chosen if item in DETECTOR_NAMES]
    if len(detectors) > 1:
        raise ConfigError(f"one span detector per eval, got {', '.join(detectors)}: run one eval per detector")
    sources = tuple(dict.fromkeys("gold" if item == "given" else "detected" if item in DETECTOR_NAMES else item
                                  for item in chosen))
    return sources, (detectors[0] if detectors else None)
