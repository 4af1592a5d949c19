"""Per-mention raw value vectors of a dataset, read once through :class:`ner_os.mentions.embedder.MentionEmbedder`
and kept in the one on-disk cache (:class:`ner_os.mentions.cache.VectorCache`).

Anchors are the type descriptions (``type_names.json``), run through the same encoder and read at
the description's last token; positives are mentions of that type; negatives are mentions of other
types. Encoding dominates the cost, so value vectors are read once per dataset (one truncated pass
reads several layers) and cached under ``<cache_dir>/mention-vectors/``, keyed by the model, the
texts and the spans; each layer is one file, so a later request for a new layer encodes again but
a request for cached layers never does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from ner_os.encoder.export import numerics_id
from ner_os.errors import ConfigError
from ner_os.mentions.cache import MENTION_VECTORS, VectorCache
from ner_os.mentions.embedder import MentionEmbedder
from ner_os.mentions.positions import description_text
from ner_os.training.data import LabelledText

UNLABELLED = -1
CACHE_FORMAT = 1
TRAINING_DTYPE = "fp32"  # the numerics every training vector is read in, whatever the loader's default



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



def flatten_spans(texts: Sequence[LabelledText]) -> MentionVectors:
    """Every span of ``texts`` as one row (text index, start, end, label index), no vectors yet."""
    labels = sorted({label for t in texts for _, _, label in t.spans if label is not None})
    index = {label: i for i, label in enumerate(labels)}
    rows = [(i, start, end, index[label] if label is not None else UNLABELLED)
            for i, t in enumerate(texts) for start, end, label in t.spans]
    columns = np.asarray(rows, dtype=np.int64).reshape(-1, 4)
    return MentionVectors(columns[:, 0], columns[:, 1], columns[:, 2], columns[:, 3], labels)


def model_key(settings, dtype: str = TRAINING_DTYPE) -> dict[str, Any]:
    """What the cached value vectors depend on besides texts and layers (fp32 from torch or ONNX: one key)."""
    key = {"profile": settings.profile, "model": settings.model, "weights_dtype": TRAINING_DTYPE}
    return key if dtype == TRAINING_DTYPE else {**key, "numerics": numerics_id(dtype)}


def mention_vector_cache(settings, dtype: str = TRAINING_DTYPE) -> VectorCache:
    """The cache of per-mention vectors under the settings' cache dir, in ``dtype``."""
    return VectorCache(settings.cache_dir, MENTION_VECTORS, model_key(settings, dtype))


def dataset_content(texts: Sequence[LabelledText]) -> dict:
    """What a dataset's cache entry is keyed by: its texts and their spans."""
    return {"texts": [t.text for t in texts], "spans": [t.spans for t in texts]}


def layer_array(layer: int) -> str:
    return f"L{layer}"


def mention_vectors(cache: VectorCache, texts: Sequence[LabelledText], layers: Sequence[int],
                    encoder_factory: Callable[[Sequence[int]], Any], batch_texts: int = 256,
                    description: str = "encoding") -> MentionVectors:
    """The vectors of every span of ``texts`` at ``layers``, from ``cache``; the layers it lacks are encoded.

    ``encoder_factory(layers)`` is called only on a miss; it returns an encoder whose
    ``encode_layers(texts, layers)`` reads all the missing layers in one pass.
    """
    entry = cache.entry(dataset_content(texts))
    mentions = flatten_spans(texts)
    wanted = sorted(set(layers))
    missing = [layer for layer in wanted if not cache.has(entry, layer_array(layer))]
    if missing:
        started = time.perf_counter()
        encoded = encode_mentions(encoder_factory(missing), texts, missing, batch_texts, description)
        seconds = time.perf_counter() - started
        cache.write(entry, {layer_array(layer): array for layer, array in encoded.items()})
        _record_pass(cache, entry, texts, mentions, missing, seconds)
    stored = cache.read(entry, [layer_array(layer) for layer in wanted])
    for layer in wanted:
        mentions.vectors[layer] = stored[layer_array(layer)]
        if len(mentions.vectors[layer]) != len(mentions):
            raise ConfigError(f"{entry}/{layer_array(layer)}.npy: {len(mentions.vectors[layer])} rows, expected "
                              f"{len(mentions)}; delete the folder to rebuild it")
    return mentions


def _record_pass(cache: VectorCache, entry: Path, texts, mentions: MentionVectors, layers, seconds: float) -> None:
    """Append an encoding pass (layers, seconds, characters, date) to the entry's ``meta.json``."""
    meta = cache.read_meta(entry) or {
        "format": CACHE_FORMAT, "model": cache.identity, "texts": len(texts), "mentions": len(mentions),
        "label_names": mentions.label_names, "passes": [],
    }
    n_chars = sum(len(t.text) for t in texts)
    meta["passes"].append({"layers": list(layers), "seconds": round(seconds, 1), "characters": n_chars,
                           "date": time.strftime("%Y-%m-%dT%H:%M:%S")})
    cache.write_meta(entry, meta)


def encode_mentions(encoder, texts: Sequence[LabelledText], layers: Sequence[int], batch_texts: int = 256,
                    description: str = "encoding") -> dict[int, np.ndarray]:
    """The raw value vector at each span's last token, for every layer, in span order: ``{layer: [n, d_v]}``.

    Read by :meth:`MentionEmbedder.raw_layers` (no head). Texts go to the encoder longest first in
    groups of ``batch_texts``, so its token-budget batches hold texts of similar length.
    """
    embedder = MentionEmbedder(encoder)
    order = sorted((i for i, t in enumerate(texts) if t.spans), key=lambda i: -len(texts[i].text))
    per_text: dict[int, dict[int, np.ndarray]] = {}
    with tqdm(total=sum(len(texts[i].text) for i in order), unit="char", unit_scale=True, desc=description) as bar:
        for begin in range(0, len(order), batch_texts):
            group = order[begin:begin + batch_texts]
            spans = [[(start, end) for start, end, _ in texts[i].spans] for i in group]
            per_text.update(zip(group, embedder.raw_layers([texts[i].text for i in group], spans, layers)))
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

