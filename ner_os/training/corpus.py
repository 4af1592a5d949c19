"""Training on a user's own labelled corpus: a BIO/CoNLL file and its name map, read by the eval's readers.

:func:`read_labelled_corpus` reads the file (:func:`ner_os.evaluation.corpus.read_corpus`, the
readers of ``ner-os eval``) and the name map (:func:`ner_os.evaluation.readers.read_type_names`);
a label without a description is an error naming the file and line. :func:`train_on_corpus` holds
out a seeded share of the sentences as dev, trains the head with the Few-NERD recipe
(:mod:`ner_os.training.fit`) on the gold mentions of the rest, and measures dev retrieval (every
type, by its description, over the dev sentences) for the trained head, the head shipped for the
profile and raw vectors; with ``spans`` it also trains the span detector
(:mod:`ner_os.training.corpus_spans`) on the same split.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ner_os.digest import file_sha256
from ner_os.errors import ConfigError
from ner_os.evaluation.corpus import read_corpus
from ner_os.evaluation.readers import read_type_names
from ner_os.head import ProjectionHead, shipped_head_path
from ner_os.profiles import resolve_profile
from ner_os.training.data import LabelledText, SentenceSplit
from ner_os.training.fit import TrainConfig, TrainResult, train_head
from ner_os.training.run import encode_train_set, encoder_factory
from ner_os.training.trainset import FewNerdTrainSet

log = logging.getLogger(__name__)

DEV_SHARE = 0.2
DEV_SEED = 13
# a few hundred sentences make an epoch of a handful of steps; on a wikigold slice (4 types, 229 train
# sentences) dev R-Precision went 0.785 (1 epoch, 5 steps), 0.885 (20 steps), 0.941 (100), 0.916 (200)
MIN_STEPS = 100


@dataclass(frozen=True)
class LabelledCorpus:
    """A labelled file's sentences (one text each, gold spans typed by label) and their descriptions."""

    data_file: Path
    types_file: Path
    data_format: str
    sentences: list[LabelledText]
    type_names: dict[str, str]  # every label with a gold mention -> its description

    @property
    def data_files(self) -> dict[str, dict[str, str]]:
        return {"data": {"path": str(self.data_file), "sha256": file_sha256(self.data_file)},
                "types": {"path": str(self.types_file), "sha256": file_sha256(self.types_file)}}

    def mention_counts(self, rows: Sequence[int] | None = None) -> dict[str, int]:
        counts: dict[str, int] = {}
        for i in range(len(self.sentences)) if rows is None else rows:
            for _, _, label in self.sentences[i].spans:
                counts[label] = counts.get(label, 0) + 1
        return dict(sorted(counts.items()))


def read_labelled_corpus(data_file: str | Path, types_file: str | Path, data_format: str = "bio") -> LabelledCorpus:
    """Read ``data_file`` as ``ner-os eval`` does and check that every label has a description in ``types_file``."""
    documents = read_corpus(data_file, data_format)
    names = read_type_names(types_file)
    first_line: dict[str, int] = {}
    for document in documents:
        for mention in document.gold:
            first_line.setdefault(mention.label, document.line)
    if not first_line:
        raise ConfigError(f"{data_file}: no labelled mention (every tag is O), nothing to train on")
    missing = sorted(set(first_line) - set(names), key=lambda label: first_line[label])
    if missing:
        label = missing[0]
        others = f" (also without one: {', '.join(missing[1:])})" if missing[1:] else ""
        raise ConfigError(f"{data_file}:{first_line[label]}: label {label!r} has no description in {types_file}"
                          f"{others}")
    unused = sorted(set(names) - set(first_line))
    if unused:
        log.warning("%s: no mention of %s in %s; not trained", types_file, ", ".join(unused), data_file)
    sentences = [LabelledText(d.text, tuple((m.start, m.end, m.label) for m in d.gold)) for d in documents]
    return LabelledCorpus(Path(data_file), Path(types_file), data_format, sentences,
                          {label: names[label] for label in sorted(first_line)})


def split_by_sentence(n_sentences: int, dev_share: float, seed: int) -> tuple[list[int], list[int]]:
    """A seeded ``dev_share`` of the sentence indices as dev, the rest to train on (both sorted)."""
    if not 0 <= dev_share < 1:
        raise ConfigError(f"dev share {dev_share}: expected 0 <= share < 1")
    order = np.random.default_rng(seed).permutation(n_sentences)
    n_dev = int(round(dev_share * n_sentences))
    if dev_share and n_dev in (0, n_sentences):
        raise ConfigError(f"{n_sentences} sentences are too few to hold out a dev share of {dev_share}: "
                          "use a larger file or dev share 0")
    return sorted(order[n_dev:].tolist()), sorted(order[:n_dev].tolist())


def memoised(factory: Callable[[Sequence[int]], Any]) -> Callable[[Sequence[int]], Any]:
    """``factory`` loading each layer set's encoder once (the mention pass and the detector's share it)."""
    loaded: dict[tuple[int, ...], Any] = {}

    def load(layers: Sequence[int]):
        key = tuple(sorted(set(layers)))
        if key not in loaded:
            loaded[key] = factory(list(key))
        return loaded[key]

    return load


@dataclass
class CorpusTraining:
    """What :func:`train_on_corpus` made: the head, the detector's tensors and record (with ``spans``), figures."""

    corpus: LabelledCorpus
    split: SentenceSplit
    head: TrainResult
    dev: dict[str, Any] = field(default_factory=dict)  # head figures on the dev sentences
    detector: Any = None  # ner_os.training.corpus_spans.TrainedDetector, with spans


def train_on_corpus(settings, data_file: str | Path, type_names: str | Path, *, format: str = "bio",
                    spans: bool = False, config: TrainConfig = TrainConfig(), dev_share: float = DEV_SHARE,
                    dev_seed: int = DEV_SEED, min_steps: int = MIN_STEPS, progress: bool = True) -> CorpusTraining:
    """Train a head (and with ``spans`` the span detector) on a labelled file at the settings' layer.

    ``format``: ``bio`` or ``conll`` (the readers of ``ner-os eval``); ``type_names``: the JSON name
    map, label -> description. A seeded ``dev_share`` of the sentences is held out and measured.
    ``min_steps``: ``config.epochs`` is raised until training takes at least this many steps (0: as given).
    """
    corpus = read_labelled_corpus(data_file, type_names, format)
    train_rows, dev_rows = split_by_sentence(len(corpus.sentences), dev_share, dev_seed)
    dev_types = sorted(corpus.mention_counts(dev_rows))
    split = SentenceSplit(train=train_rows, dev=dev_rows, dev_types=dev_types)
    profile = resolve_profile(settings.profile, settings.model, settings.layer)
    factory = memoised(encoder_factory(settings, backend=settings.backend))
    train_set = encode_train_set(settings, corpus.sentences, corpus.type_names, split, corpus.data_files, [profile.layer],
                                 factory, phrases=config.query_map_ridge > 0)
    data = train_set.train_sentence_data(profile.layer)
    if len(data.types) < 2:
        raise ConfigError(f"{data_file}: the train sentences hold mentions of {len(data.types)} type(s); "
                          "training needs at least two")
    config = with_min_steps(config, data, min_steps)
    evaluate = train_set.dev_evaluator(profile.layer) if dev_rows else None
    identity = {"profile": settings.profile, "model": profile.model, "layer": profile.layer,
                "d_v": int(data.mentions.shape[1])}
    provenance = {"data": f"{corpus.data_file.name} ({format})", "data_files": corpus.data_files,
                  "split": {"dev_share": dev_share, "dev_seed": dev_seed, "train_sentences": len(train_rows),
                            "dev_sentences": len(dev_rows)}}
    result = train_head(data, config, identity, evaluate, provenance, progress)
    training = CorpusTraining(corpus, split, result)
    if evaluate is not None:
        training.dev = dev_figures(train_set, profile.layer, result.head, evaluate)
        result.head.manifest["training"]["dev"] = training.dev
    if spans:
        from ner_os.training.corpus_spans import train_corpus_detector

        training.detector = train_corpus_detector(corpus, split, factory([profile.layer]), profile.layer, identity,
                                                  log=_to_stderr if progress else (lambda message: None))
    return training


def with_min_steps(config: TrainConfig, data, min_steps: int) -> TrainConfig:
    """``config`` with enough epochs for ``min_steps`` steps (a step samples ``mentions_per_type`` of each type)."""
    per_step = config.mentions_per_type * len(np.unique(data.labels))
    steps_per_epoch = max(1, int(np.ceil(len(data.labels) / per_step)))
    return dataclasses.replace(config, epochs=max(config.epochs, int(np.ceil(min_steps / steps_per_epoch))))


def dev_figures(train_set: FewNerdTrainSet, layer: int, head: ProjectionHead,
                evaluate: Callable[[ProjectionHead | None], dict[str, float]]) -> dict[str, Any]:
    """Macro R-Precision over the dev sentences (gold spans, exact search) of the trained head, of the head
    shipped for the profile (when it reads this layer and width) and of raw value vectors."""
    r_precision = {"trained": evaluate(head)["dev_all"]}
    shipped_path = shipped_head_path(head.encoder["profile"])
    if shipped_path is not None:
        shipped = ProjectionHead.load(shipped_path)
        if (shipped.encoder.get("layer"), shipped.in_dim) == (layer, head.in_dim):
            r_precision["shipped_head"] = evaluate(shipped)["dev_all"]
    r_precision["raw_vectors"] = evaluate(None)["dev_all"]
    return {"r_precision": {name: round(float(value), 4) for name, value in r_precision.items()},
            "sentences": len(train_set.dev_sentences), "types": list(train_set.dev_types)}


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
