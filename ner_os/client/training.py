"""Training a head from the Python API: train on Few-NERD and save where ``--head`` finds it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ner_os.config import Settings
from ner_os.training import DataPlan, TrainConfig, TrainResult, train_on_fewnerd


@dataclass(frozen=True)
class TrainedHead:
    """A head :func:`train_head` trained and saved: the training result and the head's directory."""

    result: TrainResult
    path: str


def train_head(settings: Settings, data_dir: str | Path, *, out: str | Path | None = None,
               config: TrainConfig | None = None, plan: DataPlan | None = None,
               hold_out_dev: bool = False) -> TrainedHead:
    """Train a projection head on Few-NERD (:func:`ner_os.training.train_on_fewnerd`) and save it to
    ``out`` (default ``<data dir>/heads/<profile>-L<layer>``)."""
    result = train_on_fewnerd(settings, data_dir, config or TrainConfig(), hold_out_dev=hold_out_dev,
                              plan=plan or DataPlan())
    layer = result.head.encoder["layer"]
    target = str(out) if out else str(settings.data_path / "heads" / f"{settings.profile}-L{layer}")
    result.head.save(target)
    return TrainedHead(result, target)
