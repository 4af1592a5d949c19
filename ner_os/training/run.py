"""Few-NERD INTER end to end: read the train slices, encode them (cached), train a head at the settings' layer."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ner_os.digest import file_sha256
from ner_os.encoder import Encoder
from ner_os.errors import ConfigError
from ner_os.evaluation.readers import read_type_names
from ner_os.mentions.positions import description_text
from ner_os.profiles import resolve_profile
from ner_os.training.data import (
    TRAIN_FILES, TYPE_NAMES_FILE, DataPlan, LabelledText, SentenceSplit, choose_dev_types, label_counts,
    read_sentences, split_sentences,
)
from ner_os.training.fit import TrainConfig, TrainResult, train_head
from ner_os.training.trainset import FewNerdTrainSet
from ner_os.training.vectors import (TRAINING_DTYPE, ReadAlone, description_texts, mention_phrases, mention_vector_cache,
                                     mention_vectors)


def encoder_factory(settings, backend: str = "torch", dtype: str = TRAINING_DTYPE) -> Callable[[Sequence[int]], Any]:
    """Loads the encoder truncated after the deepest requested layer (only on a cache miss): torch, which
    reads several layers in one pass, or (one layer) the settings' ONNX export. fp32 whatever the loader's
    default: heads are trained on fp32 vectors (the shipped head's recipe); another ``dtype`` (ONNX, one
    layer) only to measure heads on vectors in other numerics, keyed apart in the mention-vector cache."""

    def load(layers: Sequence[int]):
        return Encoder.load(profile=settings.profile, model=settings.model, layer=max(layers), backend=backend,
                            device=settings.device, dtype=dtype, cache_dir=settings.cache_dir)

    return load


def load_train_set(settings, data_dir: str | Path, layers: Sequence[int], plan: DataPlan = DataPlan(),
                   phrases: bool = False, read_alone: ReadAlone = description_text,
                   dtype: str = TRAINING_DTYPE) -> FewNerdTrainSet:
    """Read the INTER train slices, pick the dev types and sentences, and get their value vectors (cached).

    ``phrases``: also each distinct mention surface read alone, which a query map is fit on;
    ``read_alone``: how a description or a surface is read alone (another way only to measure it);
    ``dtype``: the vectors' numerics (another than fp32 through ONNX, one layer: to measure, not to train).
    """
    data_dir = Path(data_dir)
    type_names = read_type_names(data_dir / TYPE_NAMES_FILE)
    paths = [data_dir / name for name in TRAIN_FILES]
    sentences = read_sentences(paths)
    counts = label_counts(sentences)
    unnamed = sorted(set(counts) - set(type_names))
    if unnamed:
        raise ConfigError(f"{data_dir / TYPE_NAMES_FILE}: no description for {', '.join(unnamed)}")
    type_names = {label: type_names[label] for label in sorted(counts)}
    dev_types = choose_dev_types(counts, plan.dev_seed)
    split = split_sentences(sentences, dev_types, plan.n_train, plan.n_dev, plan.dev_seed)
    data_files = {path.name: file_sha256(path) for path in paths + [data_dir / TYPE_NAMES_FILE]}
    backend = "torch" if dtype == TRAINING_DTYPE else "onnx"
    return encode_train_set(settings, sentences, type_names, split, data_files, layers,
                            encoder_factory(settings, backend, dtype), phrases, read_alone, dtype)


def encode_train_set(settings, sentences: Sequence[LabelledText], type_names: dict[str, str], split: SentenceSplit,
                     data_files: dict[str, str], layers: Sequence[int], factory: Callable[[Sequence[int]], Any],
                     phrases: bool = False, read_alone: ReadAlone = description_text,
                     dtype: str = TRAINING_DTYPE) -> FewNerdTrainSet:
    """The value vectors (cached) of the split's sentences' gold mentions, of the type descriptions and,
    with ``phrases``, of each mention surface read alone: a :class:`FewNerdTrainSet` over them."""
    order = sorted(split.train + split.dev)
    chosen = [sentences[i] for i in order]
    position = {s: i for i, s in enumerate(order)}
    cache = mention_vector_cache(settings, dtype)
    mentions = mention_vectors(cache, chosen, layers, factory, description="encoding train sentences")
    descriptions = mention_vectors(cache, description_texts(type_names, read_alone), layers, factory,
                                   description="encoding type descriptions")
    phrase_vectors = phrase_rows = None
    if phrases:
        phrase_texts, phrase_rows = mention_phrases(chosen, read_alone)
        phrase_vectors = mention_vectors(cache, phrase_texts, layers, factory, description="encoding mentions read alone")
    return FewNerdTrainSet(
        type_names=type_names,
        dev_types=list(split.dev_types),
        train_sentences=np.asarray([position[i] for i in split.train], dtype=np.int64),
        dev_sentences=np.asarray([position[i] for i in split.dev], dtype=np.int64),
        mentions=mentions,
        descriptions=descriptions,
        data_files=data_files,
        phrases=phrase_vectors,
        phrase_rows=phrase_rows,
    )


def train_on_fewnerd(settings, data_dir: str | Path, config: TrainConfig = TrainConfig(), hold_out_dev: bool = False,
                     plan: DataPlan = DataPlan(), progress: bool = True) -> TrainResult:
    """Train a head on Few-NERD INTER train types at the settings' layer (all 36 types unless ``hold_out_dev``).

    With ``hold_out_dev`` the dev types and sentences are left out and measured after every epoch.
    """
    profile = resolve_profile(settings.profile, settings.model, settings.layer)
    layer = profile.layer
    train_set = load_train_set(settings, data_dir, [layer], plan, phrases=config.query_map_ridge > 0)
    data = train_set.training_data(layer, hold_out_dev)
    evaluate = train_set.dev_evaluator(layer) if hold_out_dev else None
    identity = {"profile": settings.profile, "model": profile.model, "layer": layer,
                "d_v": int(data.mentions.shape[1])}
    provenance = {
        "data": "Few-NERD INTER (Ding et al., ACL 2021), CC BY-SA 4.0",
        "data_files": train_set.data_files,
        "plan": dataclasses.asdict(plan),
        "dev_types": train_set.dev_types,
        "held_out_dev": hold_out_dev,
    }
    result = train_head(data, config, identity, evaluate, provenance, progress)
    if evaluate is not None:
        result.head.manifest["training"]["dev"] = result.history[-1]
    return result
