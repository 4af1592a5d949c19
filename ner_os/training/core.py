"""Contrastive training of the projection head (torch), and the cached value vectors it learns from.

Data: the Few-NERD INTER train slices (36 fine types; the 17 test types never appear labelled).
Anchors are the projected type descriptions (``type_names.json``), run through the same encoder
and read at the description's last token; positives are mentions of that type; negatives are
mentions of other types, a share of them hard. Dev types held out of the 36 choose the loss and
the hyper-parameters (``bench/layers.py``); the test types are only touched by ``bench/head.py``.

Encoding dominates the cost, so value vectors are read once per dataset (one truncated pass reads
several layers) and cached as ``.npy`` under ``<cache_dir>/mention-vectors/``, keyed by the model,
the texts and the spans; each layer is one file, so a later request for a new layer encodes again
but a request for cached layers never does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from ner_os.errors import ConfigError, NerOsError
from ner_os.head import DESCRIPTIONS_READ, ProjectionHead, l2_normalise
from ner_os.mentions.embedder import description_text, last_token_indices

log = logging.getLogger(__name__)

TRAIN_FILES = ("inter_train_slice1.txt", "inter_train_slice2.txt")
TEST_FILE = "inter_test.txt"
TYPE_NAMES_FILE = "type_names.json"
UNLABELLED = -1
CACHE_FORMAT = 1


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class LabelledText:
    """One sentence with spans ``(start, end, label)``; label None for a span without a type."""

    text: str
    spans: tuple[tuple[int, int, str | None], ...]


def read_type_names(data_dir: str | Path) -> dict[str, str]:
    path = Path(data_dir) / TYPE_NAMES_FILE
    if not path.is_file():
        raise ConfigError(f"{path}: not found (the Few-NERD INTER folder holds {TYPE_NAMES_FILE})")
    try:
        names = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}: not valid JSON ({error.msg}, line {error.lineno})") from None
    if not isinstance(names, dict) or not all(isinstance(v, str) and v.strip() for v in names.values()):
        raise ConfigError(f"{path}: expected an object mapping each label to a plain-words description")
    return names


def read_sentences(paths: Iterable[str | Path]) -> list[LabelledText]:
    from ner_os.evaluation.readers import read_bio

    sentences = []
    for path in paths:
        if not Path(path).is_file():
            raise ConfigError(f"{path}: not found")
        for sentence in read_bio(path):
            spans = tuple((m.start, m.end, m.label) for m in sentence.mentions)
            sentences.append(LabelledText(sentence.text, spans))
    return sentences


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


# --------------------------------------------------------------------------- cached value vectors


@dataclass
class MentionVectors:
    """Per-mention raw value vectors of one dataset, with where each mention sits and its label."""

    sentence_ids: np.ndarray  # int64 [n]: index of the text each mention belongs to
    starts: np.ndarray  # int64 [n]
    ends: np.ndarray  # int64 [n]
    labels: np.ndarray  # int64 [n]: index into label_names, UNLABELLED for untyped spans
    label_names: list[str]
    vectors: dict[int, np.ndarray] = field(default_factory=dict)  # layer -> float32 [n, d_v]

    def __len__(self) -> int:
        return len(self.sentence_ids)

    def subset(self, rows: np.ndarray) -> "MentionVectors":
        return MentionVectors(self.sentence_ids[rows], self.starts[rows], self.ends[rows], self.labels[rows],
                              self.label_names, {layer: v[rows] for layer, v in self.vectors.items()})

    def label_of(self, rows: np.ndarray | None = None) -> list[str | None]:
        labels = self.labels if rows is None else self.labels[rows]
        return [self.label_names[i] if i != UNLABELLED else None for i in labels]

    def of_labels(self, layer: int, labels: Sequence[str]) -> np.ndarray:
        """The vectors at ``layer`` of the first mention of each label, in the order given (one row per
        label where each text holds one labelled span, as the description texts do)."""
        names = self.label_of()
        return self.vectors[layer][[names.index(label) for label in labels]]

    def gold_and_detected(self) -> dict[str, "MentionVectors"]:
        """``gold``: the labelled mentions; ``detected``: the unlabelled ones (spans a detector found)."""
        labelled = self.labels != UNLABELLED
        return {"gold": self.subset(np.flatnonzero(labelled)), "detected": self.subset(np.flatnonzero(~labelled))}


def _digest(*parts: Any) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(json.dumps(part, sort_keys=True, ensure_ascii=False).encode())
        hasher.update(b"\x00")
    return hasher.hexdigest()


def _flatten_spans(texts: Sequence[LabelledText]) -> MentionVectors:
    labels = sorted({label for t in texts for _, _, label in t.spans if label is not None})
    index = {label: i for i, label in enumerate(labels)}
    rows = [(i, start, end, index[label] if label is not None else UNLABELLED)
            for i, t in enumerate(texts) for start, end, label in t.spans]
    columns = np.asarray(rows, dtype=np.int64).reshape(-1, 4)
    return MentionVectors(columns[:, 0], columns[:, 1], columns[:, 2], columns[:, 3], labels)


class VectorCache:
    """Per-mention value vectors under ``<root>/<model key>/<texts+spans key>/L<layer>.npy``.

    ``encoder_factory(layers)`` is called only on a miss; it returns an encoder whose
    ``encode_layers(texts, layers)`` reads all the missing layers in one pass.
    """

    def __init__(self, root: str | Path, model_key: Mapping[str, Any]):
        self.root = Path(root)
        self.model_key = dict(model_key)

    def directory(self, texts: Sequence[LabelledText]) -> Path:
        model = _digest(self.model_key)[:16]
        data = _digest([t.text for t in texts], [list(map(list, t.spans)) for t in texts])[:24]
        return self.root / model / data

    def load(self, texts: Sequence[LabelledText], layers: Sequence[int],
             encoder_factory: Callable[[Sequence[int]], Any], batch_texts: int = 256,
             description: str = "encoding") -> MentionVectors:
        directory = self.directory(texts)
        mentions = _flatten_spans(texts)
        missing = [layer for layer in sorted(set(layers)) if not (directory / f"L{layer}.npy").is_file()]
        if missing:
            started = time.perf_counter()
            encoder = encoder_factory(missing)
            encoded = encode_mentions(encoder, texts, missing, batch_texts, description)
            seconds = time.perf_counter() - started
            directory.mkdir(parents=True, exist_ok=True)
            for layer, array in encoded.items():
                _save_atomic(directory / f"L{layer}.npy", array)
            self._write_meta(directory, texts, mentions, missing, seconds)
        for layer in sorted(set(layers)):
            mentions.vectors[layer] = np.load(directory / f"L{layer}.npy")
            if len(mentions.vectors[layer]) != len(mentions):
                raise ConfigError(f"{directory}/L{layer}.npy: {len(mentions.vectors[layer])} rows, expected "
                                  f"{len(mentions)}; delete the folder to rebuild it")
        return mentions

    def _write_meta(self, directory: Path, texts, mentions: MentionVectors, layers, seconds: float) -> None:
        meta_path = directory / "meta.json"
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {
            "format": CACHE_FORMAT, "model": self.model_key, "texts": len(texts), "mentions": len(mentions),
            "label_names": mentions.label_names, "passes": [],
        }
        n_chars = sum(len(t.text) for t in texts)
        meta["passes"].append({"layers": list(layers), "seconds": round(seconds, 1), "characters": n_chars,
                               "date": time.strftime("%Y-%m-%dT%H:%M:%S")})
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")


def _save_atomic(path: Path, array: np.ndarray) -> None:
    partial = path.with_suffix(".partial.npy")
    np.save(partial, array)
    partial.replace(path)


def encode_mentions(encoder, texts: Sequence[LabelledText], layers: Sequence[int], batch_texts: int = 256,
                    description: str = "encoding") -> dict[int, np.ndarray]:
    """The value vector at each span's last token, for every layer, in span order: ``{layer: [n, d_v]}``.

    Texts go to the encoder longest first in groups of ``batch_texts``, so its token-budget batches
    hold texts of similar length.
    """
    from tqdm.auto import tqdm

    order = sorted((i for i, t in enumerate(texts) if t.spans), key=lambda i: -len(texts[i].text))
    per_text: dict[int, dict[int, np.ndarray]] = {}
    with tqdm(total=sum(len(texts[i].text) for i in order), unit="char", unit_scale=True, desc=description) as bar:
        for begin in range(0, len(order), batch_texts):
            group = order[begin:begin + batch_texts]
            encoded = encoder.encode_layers([texts[i].text for i in group], layers=list(layers))
            for i, item in zip(group, encoded):
                rows = last_token_indices(item.offsets, [(s, e) for s, e, _ in texts[i].spans], texts[i].text)
                per_text[i] = {layer: np.asarray(item[layer], dtype=np.float32)[rows] for layer in layers}
            bar.update(sum(len(texts[i].text) for i in group))
    out = {}
    for layer in layers:
        parts = [per_text[i][layer] for i in range(len(texts)) if i in per_text]
        out[layer] = np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, 0), np.float32)
    return out


ReadAlone = Callable[[str], tuple[str, tuple[int, int]]]  # phrase -> (text to encode, its span in it)


def mention_phrases(texts: Sequence[LabelledText], read_alone: ReadAlone = description_text
                    ) -> tuple[list[LabelledText], np.ndarray]:
    """Each distinct mention surface as a text of its own (read alone, like a description), and per
    mention of ``texts`` (in span order) the index of its surface among them."""
    surfaces = [t.text[start:end] for t in texts for start, end, _ in t.spans]
    distinct = sorted(set(surfaces))
    index = {surface: i for i, surface in enumerate(distinct)}
    phrase_texts = []
    for surface in distinct:
        text, (start, end) = read_alone(surface)
        phrase_texts.append(LabelledText(text, ((start, end, None),)))
    return phrase_texts, np.asarray([index[surface] for surface in surfaces], dtype=np.int64)


def description_texts(type_names: Mapping[str, str], read_alone: ReadAlone = description_text) -> list[LabelledText]:
    """Each type description as a text whose one span is the whole description, labelled with its type."""
    out = []
    for label in sorted(type_names):
        text, (start, end) = read_alone(type_names[label])
        out.append(LabelledText(text, ((start, end, label),)))
    return out


# --------------------------------------------------------------------------- retrieval on cached vectors


def project(head: ProjectionHead | None, raw: np.ndarray, role: str = "mention") -> np.ndarray:
    """Raw value vectors -> unit vectors: through ``head`` in ``role``, or L2-normalised when None."""
    return head.project(raw, role) if head is not None else l2_normalise(raw)


@dataclass
class RetrievalTask:
    """Rank documents for each query type by their best mention; relevant = holds a gold mention of it."""

    mentions: MentionVectors  # the mention pool searched (gold or detected spans); sentence_ids = documents
    relevant_docs: dict[str, np.ndarray]

    def evaluate(self, layer: int, query_vectors: Mapping[str, np.ndarray],
                 project: Callable[[np.ndarray], np.ndarray] | None = None):
        """Exact cosine search (:class:`ner_os.evaluation.metrics.ExactRanker`) -> a ``RetrievalReport``."""
        from ner_os.evaluation.metrics import ExactRanker, evaluate

        project = project or l2_normalise
        ranker = ExactRanker(project(self.mentions.vectors[layer]), [str(d) for d in self.mentions.sentence_ids])
        labels = sorted(query_vectors)
        rankings = ranker.rank_many(np.stack([query_vectors[label] for label in labels]), top_n=ranker.n_documents)
        relevance = {label: {str(d) for d in self.relevant_docs[label]} for label in labels}
        return evaluate({label: ranking.doc_ids for label, ranking in zip(labels, rankings)}, relevance)


def relevant_documents(gold: MentionVectors, types: Iterable[str]) -> dict[str, np.ndarray]:
    names = gold.label_of()
    out = {}
    for label in types:
        rows = np.asarray([name == label for name in names], dtype=bool)
        out[label] = np.unique(gold.sentence_ids[rows])
    return out


# --------------------------------------------------------------------------- training


def _option(default, help: str, choices: Sequence[str] = ()):
    return field(default=default, metadata={"help": help, "choices": tuple(choices)})


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run (defaults: the values chosen on the dev types)."""

    hidden_dim: int = _option(500, "Width of the hidden layer")
    out_dim: int = _option(500, "Width of the output (the indexed vector)")
    dropout: float = _option(0.1, "Dropout after the hidden layer, in training only")
    input_norm: str = _option("none", "rms: divide each value vector by its root mean square first; none: raw",
                              ("none", "rms"))
    centering: str = _option("per-role", "per-role: subtract the training mentions' mean from mentions and the type "
                                         "descriptions' mean from descriptions; none: raw input", ("per-role", "none"))
    query_map_ridge: float = _option(0.0, "Ridge strength of the map from phrases read alone to the same phrases "
                                          "in context, applied to descriptions (0: no map)")
    skip_weight: float = _option(0.5, "Weight of the centred input beside the MLP output in the joint space "
                                      "(0: the MLP output alone)")
    loss: str = _option("infonce", "infonce: softmax over the type anchors; triplet: cosine distance with a margin",
                        ("infonce", "triplet"))
    temperature: float = _option(0.05, "Softmax temperature of infonce and of the mention-mention term")
    margin: float = _option(0.5, "Triplet margin on cosine distance")
    mention_weight: float = _option(0.5, "Weight of the supervised-contrastive mention-mention term (0: off)")
    mentions_per_type: int = _option(32, "Mentions sampled per type per step (its anchor's positives)")
    negatives_per_type: int = _option(32, "Triplet: negatives per anchor")
    hard_share: float = _option(0.5, "Triplet: share of those negatives that are the closest to the anchor")
    hard_pairs_per_type: int = _option(0, "Per type per step: a confusable mention and its nearest wrong-type "
                                          "neighbour in raw space")
    neighbours: int = _option(10, "Raw-space neighbours searched for confusable pairs")
    lr: float = _option(2e-4, "AdamW learning rate")
    weight_decay: float = _option(1e-4, "AdamW weight decay")
    epochs: int = _option(1, "Epochs (an epoch samples about as many mentions as there are)")
    seed: int = _option(0, "Seed of initialisation, sampling and dropout")

    def __post_init__(self):
        for spec in dataclasses.fields(self):
            if spec.metadata["choices"] and getattr(self, spec.name) not in spec.metadata["choices"]:
                raise ConfigError(f"{spec.name} {getattr(self, spec.name)!r}: expected one of "
                                  f"{', '.join(spec.metadata['choices'])}")
        if self.query_map_ridge < 0:
            raise ConfigError(f"query_map_ridge {self.query_map_ridge}: must not be negative")
        if not 0 <= self.skip_weight < 1:
            raise ConfigError(f"skip_weight {self.skip_weight}: expected 0 <= w < 1")
        if not 0 <= self.hard_share <= 1:
            raise ConfigError(f"hard_share {self.hard_share}: expected a share between 0 and 1")
        for name in ("hidden_dim", "out_dim", "mentions_per_type", "epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} {getattr(self, name)}: must be at least 1")


@dataclass
class TrainingData:
    """Raw value vectors of labelled mentions and of the type descriptions, at one layer."""

    mentions: np.ndarray  # float32 [n, d_v]
    labels: np.ndarray  # int64 [n], index into types
    anchors: np.ndarray  # float32 [n_types, d_v]: the raw description vectors
    types: list[str]
    # (read alone, read in context): value vectors of the same phrases, one row per training mention
    phrase_pairs: tuple[np.ndarray, np.ndarray] | None = None
    _pairs: dict = field(default_factory=dict, repr=False)
    _transforms: dict = field(default_factory=dict, repr=False)

    def input_transforms(self, config: "TrainConfig") -> dict[str, np.ndarray]:
        """The head's per-role input tensors (:data:`ner_os.head.OFFSET_NAMES`, ``MAP_NAMES``), by name.

        A description read alone at the start of a text and a mention read in context sit in
        different regions of value space. Each role's own mean is taken away; then, with
        ``phrase_pairs``, a ridge map from phrases read alone to the same phrases in context carries
        descriptions over (fit on thousands of mentions, so it does not depend on the few types).
        """
        from ner_os.head import MAP_NAMES, OFFSET_NAMES

        key = (config.centering, config.query_map_ridge)
        if key in self._transforms:
            return self._transforms[key]
        out = {}
        if config.centering == "per-role":
            out[OFFSET_NAMES["mention"]] = _mean(self.mentions)
            out[OFFSET_NAMES["query"]] = _mean(self.anchors)
        if config.query_map_ridge:
            if self.phrase_pairs is None:
                raise ConfigError("a query map (query_map_ridge > 0) is fit on mentions read alone and in context; "
                                  "this training data has no such pairs")
            out[MAP_NAMES["query"]] = ridge_map(*self.phrase_pairs, config.query_map_ridge)
        self._transforms[key] = out
        return out

    def transformed(self, config: "TrainConfig") -> tuple[np.ndarray, np.ndarray]:
        """Mentions and anchors through :meth:`input_transforms`, as the head will see them."""
        from ner_os.head import transform_input

        tensors = self.input_transforms(config)
        return (transform_input(self.mentions, tensors, "mention").astype(np.float32),
                transform_input(self.anchors, tensors, "query").astype(np.float32))

    def confusable_pairs(self, neighbours: int) -> np.ndarray:
        """:func:`confusable_pairs` of these mentions, computed once per neighbour count."""
        if neighbours not in self._pairs:
            self._pairs[neighbours] = confusable_pairs(self.mentions, self.labels, neighbours)
        return self._pairs[neighbours]


def _mean(rows: np.ndarray) -> np.ndarray:
    return np.asarray(rows, dtype=np.float64).mean(axis=0).astype(np.float32)


def ridge_map(alone: np.ndarray, in_context: np.ndarray, strength: float) -> np.ndarray:
    """``[d, d]`` least-squares map from centred ``alone`` rows to centred ``in_context`` rows.

    Ridge penalty ``strength * trace(G) / d`` (G = the centred Gram matrix), so the strength does
    not depend on the scale of the vectors.
    """
    x = np.asarray(alone, dtype=np.float64)
    y = np.asarray(in_context, dtype=np.float64)
    x, y = x - x.mean(axis=0), y - y.mean(axis=0)
    gram = x.T @ x
    penalty = strength * np.trace(gram) / len(gram)
    return np.linalg.solve(gram + penalty * np.eye(len(gram)), x.T @ y).astype(np.float32)


def confusable_pairs(vectors: np.ndarray, labels: np.ndarray, neighbours: int, chunk: int = 2048) -> np.ndarray:
    """``[m, 2]`` pairs (mention, its nearest wrong-type mention) where that one is among its raw top-k.

    These are the hard negatives: mentions whose raw value vectors sit closer to another type's
    mention than most of their own type's do.
    """
    unit = l2_normalise(vectors)
    pairs = []
    k = min(neighbours, len(unit) - 1)
    if k < 1:
        return np.zeros((0, 2), dtype=np.int64)
    for begin in range(0, len(unit), chunk):
        similarities = unit[begin:begin + chunk] @ unit.T
        rows = np.arange(begin, min(begin + chunk, len(unit)))
        similarities[rows - begin, rows] = -np.inf
        top = np.argpartition(-similarities, k - 1, axis=1)[:, :k]
        top_similarity = np.take_along_axis(similarities, top, axis=1)
        top = np.take_along_axis(top, np.argsort(-top_similarity, axis=1, kind="stable"), axis=1)
        wrong = labels[top] != labels[rows][:, None]
        has_wrong = wrong.any(axis=1)
        first_wrong = top[np.arange(len(rows)), wrong.argmax(axis=1)]
        pairs.append(np.stack([rows[has_wrong], first_wrong[has_wrong]], axis=1))
    return np.concatenate(pairs).astype(np.int64)


class _Sampler:
    """Seeded batches: every type's anchor with ``mentions_per_type`` of its mentions, plus hard pairs."""

    def __init__(self, labels: np.ndarray, n_types: int, pairs: np.ndarray, config: TrainConfig):
        self.rng = np.random.default_rng(config.seed)
        self.config = config
        self.by_type = [np.flatnonzero(labels == t) for t in range(n_types)]
        self.pairs_by_type = [pairs[labels[pairs[:, 0]] == t] for t in range(n_types)]
        self.present = [t for t in range(n_types) if len(self.by_type[t])]

    def steps_per_epoch(self, n_mentions: int) -> int:
        per_step = self.config.mentions_per_type * len(self.present)
        return max(1, int(np.ceil(n_mentions / per_step)))

    def batch(self) -> np.ndarray:
        rows = []
        for t in self.present:
            members = self.by_type[t]
            k = self.config.mentions_per_type
            rows.append(self.rng.choice(members, size=k, replace=len(members) < k))
            pairs = self.pairs_by_type[t]
            if self.config.hard_pairs_per_type and len(pairs):
                chosen = self.rng.choice(len(pairs), size=self.config.hard_pairs_per_type,
                                         replace=len(pairs) < self.config.hard_pairs_per_type)
                rows.append(pairs[chosen].reshape(-1))
        return np.concatenate(rows)


def _head_module(d_v: int, config: TrainConfig):
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Head(nn.Module):
        # parameter names match ner_os.head.PARAMETER_NAMES
        def __init__(self):
            super().__init__()
            self.hidden = nn.Linear(d_v, config.hidden_dim)
            self.dropout = nn.Dropout(config.dropout)
            self.output = nn.Linear(config.hidden_dim, config.out_dim)

        def forward(self, x):
            """Centred input -> the joint vector of :meth:`ner_os.head.ProjectionHead.project`."""
            if config.input_norm == "rms":
                x = x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + 1e-12)
            projected = self.output(self.dropout(nn.functional.silu(self.hidden(x))))
            if not config.skip_weight:
                return projected
            w = config.skip_weight
            return torch.cat([w ** 0.5 * F.normalize(x, dim=-1), (1 - w) ** 0.5 * F.normalize(projected, dim=-1)], -1)

    return Head()


def _loss(z, labels, anchors, config: TrainConfig, generator):
    """The anchor term (infonce or triplet) plus the weighted mention-mention term, on unit vectors."""
    import torch.nn.functional as F

    z = F.normalize(z, dim=-1)
    anchors = F.normalize(anchors, dim=-1)
    if config.loss == "infonce":
        anchor_term = F.cross_entropy(z @ anchors.T / config.temperature, labels)
    else:
        anchor_term = _triplet(z, labels, anchors, config, generator)
    if config.mention_weight == 0:
        return anchor_term
    return anchor_term + config.mention_weight * _supervised_contrastive(z, labels, config.temperature)


def _triplet(z, labels, anchors, config: TrainConfig, generator):
    """Mean of relu(d(a, p) - d(a, n) + margin), d = 1 - cosine, over each anchor's positives x negatives.

    Negatives per anchor: the ``hard_share`` closest to the anchor in the current space, the rest
    drawn at random from the other negatives of the batch.
    """
    import torch

    distances = 1 - anchors @ z.T  # [n_types, batch]
    terms = []
    for t in torch.unique(labels).tolist():
        row = distances[t]
        positives = row[labels == t]
        negatives = row[labels != t]
        if len(negatives) == 0:
            continue
        n_neg = min(config.negatives_per_type, len(negatives))
        n_hard = int(round(config.hard_share * n_neg))
        order = torch.argsort(negatives.detach())  # closest first
        hard, rest = order[:n_hard], order[n_hard:]
        random = rest[torch.randperm(len(rest), generator=generator)[: n_neg - n_hard]]
        chosen = negatives[torch.cat([hard, random])]
        terms.append(torch.relu(positives[:, None] - chosen[None, :] + config.margin).mean())
    return torch.stack(terms).mean()


def _supervised_contrastive(z, labels, temperature: float):
    """Khosla et al.'s SupCon: each mention pulls the batch's same-type mentions, softmax over the rest."""
    import torch

    similarities = z @ z.T / temperature
    self_mask = torch.eye(len(z), dtype=torch.bool)
    similarities = similarities.masked_fill(self_mask, float("-inf"))
    log_probabilities = similarities - torch.logsumexp(similarities, dim=1, keepdim=True)
    positives = (labels[:, None] == labels[None, :]) & ~self_mask
    counts = positives.sum(dim=1)
    has_positive = counts > 0
    summed = log_probabilities.masked_fill(~positives, 0).sum(dim=1)
    return -(summed[has_positive] / counts[has_positive]).mean()


@dataclass
class TrainResult:
    head: ProjectionHead
    history: list[dict[str, float]]  # per epoch: loss, and dev scores when an evaluator was given
    seconds: float


def train_head(data: TrainingData, config: TrainConfig, encoder_identity: Mapping[str, Any],
               evaluate: Callable[[ProjectionHead], Mapping[str, float]] | None = None,
               provenance: Mapping[str, Any] | None = None, progress: bool = True) -> TrainResult:
    """Train a head on ``data``; ``evaluate(head)`` (dev retrieval) runs after every epoch when given."""
    if len(data.types) < 2:
        raise NerOsError("training needs mentions of at least two types")
    started = time.perf_counter()
    with _seeded_torch(config.seed):
        history, module = _fit(data, config, encoder_identity, evaluate, provenance, progress)
    head = _to_head(module, config, encoder_identity, data, provenance)
    return TrainResult(head=head, history=history, seconds=time.perf_counter() - started)


@contextlib.contextmanager
def _seeded_torch(seed: int):
    """Seeded torch on one CPU thread inside; the caller's RNG state and thread count restored after.

    One thread makes the CPU kernels used here (linear layers, reductions) run in a fixed order, so
    a seed gives the same head bit for bit; the head is small, and on a busy CPU intra-op threads
    spin and slow it down many-fold.
    """
    import torch

    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


def _fit(data: TrainingData, config: TrainConfig, encoder_identity, evaluate, provenance, progress: bool):
    import torch
    from tqdm.auto import tqdm

    generator = torch.Generator().manual_seed(config.seed)
    d_v = data.mentions.shape[1]
    module = _head_module(d_v, config)
    optimiser = torch.optim.AdamW(module.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    mentions, anchors = (torch.from_numpy(np.ascontiguousarray(array)) for array in data.transformed(config))
    labels = torch.from_numpy(data.labels.astype(np.int64))
    pairs = data.confusable_pairs(config.neighbours) if config.hard_pairs_per_type else np.zeros((0, 2), np.int64)
    sampler = _Sampler(data.labels, len(data.types), pairs, config)
    steps = sampler.steps_per_epoch(len(data.labels))
    history = []
    bar = tqdm(total=config.epochs * steps, desc="training head", unit="step", disable=not progress)
    for epoch in range(1, config.epochs + 1):
        module.train()
        losses = []
        for _ in range(steps):
            rows = torch.from_numpy(sampler.batch())
            projected = module(torch.cat([anchors, mentions[rows]]))
            loss = _loss(projected[len(anchors):], labels[rows], projected[: len(anchors)], config, generator)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
            bar.update(1)
        record = {"epoch": epoch, "loss": float(np.mean(losses))}
        if evaluate is not None:
            record.update(evaluate(_to_head(module, config, encoder_identity, data, provenance)))
        bar.set_postfix({k: round(v, 4) for k, v in record.items() if k != "epoch"})
        history.append(record)
    bar.close()
    return history, module


def _to_head(module, config: TrainConfig, encoder_identity, data: TrainingData, provenance) -> ProjectionHead:
    weights = {name: tensor.detach().cpu().numpy().copy() for name, tensor in module.state_dict().items()}
    weights.update(data.input_transforms(config))
    manifest = {
        "encoder": dict(encoder_identity),
        "architecture": {"dropout": config.dropout, "input_norm": config.input_norm, "skip_weight": config.skip_weight},
        "training": {"config": dataclasses.asdict(config), "types": list(data.types),
                     "mentions": int(len(data.labels)), "descriptions_read": DESCRIPTIONS_READ,
                     **dict(provenance or {})},
    }
    return ProjectionHead(weights, manifest)


# --------------------------------------------------------------------------- Few-NERD INTER end to end


@dataclass(frozen=True)
class DataPlan:
    """Which Few-NERD train sentences are encoded, and which types and sentences are held out as dev."""

    n_train: int | None = None  # None: every sentence free of dev types (20,186 of the 24,722)
    n_dev: int = 2000
    dev_seed: int = 13


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
        """Dev retrieval over the dev sentences, for the dev types' descriptions.

        ``dev_only``: the pool holds only dev-type mentions (like the gold-span test, where only
        unseen types are labelled); ``dev_all``: every gold mention of those sentences, train types
        included (like detected spans, where seen types sit among the candidates).
        """
        in_dev = np.isin(self.mentions.sentence_ids, self.dev_sentences)
        dev_rows = np.flatnonzero(in_dev)
        local = {int(s): i for i, s in enumerate(self.dev_sentences)}
        pool = self.mentions.subset(dev_rows)
        pool.sentence_ids = np.asarray([local[int(s)] for s in pool.sentence_ids], dtype=np.int64)
        relevant = relevant_documents(pool, self.dev_types)
        of_dev_type = np.flatnonzero(np.isin(np.asarray(pool.label_of(), dtype=object), self.dev_types))
        return {"dev_only": RetrievalTask(pool.subset(of_dev_type), relevant), "dev_all": RetrievalTask(pool, relevant)}

    def dev_evaluator(self, layer: int, centroid_queries: bool = False
                      ) -> Callable[[ProjectionHead | None], dict[str, float]]:
        """Dev retrieval for a head (None: raw vectors), queried by the dev types' descriptions.

        ``centroid_queries``: queried instead by the mean of each dev type's projected gold mentions
        -- not a query anyone could write, but the ceiling of placing descriptions in this space.
        """
        tasks = self.dev_tasks()
        raw_queries = self.anchors(layer, self.dev_types)
        gold = tasks["dev_only"].mentions
        gold_labels = np.asarray(gold.label_of(), dtype=object)

        def queries_for(head: ProjectionHead | None) -> dict[str, np.ndarray]:
            if not centroid_queries:
                return dict(zip(self.dev_types, project(head, raw_queries, "query")))
            vectors = project(head, gold.vectors[layer])
            return {label: l2_normalise(vectors[gold_labels == label].mean(axis=0)) for label in self.dev_types}

        def evaluate(head: ProjectionHead | None) -> dict[str, float]:
            queries = queries_for(head)
            scores = {name: task.evaluate(layer, queries, lambda x: project(head, x)).macro["r_precision"]
                      for name, task in tasks.items()}
            scores["dev"] = float(np.mean(list(scores.values())))
            return scores

        return evaluate


def file_sha256(path: str | Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


def model_key(settings) -> dict[str, Any]:
    """What the cached value vectors depend on besides texts and layers."""
    return {"profile": settings.profile, "model": settings.model, "weights_dtype": "fp32"}


def vector_cache(settings) -> VectorCache:
    return VectorCache(Path(settings.cache_dir) / "mention-vectors", model_key(settings))


def encoder_factory(settings) -> Callable[[Sequence[int]], Any]:
    """Loads the torch encoder truncated after the deepest requested layer (only on a cache miss)."""

    def load(layers: Sequence[int]):
        from ner_os.encoder.runtime import Encoder

        return Encoder.load(profile=settings.profile, model=settings.model, layer=max(layers), backend="torch",
                            device=settings.device, cache_dir=settings.cache_dir)

    return load


def load_train_set(settings, data_dir: str | Path, layers: Sequence[int], plan: DataPlan = DataPlan(),
                   phrases: bool = False, read_alone: ReadAlone = description_text) -> FewNerdTrainSet:
    """Read the INTER train slices, pick the dev types and sentences, and get their value vectors (cached).

    ``phrases``: also each distinct mention surface read alone, which a query map is fit on;
    ``read_alone``: how a description or a surface is read alone (another way only to measure it).
    """
    data_dir = Path(data_dir)
    type_names = read_type_names(data_dir)
    paths = [data_dir / name for name in TRAIN_FILES]
    sentences = read_sentences(paths)
    counts: dict[str, int] = {}
    for sentence in sentences:
        for _, _, label in sentence.spans:
            counts[label] = counts.get(label, 0) + 1
    unnamed = sorted(set(counts) - set(type_names))
    if unnamed:
        raise ConfigError(f"{data_dir / TYPE_NAMES_FILE}: no description for {', '.join(unnamed)}")
    type_names = {label: type_names[label] for label in sorted(counts)}
    dev_types = choose_dev_types(counts, plan.dev_seed)
    split = split_sentences(sentences, dev_types, plan.n_train, plan.n_dev, plan.dev_seed)
    chosen = sorted(split.train + split.dev)
    position = {s: i for i, s in enumerate(chosen)}
    cache = vector_cache(settings)
    factory = encoder_factory(settings)
    mentions = cache.load([sentences[i] for i in chosen], layers, factory, description="encoding train sentences")
    descriptions = cache.load(description_texts(type_names, read_alone), layers, factory, description="encoding type descriptions")
    phrase_vectors = phrase_rows = None
    if phrases:
        phrase_texts, phrase_rows = mention_phrases([sentences[i] for i in chosen], read_alone)
        phrase_vectors = cache.load(phrase_texts, layers, factory, description="encoding mentions read alone")
    return FewNerdTrainSet(
        type_names=type_names,
        dev_types=dev_types,
        train_sentences=np.asarray([position[i] for i in split.train], dtype=np.int64),
        dev_sentences=np.asarray([position[i] for i in split.dev], dtype=np.int64),
        mentions=mentions,
        descriptions=descriptions,
        data_files={path.name: file_sha256(path) for path in paths + [data_dir / TYPE_NAMES_FILE]},
        phrases=phrase_vectors,
        phrase_rows=phrase_rows,
    )


def train_on_fewnerd(settings, data_dir: str | Path, config: TrainConfig = TrainConfig(), hold_out_dev: bool = False,
                     plan: DataPlan = DataPlan(), progress: bool = True) -> TrainResult:
    """Train a head on Few-NERD INTER train types at the settings' layer (all 36 types unless ``hold_out_dev``).

    With ``hold_out_dev`` the dev types and sentences are left out and measured after every epoch.
    """
    from ner_os.profiles import resolve_profile

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
