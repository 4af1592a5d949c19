"""Few-NERD INTER train data: labelled sentences, the dev types held out of the 36 train types, and the split.

Data: the Few-NERD INTER train slices (36 fine types; the 17 test types never appear labelled).
Dev types held out of the 36 choose the loss and the hyper-parameters (``bench/layers.py``); the
test types are only touched by ``bench/head.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from ner_os.errors import ConfigError
from ner_os.evaluation.readers import TYPE_NAMES_FILE, read_bio

TRAIN_FILES = ("inter_train_slice1.txt", "inter_train_slice2.txt")
TEST_FILE = "inter_test.txt"

__all__ = ["TRAIN_FILES", "TEST_FILE", "TYPE_NAMES_FILE", "LabelledText", "read_sentences", "coarse_type",
           "choose_dev_types", "SentenceSplit", "split_sentences", "DataPlan", "label_counts"]


@dataclass(frozen=True)
class LabelledText:
    """One sentence with spans ``(start, end, label)``; label None for a span without a type."""

    text: str
    spans: tuple[tuple[int, int, str | None], ...]


def read_sentences(paths: Iterable[str | Path]) -> list[LabelledText]:
    sentences = []
    for path in paths:
        if not Path(path).is_file():
            raise ConfigError(f"{path}: not found")
        for sentence in read_bio(path):
            spans = tuple((m.start, m.end, m.label) for m in sentence.mentions)
            sentences.append(LabelledText(sentence.text, spans))
    return sentences


def label_counts(sentences: Iterable[LabelledText]) -> dict[str, int]:
    """Spans per label (None for untyped spans)."""
    counts: dict[str, int] = {}
    for sentence in sentences:
        for _, _, label in sentence.spans:
            counts[label] = counts.get(label, 0) + 1
    return counts

def coarse_type(label: str) -> str:
    return label.split("_", 1)[0]


def choose_dev_types(label_counts: Mapping[str, int], seed: int) -> list[str]:
    """One held-out type per coarse category, drawn with ``seed`` among all but the category's largest.

    The largest type of each category (location_GPE holds a third of all mentions) stays in
    training: holding it out would starve training more than it would inform the choice.
    """
    rng = np.random.default_rng(seed)
    by_coarse: dict[str, list[str]] = {}
    for label in sorted(label_counts):
        by_coarse.setdefault(coarse_type(label), []).append(label)
    dev = []
    for coarse in sorted(by_coarse):
        labels = sorted(by_coarse[coarse], key=lambda label: (-label_counts[label], label))
        if len(labels) > 1:
            dev.append(str(rng.choice(labels[1:])))
    return sorted(dev)


@dataclass(frozen=True)
class SentenceSplit:
    train: list[int]  # sentence indices to train on: no mention of a dev type
    dev: list[int]  # sentence indices for dev retrieval: each holds a mention of a dev type
    dev_types: list[str]


def split_sentences(sentences: Sequence[LabelledText], dev_types: Sequence[str], n_train: int | None, n_dev: int,
                    seed: int) -> SentenceSplit:
    """A fixed, seeded subsample: ``n_train`` sentences free of dev types (None: all), ``n_dev`` holding one.

    Training sentences never contain a dev-type entity, labelled or not, so the dev measurement is
    as zero-shot as the test one.
    """
    dev_set = set(dev_types)
    with_dev = [i for i, s in enumerate(sentences) if any(label in dev_set for _, _, label in s.spans)]
    without_dev = [i for i, s in enumerate(sentences) if not any(label in dev_set for _, _, label in s.spans)]
    rng = np.random.default_rng(seed)
    dev = sorted(rng.permutation(with_dev)[:n_dev].tolist())
    train = sorted(rng.permutation(without_dev)[:n_train].tolist())
    return SentenceSplit(train=train, dev=dev, dev_types=list(dev_types))



@dataclass(frozen=True)
class DataPlan:
    """Which Few-NERD train sentences are encoded, and which types and sentences are held out as dev."""

    n_train: int | None = None  # None: every sentence free of dev types (20,186 of the 24,722)
    n_dev: int = 2000
    dev_seed: int = 13
