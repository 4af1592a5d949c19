"""The span detector retrained on a user's corpus (``ner-os train --data FILE --spans``).

The corpus's gold spans, whatever their type, are the mentions to find: the train sentences are
encoded cased and lowercased (:func:`ner_os.training.spans.lower_same_length`, the shipped
detector's augmentation), labelled per token (:class:`ner_os.training.spans.TokenSet`) and the
tagger is fitted (:func:`ner_os.training.spans.fit_tagger`) -- starting from the detector shipped
for the profile when it reads this encoder, so a few hundred sentences adapt it rather than
replace it, else from scratch. The dev sentences (cased and lowercased) are scored with the
project's span metric for the new detector and the shipped one. The corpus must label every
mention a user wants found: an entity left ``O`` teaches the detector to skip its kind.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ner_os.evaluation.metrics import span_scores
from ner_os.spans.base import Span
from ner_os.spans.encoder_detector import EncoderSpanDetector, decode, shipped_directory
from ner_os.training.data import SentenceSplit
from ner_os.training.spans import (
    DetectorRecord, SpanTrainConfig, TokenSet, fit_tagger, lower_same_length, save_trained, tagger_from,
)

FINE_TUNE_LR = 3e-4  # starting from the shipped detector: a gentler step than training from scratch
CASINGS = ("cased", "lower")


@dataclass
class TrainedDetector:
    """The fitted tensors, their config and record (what :func:`ner_os.training.spans.save_trained` writes)."""

    tensors: dict[str, np.ndarray]
    config: SpanTrainConfig
    record: DetectorRecord
    started_from: str  # "shipped <digest>" or "scratch"

    def save(self, directory: str | Path) -> EncoderSpanDetector:
        return save_trained(directory, self.tensors, self.config, self.record)


def shipped_detector(identity: Mapping[str, Any]) -> EncoderSpanDetector | None:
    """The detector shipped for the encoder's profile, when it was trained on this layer and width."""
    if not (shipped_directory(identity["profile"]) / "manifest.json").is_file():
        return None
    detector = EncoderSpanDetector.for_profile(identity["profile"])
    trained = detector.manifest.get("encoder", {})
    if (trained.get("layer"), trained.get("d_v")) != (identity["layer"], identity["d_v"]):
        return None
    return detector


def encoded_casings(encoder, texts: Sequence[str], layer: int) -> dict[str, tuple[list[str], list, list]]:
    """Per casing: the texts, their value vectors at ``layer`` and their token offsets (one pass each)."""
    out = {}
    for casing in CASINGS:
        shown = list(texts) if casing == "cased" else [lower_same_length(text) for text in texts]
        items = encoder.encode_layers(shown, [layer]) if shown else []
        out[casing] = (shown, [np.asarray(item[layer], np.float32) for item in items],
                       [np.asarray(item.offsets) for item in items])
    return out


def train_corpus_detector(corpus, split: SentenceSplit, encoder, layer: int, identity: Mapping[str, Any],
                          log=print) -> TrainedDetector:
    """Fit the detector on the train sentences' gold spans (cased and lowercased); score it and the
    shipped one on the dev sentences."""
    gold = [[(start, end) for start, end, _ in sentence.spans] for sentence in corpus.sentences]
    start = shipped_detector(identity)
    config = SpanTrainConfig()
    init = None
    if start is not None:
        architecture = start.manifest["architecture"]
        config = dataclasses.replace(config, window=tuple(architecture["window"]), hidden_dim=architecture["hidden_dim"],
                                     activation=architecture.get("activation", "gelu"), lr=FINE_TUNE_LR)
        init = start.tagger.tensors
    train = encoded_casings(encoder, [corpus.sentences[i].text for i in split.train], layer)
    train_gold = [gold[i] for i in split.train]
    data = TokenSet.concat([TokenSet.build(texts, vectors, offsets, train_gold) for texts, vectors, offsets in train.values()])
    tensors = fit_tagger(data, config, log=log, init=init)
    threshold = start.end_threshold if start is not None else 0.5
    figures = {}
    if split.dev:
        dev = encoded_casings(encoder, [corpus.sentences[i].text for i in split.dev], layer)
        dev_gold = [[Span(a, b) for a, b in gold[i]] for i in split.dev]
        figures = {"dev": {"trained": dev_scores(tagger_from(tensors, config), dev, dev_gold, threshold)}}
        if start is not None:
            figures["dev"]["shipped"] = dev_scores(start.tagger, dev, dev_gold, threshold)
    data_record = {**corpus.data_files, "train_sentences": len(split.train), "dev_sentences": len(split.dev),
                   "tokens": int(len(data.vectors)), "spans": int(sum(len(g) for g in train_gold)),
                   "casings": list(CASINGS)}
    record = DetectorRecord(encoder=dict(identity), data=data_record,
                            decoding={"end_threshold": threshold, "max_tokens": 16}, figures=figures)
    started_from = f"shipped {start.manifest.get('digest', '?')[:12]}" if start is not None else "scratch"
    record.data["started_from"] = started_from
    return TrainedDetector(tensors, config, record, started_from)


def dev_scores(tagger, encoded: Mapping[str, tuple], gold: Sequence[Sequence[Span]], threshold: float) -> dict:
    """Same-end recall, precision (same end) and spans per sentence, per casing."""
    out = {}
    for casing, (texts, vectors, offsets) in encoded.items():
        probabilities = tagger.probabilities_many(list(zip(vectors, offsets, texts)))
        found = [decode(p, o, t, threshold) for p, o, t in zip(probabilities, offsets, texts)]
        scores = span_scores(gold, found)
        out[casing] = {"same_end_recall": round(scores.recall_same_end, 4),
                       "precision_same_end": round(scores.precision_same_end, 4),
                       "spans_per_sentence": round(scores.spans_per_text, 3),
                       "gold_per_sentence": round(scores.gold_per_text, 3)}
    return out
