"""Training a head from the Python API: on Few-NERD (:func:`train_head`) or on a labelled corpus of one's own
(:func:`train_on_corpus`, with the span detector too), saved where ``--head`` finds it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ner_os.config import Settings
from ner_os.spans.encoder_detector import MANIFEST_FILE, WEIGHTS_FILE
from ner_os.training import DataPlan, TrainConfig, TrainResult, train_on_fewnerd
from ner_os.training.card import CARD_FILE, corpus_card
from ner_os.training.corpus import DEV_SEED, DEV_SHARE, MIN_STEPS, CorpusTraining, train_on_corpus as train_corpus


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


SPANS_DIR = "spans"  # the detector inside a head directory, as ner_os/heads/<profile>/spans


@dataclass(frozen=True)
class TrainedCorpus:
    """A head (and detector) :func:`train_on_corpus` trained and saved, with the card written beside them."""

    training: CorpusTraining
    path: str
    detector_path: str | None
    card_path: str

    @property
    def result(self) -> TrainResult:
        return self.training.head


def train_on_corpus(settings: Settings, data_file: str | Path, type_names: str | Path, *, format: str = "bio",
                    spans: bool = False, out: str | Path | None = None, config: TrainConfig | None = None,
                    dev_share: float = DEV_SHARE, dev_seed: int = DEV_SEED, min_steps: int = MIN_STEPS,
                    command: str | None = None, progress: bool = True) -> TrainedCorpus:
    """Train a head on a labelled BIO/CoNLL file (:func:`ner_os.training.corpus.train_on_corpus`), with
    ``spans`` the span detector too, and save them to ``out`` (default ``<data dir>/heads/<file
    stem>-<profile>-L<layer>``; the detector in its ``spans/``) with ``MODEL_CARD.md``. ``--head out``
    then loads, searches and evaluates with them. ``min_steps``: epochs raised to train at least that many
    steps (a small corpus makes short epochs; 0: ``config.epochs`` as given)."""
    training = train_corpus(settings, data_file, type_names, format=format, spans=spans, config=config or TrainConfig(),
                            dev_share=dev_share, dev_seed=dev_seed, min_steps=min_steps, progress=progress)
    layer = training.head.head.encoder["layer"]
    target = Path(out) if out else settings.data_path / "heads" / f"{Path(data_file).stem}-{settings.profile}-L{layer}"
    training.head.head.save(str(target))
    detector_path = None
    if training.detector is not None:
        detector_path = str(target / SPANS_DIR)
        training.detector.save(detector_path)
    else:  # a detector an earlier run left there would be taken for this head's
        for name in (MANIFEST_FILE, WEIGHTS_FILE):
            (target / SPANS_DIR / name).unlink(missing_ok=True)
    card = target / CARD_FILE
    card.write_text(corpus_card(training, str(target), detector_path, command), encoding="utf-8")
    return TrainedCorpus(training, str(target), detector_path, str(card))
