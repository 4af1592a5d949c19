"""Which mentions of a hit to mark: the margin below a document's best mention that still counts.

A hit comes back with its best-scoring mentions (``mentions_per_hit``, 3 by default), and most
documents also hold mentions of other types: marking all three marks many off-type ones. The rule
measured here keeps the mentions that score at least ``best - margin`` (mention scores as
OpenSearch gives them for ``cosinesimil``: ``(1 + cosine) / 2``). For each margin: over the top 10
documents of every query, the share of marked mentions that are of the query's type (precision),
the share of the on-type mentions among each document's top 3 that are marked (recall), and F1.

The margin is chosen on the dev folds of ``bench/layers.py`` (held-out train types, every gold
mention of the dev sentences, the shipped recipe trained per fold without them) by the
one-standard-error rule, which leans to marking more when margins are within noise; the 17 test types
(shipped head; gold spans, and detected spans -- on type when they overlap a gold mention of the
type) are only reported. Writes ``bench/results/highlight.json``:

    python bench/highlight.py --data ../shared/data/fewnerd-inter
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _common import RESULTS, write_result
from head import test_vectors
from layers import Folds

from ner_os.config import Settings
from ner_os.evaluation.metrics import ExactRanker
from ner_os.head import ProjectionHead, shipped_head_path
from ner_os.profiles import resolve_profile
from ner_os.query import within_margin
from ner_os.registered_types import knn_scores
from ner_os.training import DataPlan, TrainConfig, load_train_set, train_head

MARGINS = (None, 0.2, 0.16, 0.14, 0.12, 0.1, 0.08, 0.06, 0.04, 0.02, 0.0)  # None: mark every returned mention
TOP_DOCUMENTS = 10
MENTIONS_PER_HIT = 3


class MarkingCounts:
    """Marked, marked on-type and on-type mentions per margin, summed over queries."""

    def __init__(self):
        self.counts = {margin: np.zeros(4, dtype=np.int64) for margin in MARGINS}

    def add_query(self, scores: np.ndarray, rows_of: dict[str, np.ndarray], ranking: list[str],
                  on_type: np.ndarray) -> None:
        """``scores``, ``on_type``: per mention of the pool, for one query; ``rows_of``: each document's
        mention rows; ``ranking``: the query's top documents."""
        for document in ranking:
            rows = rows_of[document]
            rows = rows[np.argsort(-scores[rows], kind="stable")][:MENTIONS_PER_HIT]
            for margin in MARGINS:
                marked = within_margin(scores[rows], margin) if margin is not None else np.ones(len(rows), bool)
                self.counts[margin] += [int(marked.sum()), int((marked & on_type[rows]).sum()),
                                        int(on_type[rows].sum()), 1]

    def table(self) -> dict:
        out = {}
        for margin, (marked, marked_on, on, documents) in self.counts.items():
            precision = marked_on / max(marked, 1)
            recall = marked_on / max(on, 1)
            out["all" if margin is None else str(margin)] = {
                "precision": round(precision, 4), "recall": round(recall, 4),
                "f1": round(2 * precision * recall / max(precision + recall, 1e-12), 4),
                "marked_per_document": round(marked / max(documents, 1), 3)}
        return out


def add_queries(counts: MarkingCounts, head: ProjectionHead, pool_vectors: np.ndarray, documents: np.ndarray,
                query_vectors: np.ndarray, on_type: np.ndarray) -> None:
    """``on_type``: [mentions, queries] booleans."""
    units, queries = head.project(pool_vectors), head.project(query_vectors, "query")
    names = documents.astype(str)
    rows_of = rows_by_value(names)
    rankings = ExactRanker(units, names).rank_many(queries, top_n=TOP_DOCUMENTS)
    scores = knn_scores(units, queries)  # as OpenSearch scores the mentions
    for column, ranking in enumerate(rankings):
        counts.add_query(scores[:, column], rows_of, ranking.doc_ids, on_type[:, column])


def rows_by_value(values: np.ndarray) -> dict:
    """Each distinct value -> the rows holding it, in order."""
    distinct, inverse = np.unique(values, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    return dict(zip(distinct.tolist(), np.split(order, np.flatnonzero(np.diff(inverse[order])) + 1)))


def dev_tables(settings, data: str, layer: int) -> list[dict]:
    """One table per dev fold."""
    tables = []
    for fold in Folds(load_train_set(settings, data, [layer], DataPlan())).folds:
        counts = MarkingCounts()
        trained = train_head(fold.training_data(layer, hold_out_dev=True), TrainConfig(),
                             {"profile": settings.profile, "layer": layer, "d_v": 0}, progress=False).head
        pool = fold.dev_tasks()["dev_all"].mentions
        add_queries(counts, trained, pool.vectors[layer], pool.sentence_ids, fold.anchors(layer, fold.dev_types),
                    of_types(pool, fold.dev_types))
        tables.append(counts.table())
    return tables


def test_tables(settings, data: str, head: ProjectionHead, layer: int) -> dict:
    _, _, _, mentions, descriptions = test_vectors(settings, data, [layer], "spacy")
    pools = mentions.gold_and_detected()
    gold, detected = pools["gold"], pools["detected"]
    test_types = sorted(set(gold.label_of()))
    queries = descriptions.of_labels(layer, test_types)
    gold_on = of_types(gold, test_types)
    tables = {}
    for name, pool, on_type in (("gold", gold, gold_on), ("detected", detected, overlaps_gold(detected, gold, gold_on))):
        counts = MarkingCounts()
        add_queries(counts, head, pool.vectors[layer], pool.sentence_ids, queries, on_type)
        tables[name] = counts.table()
    return tables


def of_types(pool, types) -> np.ndarray:
    """[mentions, types]: the mention's gold label is that type."""
    return np.asarray(pool.label_of(), dtype=object)[:, None] == np.asarray(types, dtype=object)[None, :]


def overlaps_gold(spans, gold, gold_on: np.ndarray) -> np.ndarray:
    """[spans, types]: the span overlaps a gold mention of that type in its sentence."""
    by_sentence = rows_by_value(gold.sentence_ids)
    out = np.zeros((len(spans), gold_on.shape[1]), dtype=bool)
    for row, (sentence, start, end) in enumerate(zip(spans.sentence_ids, spans.starts, spans.ends)):
        for other in by_sentence.get(int(sentence), ()):
            if start < gold.ends[other] and gold.starts[other] < end:
                out[row] |= gold_on[other]
    return out


def mean_f1(tables: list[dict]) -> dict:
    """Per margin: F1 over the folds, mean and standard error."""
    out = {}
    for key in tables[0]:
        values = np.asarray([table[key]["f1"] for table in tables])
        out[key] = {"mean": round(float(values.mean()), 4),
                    "se": round(float(values.std(ddof=1) / np.sqrt(len(values))), 4)}
    return out


def chosen_margin(f1: dict) -> str:
    """The one-standard-error rule: the largest margin (the least left out) whose mean dev F1 is within
    one standard error of the best margin's."""
    margins = [key for key in f1 if key != "all"]
    best = max(margins, key=lambda key: f1[key]["mean"])
    return max((key for key in margins if f1[key]["mean"] >= f1[best]["mean"] - f1[best]["se"]), key=float)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the Few-NERD INTER folder")
    parser.add_argument("--out", default=str(RESULTS / "highlight.json"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    settings = Settings.resolve()
    layer = resolve_profile(settings.profile, settings.model, settings.layer).layer
    head = ProjectionHead.load(shipped_head_path(settings.profile))
    folds = dev_tables(settings, args.data, layer)
    dev_f1 = mean_f1(folds)
    margin = chosen_margin(dev_f1)
    report = {
        "what": "marking a hit's mentions that score >= best - margin: precision, recall and F1 of marked mentions "
                f"(of the query's type) among each of the top {TOP_DOCUMENTS} documents' top {MENTIONS_PER_HIT}",
        "layer": layer,
        "chosen_margin": float(margin),
        "rule": "the largest margin whose mean dev-fold F1 is within one standard error of the best",
        "dev_f1": dev_f1,
        "dev_folds": folds,
        "test": test_tables(settings, args.data, head, layer),
    }
    write_result(args.out, report, "bench/highlight.py", argv, started)
    print(f"dev F1 by margin: {dev_f1}; chosen {margin}")
    for name, table in report["test"].items():
        print(f"test {name:9s} all: {table['all']}  margin {margin}: {table[margin]}")
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
