"""int8 documents (issue #17): does the int8 encoder keep R-Precision within 0.01 of fp32?

The product's own path for each numerics (``Settings(dtype=...)``: the ONNX encoder in fp32 or in int8,
the shipped head; descriptions encoded by the same encoder), exact cosine ranking over one vector per
gold mention, a document's score its best mention's. Two corpora, one run:

- ``fewnerd_test``: all Few-NERD INTER test sentences, the 17 test types (zero-shot);
- ``dev``: a seeded sample of train slice 2, its train types (the numerics question on other
  sentences and types; the head saw these types, so the level is optimistic, the delta is the point);
- ``dev_folds``: the dev folds of ``bench/layers.py`` (held-out train types; a head trained per fold on
  the fp32 vectors of 6,000 train sentences, as the shipped head is trained on fp32 vectors), scored over
  the fold's 2,000 dev sentences with their mentions and the descriptions in fp32, then in int8.

    python bench/int8_quality.py [--dev-sentences 4000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import FEWNERD, RESULTS, load_average, write_result
from layers import LAYER_SENTENCES, Folds

from ner_os.config import Settings
from ner_os.evaluation.corpus import eval_types, read_corpus
from ner_os.evaluation.metrics import ExactRanker, evaluate
from ner_os.evaluation.readers import read_type_names
from ner_os.mentions.embedder import MentionEmbedder
from ner_os.training import DataPlan, TrainConfig, load_train_set, train_head

DTYPES = ("fp32", "int8")


def gold_span_report(embedder, documents, types):
    """The evaluation report of exact cosine ranking over ``embedder``'s vectors of the gold mentions."""
    vectors = embedder.embed([d.text for d in documents], [d.gold_spans for d in documents])
    owners = [d.id for d, rows in zip(documents, vectors) for _ in range(len(rows))]
    ranker = ExactRanker(np.concatenate(vectors), owners)
    rankings = ranker.rank_many(embedder.embed_types([t.description for t in types]), top_n=ranker.n_documents)
    return evaluate({t.label: r.doc_ids for t, r in zip(types, rankings)}, {t.label: t.relevant for t in types})


def r_precision(embedder: MentionEmbedder, documents, types) -> dict:
    report = gold_span_report(embedder, documents, types)
    return {"macro": round(report.macro["r_precision"], 4),
            "per_type": {t.label: round(report.per_type[t.label].r_precision, 4) for t in types}}


def dev_folds(data: str, layer: int) -> dict:
    """Mean dev R-Precision over the folds, each fold's head trained on fp32 vectors, scored per numerics."""
    settings = Settings.resolve()
    plan = DataPlan(n_train=LAYER_SENTENCES)
    folds = {dtype: Folds(load_train_set(settings, data, [layer], plan, dtype=dtype)).folds for dtype in DTYPES}
    per_fold = []
    for scored in zip(*(folds[dtype] for dtype in DTYPES)):
        fold = scored[0]  # fp32: the head is trained on its vectors
        assert all(other.dev_types == fold.dev_types for other in scored), "the numerics' folds differ"
        identity = {"profile": "bench", "layer": layer, "d_v": int(fold.mentions.vectors[layer].shape[1])}
        head = train_head(fold.training_data(layer, hold_out_dev=True), TrainConfig(), identity, progress=False).head
        per_fold.append({"dev_types": fold.dev_types,
                         **{dtype: round(other.dev_evaluator(layer)(head)["dev"], 4) for dtype, other in zip(DTYPES, scored)}})
        print("dev fold", per_fold[-1], flush=True)
    return {"macro": {dtype: round(float(np.mean([fold[dtype] for fold in per_fold])), 4) for dtype in DTYPES},
            "folds": per_fold}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(FEWNERD))
    parser.add_argument("--dev-sentences", type=int, default=4000)
    parser.add_argument("--out", default=str(RESULTS / "int8_quality.json"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    names = read_type_names(f"{args.data}/type_names.json")
    corpora = {"fewnerd_test": read_corpus(f"{args.data}/inter_test.txt"),
               "dev": read_corpus(f"{args.data}/inter_train_slice2.txt", limit=args.dev_sentences, seed=7)}
    result: dict = {"corpora": {}, "seconds_to_embed": {}}
    for dtype in DTYPES:
        embedder = MentionEmbedder.from_settings(Settings.resolve(dtype=dtype, query_dtype=dtype))
        for name, documents in corpora.items():
            documents = [d for d in documents if d.gold]
            begun = time.perf_counter()
            scores = r_precision(embedder, documents, eval_types(documents, names))
            result["seconds_to_embed"][f"{name}.{dtype}"] = round(time.perf_counter() - begun, 1)
            row = result["corpora"].setdefault(name, {"documents": len(documents)})
            row[dtype] = scores
            print(name, dtype, scores["macro"], flush=True)
    layer = embedder.head.encoder["layer"]
    folds = dev_folds(args.data, layer)
    result["corpora"]["dev_folds"] = {"sentences": "6,000 train + 2,000 dev a fold", "folds": folds["folds"],
                                      **{dtype: {"macro": folds["macro"][dtype]} for dtype in DTYPES}}
    for row in result["corpora"].values():
        row["delta"] = round(row["int8"]["macro"] - row["fp32"]["macro"], 4)
        row["within_0_01"] = abs(row["delta"]) <= 0.01
    result["load_average"] = load_average()
    return write_result(args.out, result, "bench/int8_quality.py", argv, started)


if __name__ == "__main__":
    main()
