"""Contrastive training of the projection head (torch, imported only here and only when training runs).

Anchors are the projected type descriptions; positives are mentions of that type; negatives are
mentions of other types, a share of them hard. :func:`train_head` fits a :class:`TrainConfig` on a
:class:`TrainingData` and returns a numpy :class:`ner_os.head.ProjectionHead`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from ner_os.errors import ConfigError, NerOsError
from ner_os.head import DESCRIPTIONS_READ, MAP_NAMES, OFFSET_NAMES, ProjectionHead, l2_normalise, transform_input

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

