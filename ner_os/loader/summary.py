"""What a load did: counts, the resume point, the reject file and the busy seconds of each stage."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

STAGES = ("read", "spans", "encode", "head", "tag", "bulk")


@dataclass
class LoadSummary:
    """What a load did. ``documents``, ``mentions`` and ``rejected`` cover the whole input, lines settled
    by the earlier run this one resumed from included; ``run_*`` and the timings cover this run.
    ``unit``: what the input's positions count, ``line`` (a JSONL file) or ``record`` (records in memory)."""

    source: str
    index: str | None
    dry_run: bool = False
    documents: int = 0
    mentions: int = 0
    rejected: int = 0
    superseded: int = 0  # lines replaced by a later line with the same id
    resumed_after_line: int = 0
    rejects_path: str | None = None
    run_documents: int = 0
    run_mentions: int = 0
    setup_seconds: float = 0.0  # connecting, loading the model and the span detector, preparing the index
    wall_seconds: float = 0.0  # from the first line read to the last write acknowledged
    stage_seconds: dict[str, float] = field(default_factory=dict)
    unit: str = "line"
    advice: str | None = None  # what the user should change about the index, e.g. its shard count

    @property
    def docs_per_s(self) -> float:
        return self.run_documents / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def mentions_per_s(self) -> float:
        return self.run_mentions / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def encoder_share(self) -> float:
        return self.stage_seconds.get("encode", 0.0) / self.wall_seconds if self.wall_seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(docs_per_s=self.docs_per_s, mentions_per_s=self.mentions_per_s, encoder_share=self.encoder_share)
        return out

    def describe(self) -> str:
        unit = self.unit
        where = "dry run, nothing written" if self.dry_run else f"index {self.index!r}"
        lines = [f"{self.documents:,} documents, {self.mentions:,} mentions ({where})"]
        if self.resumed_after_line:
            lines.append(f"resumed after {unit} {self.resumed_after_line:,}")
        lines.append(f"this run: {self.run_documents:,} documents in {self.wall_seconds:.1f} s "
                     f"({self.docs_per_s:.1f} docs/s, {self.mentions_per_s:.1f} mentions/s) "
                     f"after {self.setup_seconds:.1f} s of setup")
        lines.append("busy seconds: " + ", ".join(f"{name} {self.stage_seconds.get(name, 0.0):.1f}" for name in STAGES)
                     + f"; encoder {self.encoder_share:.0%} of wall time")
        if self.superseded:
            lines.append(f"{self.superseded:,} {unit}s replaced by a later {unit} with the same id")
        lines.append(f"{self.rejected:,} {unit}s rejected, listed in {self.rejects_path}" if self.rejected
                     else f"no {unit} rejected")
        if self.advice:
            lines.append(self.advice)
        return "\n".join(lines)
