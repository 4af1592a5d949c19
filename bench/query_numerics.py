"""Queries in other numerics than the documents: type descriptions encoded in int8 (or fp16) against
mention vectors stored in fp32, and what it does to R-Precision.

A query is one short text, so the encoder reads each weight once for a few tokens: it is bound by
memory, not arithmetic, and int8 weights (a quarter of the bytes of most matmuls) cut a description's
time by ~40 % on a 2-core CPU. Documents stay fp32. This bench asks what that costs in ranking, on:

- the dev folds of ``bench/layers.py`` (held-out train types; the recipe trained per fold without
  them, on the fp32 vectors of 6,000 train sentences, scored over 2,000 dev sentences), and
- Few-NERD INTER test (17 types never trained on; shipped head): gold spans, the default detector's
  spans, and a seeded 2,000-sentence lowercased subset (as ``bench/spans.py``).

Only the descriptions are re-encoded per numerics; every mention vector is the same fp32 one.
Writes ``bench/results/query_numerics.json``:

    python bench/query_numerics.py --data ../shared/data/fewnerd-inter
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import RESULTS, load_average, write_result

import spans as span_bench  # bench/spans.py: the test corpus, its detection and its R-Precision
from layers import LAYER_SENTENCES, Folds
from ner_os.config import Settings
from ner_os.encoder import Encoder
from ner_os.evaluation.readers import TYPE_NAMES_FILE, read_type_names
from ner_os.mentions.cache import token_vector_cache
from ner_os.mentions.embedder import MentionEmbedder
from ner_os.mentions.positions import description_text
from ner_os.mentions.proxy import EncoderProxy
from ner_os.training import DataPlan, TrainConfig, load_train_set, train_head
from ner_os.training.dev import dev_evaluator

DTYPES = ("fp32", "int8")


def description_rows(settings: Settings, dtype: str, type_names: dict[str, str], types: list[str], layer: int
                     ) -> np.ndarray:
    embedder = MentionEmbedder(Encoder.from_settings(settings, dtype=dtype))
    texts, spans = zip(*(description_text(type_names[t]) for t in types))
    return np.stack([item[layer][0] for item in embedder.raw_layers(list(texts), [[s] for s in spans], [layer])])


def dev_folds(settings: Settings, data: str, layer: int, dtypes: tuple[str, ...]) -> dict:
    train_set = load_train_set(settings, data, [layer], DataPlan(n_train=LAYER_SENTENCES), phrases=True)
    folds = Folds(train_set).folds
    queries = {dtype: description_rows(settings, dtype, train_set.type_names, train_set.types, layer)
               for dtype in dtypes}
    rows_of = {label: i for i, label in enumerate(train_set.types)}
    per_fold = []
    for fold in folds:
        tasks = fold.dev_tasks()
        rows = [rows_of[label] for label in fold.dev_types]
        evaluators = {dtype: dev_evaluator(tasks, layer, fold.dev_types, queries[dtype][rows]) for dtype in dtypes}
        identity = {"profile": "bench", "layer": layer, "d_v": int(train_set.mentions.vectors[layer].shape[1])}
        head = train_head(fold.training_data(layer, hold_out_dev=True), TrainConfig(), identity, progress=False).head
        per_fold.append({"dev_types": fold.dev_types,
                         **{dtype: {key: round(value, 4) for key, value in evaluate(head).items()}
                            for dtype, evaluate in evaluators.items()}})
    mean = {dtype: round(float(np.mean([fold[dtype]["dev"] for fold in per_fold])), 4) for dtype in dtypes}
    return {"mean_dev_r_precision": mean, "folds": per_fold}


def fewnerd_test(settings: Settings, dtypes: tuple[str, ...], lower_sentences: int, seed: int) -> dict:
    encoder = EncoderProxy(Encoder.from_settings(settings), remember=True)
    cache = token_vector_cache(settings, encoder)
    documents = MentionEmbedder.from_settings(settings, encoder=encoder)
    test, _, lower = span_bench.test_corpora(settings, encoder, cache, lower_sentences, seed)
    type_names = read_type_names(span_bench.FEWNERD / TYPE_NAMES_FILE)
    types = sorted({label for labels in test.labels for label in labels})
    pools = {"gold": (test, "gold"), "detected": (test, span_bench.DEFAULT),
             "gold_lower_subset": (lower, "gold"), "detected_lower_subset": (lower, span_bench.DEFAULT)}
    out = {}
    for dtype in dtypes:
        queries = dict(zip(types, MentionEmbedder.from_settings(settings.replace(dtype=dtype))
                           .embed_types([type_names[t] for t in types])))
        out[dtype] = {name: span_bench.r_precision(corpus, source, documents, queries)["macro"]
                      for name, (corpus, source) in pools.items()}
    return {"macro_r_precision": out, "lowercased_subset": {"sentences": len(lower.texts), "seed": seed}}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the Few-NERD INTER folder")
    parser.add_argument("--query-dtypes", default="int8", help="numerics compared with fp32 queries, e.g. int8,fp16")
    parser.add_argument("--lower-sentences", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS / "query_numerics.json"))
    args = parser.parse_args(argv)
    started, load_before = time.perf_counter(), load_average()
    settings = Settings.resolve(dtype="fp32")
    layer = MentionEmbedder.from_settings(settings).head.encoder["layer"]
    dtypes = ("fp32", *(d for d in args.query_dtypes.split(",") if d and d != "fp32"))
    dev = dev_folds(settings, args.data, layer, dtypes)
    print("dev folds:", dev["mean_dev_r_precision"], flush=True)
    test = fewnerd_test(settings, dtypes, args.lower_sentences, args.seed)
    print("test:", test["macro_r_precision"], flush=True)
    changes = {dtype: {"dev_folds": round(dev["mean_dev_r_precision"][dtype] - dev["mean_dev_r_precision"]["fp32"], 4),
                       **{name: round(value - test["macro_r_precision"]["fp32"][name], 4)
                          for name, value in test["macro_r_precision"][dtype].items()}}
               for dtype in dtypes if dtype != "fp32"}
    result = {"documents": "fp32", "layer": layer, "change_against_fp32_queries": changes,
              "dev_folds": dev, "fewnerd_test": test, "load_average_before": load_before}
    return write_result(args.out, result, "bench/query_numerics.py", argv, started)


if __name__ == "__main__":
    main()
