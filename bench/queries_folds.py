"""Dev folds with heads that never saw their dev types, for bench/queries_boolean.py.

The shipped head was trained on all 36 Few-NERD train types, the dev types included, so scores of
dev types through it are better separated than a user's zero-shot type would be. Here each fold of
bench/layers.py (the plan's dev types, then two seeded draws) gets a head trained with the shipped
recipe (:class:`ner_os.training.TrainConfig` defaults) on a small draw of its train sentences, the dev
types held out. Each fold's pool: every gold mention of its dev sentences and of as many other
train-slice sentences (background, at natural prevalence), projected by the fold's head.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from _common import FEWNERD
from ner_os.head import encoder_identity
from ner_os.mentions.embedder import MentionEmbedder
from ner_os.training import DataPlan, TrainConfig, load_train_set, train_head
from ner_os.training.data import TRAIN_FILES, read_sentences, split_sentences

FOLD_SEEDS = (1, 2)  # bench/layers.py: besides the plan's own dev types


@dataclasses.dataclass
class FoldPool:
    """One fold: its dev descriptions, an embedder with its head, and the pool of mentions it scores."""

    dev_descriptions: list[str]
    embedder: MentionEmbedder
    doc_ids: list[str]
    vectors: np.ndarray
    raw: np.ndarray  # the value vectors the head projected
    tags: list[set]
    texts: dict[str, str]
    spans: list[tuple[int, int]]


def chosen_texts(plan: DataPlan, sentences, dev_types) -> list[str]:
    """The texts load_train_set encodes, in its order (its mention vectors' sentence ids index them)."""
    split = split_sentences(sentences, dev_types, plan.n_train, plan.n_dev, plan.dev_seed)
    return [sentences[i].text for i in sorted(split.train + split.dev)]


def fold_pools(settings, encoder, type_names: dict, n_train: int, n_dev: int, layer: int) -> list[FoldPool]:
    from layers import Folds  # bench/layers.py

    plan = DataPlan(n_train=n_train, n_dev=n_dev)
    train_set = load_train_set(settings, FEWNERD, [layer], plan)
    sentences = read_sentences([FEWNERD / name for name in TRAIN_FILES])
    texts = chosen_texts(plan, sentences, train_set.dev_types)
    mentions = train_set.mentions
    names = mentions.label_of()
    identity = encoder_identity(encoder)
    out = []
    for fold in Folds(train_set).folds:
        head = train_head(fold.training_data(layer, hold_out_dev=True), TrainConfig(), identity, progress=False).head
        background = np.random.default_rng(0).permutation(fold.train_sentences)[:len(fold.dev_sentences)]
        sentence_ids = set(int(s) for s in np.concatenate([fold.dev_sentences, background]))
        rows = np.asarray([i for i, s in enumerate(mentions.sentence_ids) if int(s) in sentence_ids])
        out.append(FoldPool(
            dev_descriptions=[type_names[label] for label in fold.dev_types],
            embedder=MentionEmbedder(encoder, head),
            doc_ids=[f"s{int(mentions.sentence_ids[r])}" for r in rows],
            vectors=head.project(mentions.vectors[layer][rows], "mention"),
            raw=mentions.vectors[layer][rows],
            tags=[{type_names[names[r]]} if names[r] else set() for r in rows],
            texts={f"s{s}": texts[s] for s in sorted(sentence_ids)},
            spans=[(int(mentions.starts[r]), int(mentions.ends[r])) for r in rows]))
    return out
