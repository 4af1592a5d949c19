"""The encoded Few-NERD train subsample: gold mentions of the train and dev sentences, the descriptions,
and what to train on and measure with them (:class:`FewNerdTrainSet`, made by
:func:`ner_os.training.run.load_train_set`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ner_os.head import ProjectionHead
from ner_os.training.data import choose_dev_types
from ner_os.training.dev import RetrievalTask, dev_evaluator, dev_tasks
from ner_os.training.fit import TrainingData
from ner_os.training.vectors import MentionVectors


@dataclass
class FewNerdTrainSet:
    """The encoded train subsample: gold mentions of the train and dev sentences, and the descriptions."""

    type_names: dict[str, str]
    dev_types: list[str]
    train_sentences: np.ndarray  # indices into the encoded texts
    dev_sentences: np.ndarray
    mentions: MentionVectors  # gold mentions of all encoded texts
    descriptions: MentionVectors  # one row per type, in label order
    data_files: dict[str, str]  # file name -> sha256
    phrases: MentionVectors | None = None  # each distinct mention surface read alone (no context)
    phrase_rows: np.ndarray | None = None  # per mention: its row in ``phrases``

    @property
    def types(self) -> list[str]:
        return sorted(self.type_names)

    def anchors(self, layer: int, types: Sequence[str]) -> np.ndarray:
        return self.descriptions.of_labels(layer, types)

    def training_data(self, layer: int, hold_out_dev: bool) -> TrainingData:
        """Train-type mentions of the train sentences, or (final head) every mention of both parts."""
        names = np.asarray(self.mentions.label_of(), dtype=object)
        if hold_out_dev:
            types = [label for label in self.types if label not in self.dev_types]
            rows = np.isin(self.mentions.sentence_ids, self.train_sentences) & np.isin(names, types)
        else:
            types = self.types
            rows = np.isin(names, types)
        return self.rows_training_data(layer, rows, types)

    def train_sentence_data(self, layer: int) -> TrainingData:
        """Every typed mention of the train sentences, whatever its type (a corpus split by sentence,
        whose dev sentences hold the same types: :mod:`ner_os.training.corpus`)."""
        names = np.asarray(self.mentions.label_of(), dtype=object)
        typed = np.asarray([name is not None for name in names], dtype=bool)
        rows = np.isin(self.mentions.sentence_ids, self.train_sentences) & typed
        return self.rows_training_data(layer, rows, sorted(set(names[rows])))

    def rows_training_data(self, layer: int, rows: np.ndarray, types: Sequence[str]) -> TrainingData:
        """The mentions at ``rows`` (boolean, all of ``types``), labelled by their index in ``types``."""
        names = np.asarray(self.mentions.label_of(), dtype=object)
        types = list(types)
        index = {label: i for i, label in enumerate(types)}
        labels = np.asarray([index[name] for name in names[rows]], dtype=np.int64)
        in_context = self.mentions.vectors[layer][rows]
        pairs = None if self.phrases is None else (self.phrases.vectors[layer][self.phrase_rows[rows]], in_context)
        return TrainingData(in_context, labels, self.anchors(layer, types), types, pairs)

    def refold(self, dev_seed: int, n_dev: int | None = None) -> "FewNerdTrainSet":
        """The same encoded sentences with other dev types (:func:`choose_dev_types` with ``dev_seed``).

        Dev sentences: up to ``n_dev`` (default: as many as now) of those holding a new dev type;
        train sentences: all that hold none. Several folds average out which types happen to be dev:
        with 8 dev types one fold's score moves by a few hundredths between types.
        """
        names = np.asarray(self.mentions.label_of(), dtype=object)
        counts = {label: int(np.sum(names == label)) for label in self.types}
        dev_types = choose_dev_types(counts, dev_seed)
        n_texts = int(self.mentions.sentence_ids.max()) + 1 if len(self.mentions) else 0
        holds_dev = np.zeros(n_texts, dtype=bool)
        holds_dev[self.mentions.sentence_ids[np.isin(names, dev_types)]] = True
        rng = np.random.default_rng(dev_seed)
        dev = np.sort(rng.permutation(np.flatnonzero(holds_dev))[: n_dev or len(self.dev_sentences)])
        return dataclasses.replace(self, dev_types=dev_types, train_sentences=np.flatnonzero(~holds_dev),
                                   dev_sentences=dev)

    def dev_tasks(self) -> dict[str, RetrievalTask]:
        """:func:`ner_os.training.dev.dev_tasks` over the dev sentences, for the dev types."""
        return dev_tasks(self.mentions, self.dev_sentences, self.dev_types)

    def dev_evaluator(self, layer: int, centroid_queries: bool = False
                      ) -> Callable[[ProjectionHead | None], dict[str, float]]:
        """Dev retrieval for a head (None: raw vectors), queried by the dev types' descriptions
        (see :func:`ner_os.training.dev.dev_evaluator`; ``centroid_queries``: the ceiling)."""
        return dev_evaluator(self.dev_tasks(), layer, self.dev_types, self.anchors(layer, self.dev_types),
                             centroid_queries)
