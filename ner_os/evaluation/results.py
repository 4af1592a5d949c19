"""The outcome of an eval: one :class:`RunResult` per system and span source, gathered in an :class:`EvalResult`.

:meth:`EvalResult.to_dict` is the JSON the report writes (:mod:`ner_os.evaluation.report`).
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ner_os.evaluation.corpus import MAX_DEPTH, MIN_DEPTH, EvalType
from ner_os.evaluation.metrics import RetrievalReport, is_catch_all_type
from ner_os.evaluation.plan import RunSpec


@dataclass
class RunResult:
    spec: RunSpec
    index: str | None  # None for the exact rankers (numpy)
    scores: RetrievalReport
    query_seconds: float

    def to_dict(self) -> dict:
        scores = self.scores.to_dict()
        return {"name": self.spec.name, "system": self.spec.system, "spans": self.spec.spans, "index": self.index,
                "macro": scores["macro"], "macro_specific": scores["macro_specific"],
                "per_type": scores["per_type"], "query_seconds": round(self.query_seconds, 3)}


@dataclass
class EvalResult:
    data: str
    data_format: str
    sentences_in_file: int
    limit: int | None
    seed: int
    documents: int
    types: list[EvalType]
    runs: list[RunResult]
    span_sources: tuple[str, ...]
    span_detection: dict | None = None  # detected spans against gold spans (metrics.SpanScores)
    loads: list[dict] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    wall_seconds: float = 0.0
    model: dict = field(default_factory=dict)
    command: str | None = None
    date: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def run(self, system: str, spans: str | None = None) -> RunResult | None:
        for result in self.runs:
            if result.spec.system == system and result.spec.spans in (spans, None):
                return result
        return None

    def macro_r_precision(self, spans: str | None) -> dict[str, float]:
        """System name -> macro R-Precision, span-free systems included, for one span source."""
        out = {}
        for result in self.runs:
            if result.spec.spans in (None, spans):
                out[result.spec.system] = result.scores.macro["r_precision"]
        return out

    def to_dict(self) -> dict:
        headline_spans = self.span_sources[0] if self.span_sources else None
        return {
            "benchmark": "ner-os eval",
            "data": self.data,
            "format": self.data_format,
            "sentences_in_file": self.sentences_in_file,
            "limit": self.limit,
            "seed": self.seed,
            "documents": self.documents,
            "macro_r_precision": self.macro_r_precision(headline_spans),
            "macro_r_precision_spans": headline_spans,
            "macro_r_precision_by_spans": {spans: self.macro_r_precision(spans) for spans in self.span_sources},
            "types": [{"label": t.label, "description": t.description, "relevant": len(t.relevant),
                       "catch_all": is_catch_all_type(t.label), "ranking_depth": t.depth} for t in self.types],
            "ranking_depth": f"max({MIN_DEPTH}, R) documents per type, at most {MAX_DEPTH}",
            "runs": [result.to_dict() for result in self.runs],
            "span_detection": self.span_detection,
            "loads": self.loads,
            "timings_seconds": {name: round(value, 2) for name, value in self.timings.items()},
            "wall_seconds": round(self.wall_seconds, 1),
            "model": self.model,
            "command": self.command,
            "machine": machine(),
            "date": self.date,
        }


def machine() -> dict:
    """The machine, with its load average when the figures were taken (a shared CPU slows every step)."""
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "load_average_1_5_15_min": [round(value, 2) for value in os.getloadavg()]}

