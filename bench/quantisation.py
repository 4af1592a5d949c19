"""R-Precision of the lucene engine's scalar quantisation (``encoder: sq``) against float32 HNSW and
exact search, on the real Few-NERD INTER test mentions (issue #17: make sq the default if it loses
at most 0.005).

The index holds the real part of ``bench/scale.py``'s index and nothing generated: every gold and
detected (spaCy) span of the 14,006 test sentences, encoded by the real pipeline and projected by the
shipped head, one document per sentence. Each of the 17 test types' descriptions ranks the documents
by their best mention (the default k-NN query with size R, so ``k`` = max(100, R), R the number of
sentences holding a gold mention of the type); R-Precision is the share of those R among the first R. The same vectors
and queries are ranked by exact cosine (numpy) and by HNSW over float32 and over sq vectors, in one
run, so the differences are the quantisation's and the graph's alone. Latency and memory at 1M
mentions are ``bench/scale.py --encoder sq``'s.

    python bench/quantisation.py --url http://127.0.0.1:9200
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from _common import FEWNERD, RESULTS, command, machine, utc_now, write_json
from scale import GrowingIndex, RealMentions, unit
from ner_os.client import NerOs
from ner_os.config import Settings
from ner_os.evaluation.metrics import r_precision
from ner_os.query import TypeQuery

OUT = RESULTS / "quantisation.json"
ENCODERS = {"float32": None, "sq": "sq"}


def relevant_documents(real: RealMentions, doc_ids: list[str]) -> dict[str, set[str]]:
    """Per gold type, the ids of the sentences holding a mention of it."""
    relevant: dict[str, set[str]] = {}
    for doc_id, rows in zip(doc_ids, real.by_sentence):
        for label in {real.labels[row] for row in rows} - {None}:
            relevant.setdefault(label, set()).add(doc_id)
    return relevant


def exact_ranking(real: RealMentions, doc_ids: list[str], vector: np.ndarray, depth: int) -> list[str]:
    """The first ``depth`` documents by their best mention's cosine to ``vector``."""
    scores = real.vectors @ unit(vector[None, :])[0]
    best = np.maximum.reduceat(scores, [rows[0] for rows in real.by_sentence])
    return [doc_ids[i] for i in np.argsort(-best, kind="stable")[:depth]]


def macro(per_type: dict[str, float]) -> float:
    return round(float(np.mean(list(per_type.values()))), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="OpenSearch URL [default: NER_OS_OPENSEARCH_URL, else the local node]")
    parser.add_argument("--index", default="nerosbench-quantisation")
    parser.add_argument("--data", type=Path, default=FEWNERD)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    started = time.perf_counter()
    ner = NerOs(Settings.resolve(opensearch_url=args.url), embedding="local")
    real = RealMentions(ner.settings, args.data)
    doc_ids = [f"{number}-0" for number in range(len(real.by_sentence))]  # bench/scale.py's ids of the real sentences
    relevant = relevant_documents(real, doc_ids)
    names = json.loads((args.data / "type_names.json").read_text())
    queries = {label: ner.type_vector(names[label]) for label in sorted(relevant)}
    per_type = {}
    per_type["exact"] = {label: r_precision(exact_ranking(real, doc_ids, vector, len(relevant[label])),
                                            relevant[label]) for label, vector in queries.items()}
    built = {}
    for name, encoder in ENCODERS.items():
        index = GrowingIndex(ner, f"{args.index}-{name}", real, encoder, seed=0)
        built[name] = {**index.grow_to(len(real)), **index.memory()}
        assert index.doc_ids == doc_ids  # the real sentences only, in order
        per_type[name] = {}
        for label, vector in queries.items():
            depth = len(relevant[label])
            ranked = ner.search_vector(vector, TypeQuery(names[label], size=depth), index=index.name).ids
            per_type[name][label] = r_precision(ranked, relevant[label])
        ner.opensearch.indices.delete(index=index.name)
        print(name, macro(per_type[name]), built[name], flush=True)
    figures = {name: macro(scores) for name, scores in per_type.items()}
    report = {
        "macro_r_precision": figures,
        "sq_minus_float32": round(figures["sq"] - figures["float32"], 4),
        "float32_minus_exact": round(figures["float32"] - figures["exact"], 4),
        "sq_within_0_005": figures["sq"] >= figures["float32"] - 0.005,
        "per_type_r_precision": {label: {name: round(scores[label], 4) for name, scores in per_type.items()}
                                 for label in queries},
        "types": {label: names[label] for label in queries},
        "mentions": len(real), "documents": len(doc_ids), "indexes": built,
        "how": __doc__.split("\n\n")[1].replace("\n", " "),
        "command": command("bench/quantisation.py"), "machine": machine(), "date": utc_now(),
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_json(args.out, report)
    print(json.dumps({key: report[key] for key in ("macro_r_precision", "sq_minus_float32", "sq_within_0_005")},
                     indent=2))


if __name__ == "__main__":
    main()
