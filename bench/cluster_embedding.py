"""The type encoder inside ML Commons against the client-side path, in one run on one index.

The index is built as bench/query.py builds its own (real Few-NERD INTER test sentences, gold spans
encoded by the real pipeline, copied up to ``--mentions``), on a node with ML Commons; then
``ner-os model deploy`` (reused when deployed before). Measured:

- ``parity_min_cos``: over the 53 Few-NERD type descriptions, the least cosine between the cluster's
  vector (``_predict``) and the client's (``NerOs.type_vector``, i.e. ``embed_type``);
- ``top10_same_share``: the share of descriptions whose k-NN top 10 is the same list both ways;
- ``neural_query_p50_ms`` / ``_p99_ms``: ``NerOs(embedding="cluster").search_type`` (a nested
  ``neural`` query, the words embedded by ML Commons), and ``client_query_*`` for
  ``NerOs(embedding="local").search_type`` with the type-vector cache emptied before each query
  (the description encoded every time): both k-NN only, end to end, warm;
- ``cold_cli_search_s``: the median wall time of 5 fresh ``ner-os search`` processes (the cluster
  embeds; target <= 2 s), and ``cold_cli_search_local_s`` for one with ``--embedding local``.

    python bench/cluster_embedding.py --url http://127.0.0.1:9200
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _common import FEWNERD, RESULTS, load_average, write_result
from query import build_index, encoded, real_sentences, remembered_corpus, summary
from ner_os.client import NerOs
from ner_os.config import Settings
from ner_os.deploy import deploy_type_model
from ner_os.store import ml

OUT = RESULTS / "cluster_embedding.json"


def timed(function, descriptions, queries: int, warmup: int) -> list[float]:
    for description in descriptions[:warmup]:
        function(description)
    samples = []
    for number in range(queries):
        started = time.perf_counter()
        function(descriptions[number % len(descriptions)])
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def cold_cli(url: str, index: str, description: str, runs: int, embedding: str) -> list[float]:
    executable = shutil.which("ner-os") or sys.executable
    prefix = [executable] if executable.endswith("ner-os") else [executable, "-c", "from ner_os.cli import main; main()"]
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([*prefix, "search", description, "--url", url, "--index", index, "--no-hybrid",
                        "--embedding", embedding], check=True, capture_output=True, timeout=600)
        out.append(time.perf_counter() - started)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="OpenSearch with ML Commons (ner-os opensearch start --ml-commons)")
    parser.add_argument("--index", default="nerosbench-cluster")
    parser.add_argument("--data", type=Path, default=FEWNERD)
    parser.add_argument("--sentences", type=int, default=500)
    parser.add_argument("--mentions", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--reuse-index", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    settings = Settings.resolve(opensearch_url=args.url, index=args.index, timeout_s=120)
    local = NerOs(settings, embedding="local")
    descriptions = list(dict.fromkeys(json.loads((args.data / "type_names.json").read_text()).values()))
    if args.reuse_index and local.opensearch.indices.exists(index=args.index):
        corpus = remembered_corpus(local.opensearch, args.index)
    else:
        sentences = real_sentences(args.data, args.sentences)
        corpus = build_index(local, args.index, sentences, encoded(local, sentences, settings), args.mentions)
    print(f"index ready: {corpus}", flush=True)
    deployed = deploy_type_model(settings, client=local.opensearch, embedder=local.embedder)
    print(f"model {deployed.model_id} ({'reused' if deployed.reused else 'new'}, {deployed.seconds:.0f} s)", flush=True)
    cluster = NerOs(settings, opensearch=local.opensearch, embedding="cluster")

    cluster_vectors = np.asarray(ml.predict(local.opensearch, deployed.model_id, descriptions), dtype=np.float32)
    local_vectors = np.stack([local.type_vector(text) for text in descriptions])
    cosines = np.sum(cluster_vectors * local_vectors, axis=1) / (
        np.linalg.norm(cluster_vectors, axis=1) * np.linalg.norm(local_vectors, axis=1))
    same = [cluster.search_type(text, hybrid=False).ids == local.search_type(text, hybrid=False).ids
            for text in descriptions]

    def neural(text):
        return cluster.search_type(text, hybrid=False)

    def client_side(text):
        local.clear_type_vectors()
        return local.search_type(text, hybrid=False)

    load_before = load_average()
    neural_ms = summary(timed(neural, descriptions, args.queries, args.warmup))
    client_ms = summary(timed(client_side, descriptions, args.queries, args.warmup))
    cold = cold_cli(args.url, args.index, "river", 5, "cluster")
    cold_local = cold_cli(args.url, args.index, "river", 1, "local")
    report = {
        "parity_min_cos": round(float(cosines.min()), 7),
        "parity_mean_cos": round(float(cosines.mean()), 7),
        "top10_same_share": round(sum(same) / len(same), 4),
        "neural_query_p50_ms": neural_ms["p50_ms"], "neural_query_p99_ms": neural_ms["p99_ms"],
        "client_query_p50_ms": client_ms["p50_ms"], "client_query_p99_ms": client_ms["p99_ms"],
        "cold_cli_search_s": round(statistics.median(cold), 2), "cold_cli_search_runs_s": [round(s, 2) for s in cold],
        "cold_cli_search_local_s": round(cold_local[0], 2),
        "targets": {"parity_min_cos": 0.9999, "top10_same_share": 1.0, "cold_cli_search_s": 2.0},
        "what": ("k-NN only (no BM25), size 10, k 100, end to end through NerOs.search_type, warm; the client-side "
                 "path encodes the description on every query (type-vector cache emptied)"),
        "neural_query": neural_ms, "client_query": client_ms,
        "descriptions": len(descriptions), "corpus": corpus,
        "model": {"model_id": deployed.model_id, "name": deployed.name, "dim": deployed.dim,
                  "content_hash": deployed.content_hash},
        "cluster": local.opensearch.info()["version"]["number"],
        "load_average_before_after": [load_before, load_average()],
    }
    write_result(OUT, report, "bench/cluster_embedding.py", sys.argv[1:], started)
    print(json.dumps({key: report[key] for key in list(report)[:11]}, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
