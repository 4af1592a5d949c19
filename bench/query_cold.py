"""A type query from a cold process, uncached queries in one, and the loader's first document.

What is timed (every figure with the load averages around it: the cores are shared):

- ``cold_cli_search_s`` (and ``_cpu_s``, the process's user + system CPU seconds, which the load
  of the shared cores inflates less): the wall time of a fresh ``ner-os search DESCRIPTION --index INDEX`` process
  (interpreter start to exit, output discarded), one run per description, each description's
  disk-cached type vector removed first, so the model loads and encodes it: the ONNX export and its
  saved optimised graph are in the cache (a first run builds them), the type vector is not;
- ``cold_cli_search_s_cached``: the same processes again: the type vector comes from the disk cache
  (no model load);
- ``uncached_embed_ms``: in one process, model loaded, ``MentionEmbedder.embed_type`` of a
  description never seen before (tokenise, ONNX run, head), in the client's query numerics; then
  ``uncached_embed_fp32_ms``, the same descriptions through an fp32 encoder (the baseline of the query
  numerics' gain, in the same run);
- ``uncached_query_ms``: ``NerOs.search_type`` end to end (the client's default mode, recorded) with both
  type-vector caches bypassed, a new description each time, on the index named (its size is
  recorded; the 1M-mention figure is the scale bench's);
- ``loader_first_document_s``: a fresh ``ner-os load`` of one document: from launching the process
  to the first ``Encoder.encode`` returning (the ONNX export cached), and the whole process's wall.

    python bench/query_cold.py --url http://127.0.0.1:43211 --index h17-demo
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import RESULTS, ROOT, SAMPLE, load_average, merge_json, write_result
from ner_os.client import NerOs
from ner_os.config import Settings
from ner_os.mentions.embedder import MentionEmbedder

OUT = RESULTS / "query_cold.json"
SUMMARY = RESULTS / "query.json"  # the issue-17 figures (bench/scale.py writes the others)
COLD_DESCRIPTIONS = ["mountain range", "football club", "chemical element", "opera house", "airline"]
# uncached in-process queries: distinct descriptions, none of them one of the cold ones
HEADS = ["river", "city", "politician", "company", "band", "island", "disease", "ship", "novel", "language",
         "university", "museum", "painter", "volcano", "bridge", "award", "festival", "newspaper", "railway",
         "satellite", "mountain", "lake", "general", "king", "queen", "poet", "composer", "singer", "actor", "film",
         "temple", "castle", "airport", "stadium", "highway", "canal", "desert", "forest", "planet", "star"]
MODIFIERS = ["", "in Africa", "in Europe", "in Asia", "ancient", "famous", "small", "German", "Japanese", "American"]
CLI = "import sys; from ner_os.cli import main; sys.argv[0] = 'ner-os'; main()"  # what the console script runs
FIRST_ENCODE = """
import sys, time
launched = float(sys.argv[1])
from ner_os.encoder.encoder import Encoder
encode = Encoder.encode
def first(self, texts):
    out = encode(self, texts)
    if not hasattr(Encoder, "_first_at"):
        Encoder._first_at = time.time() - launched
        print(f"FIRST_ENCODE {Encoder._first_at:.3f}", flush=True)
    return out
Encoder.encode = first
from ner_os.cli import main
sys.argv = ["ner-os", "load", *sys.argv[2:]]
main()
"""


def distinct_descriptions(count: int) -> list[str]:
    pairs = itertools.product(MODIFIERS, HEADS)
    described = [(f"{head} {modifier}" if modifier.startswith("in ") else f"{modifier} {head}").strip()
                 for modifier, head in pairs]
    return described[:count]


def summary(values_ms: list[float]) -> dict:
    values = np.asarray(values_ms)
    return {"p50": round(float(np.percentile(values, 50)), 2), "p99": round(float(np.percentile(values, 99)), 2),
            "mean": round(float(values.mean()), 2), "max": round(float(values.max()), 2), "n": len(values)}


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cold_cli_runs(env: dict, index: str, descriptions: list[str], forget) -> list[dict]:
    runs = []
    for description in descriptions:
        if forget is not None:
            forget(description)
        before = load_average()
        cpu = children_cpu_s()
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", CLI, "search", description, "--index", index],
                              env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"ner-os search {description!r} failed: {done.stderr.strip()}")
        runs.append({"description": description, "wall_s": round(wall, 3),
                     "cpu_s": round(children_cpu_s() - cpu, 3), "load_before": before,
                     "load_after": load_average()})
    return runs


def in_process(settings: Settings, count: int) -> dict:
    ner = NerOs(settings)
    ner.search_type("warm-up query")  # model loaded, connection open, index facts cached
    embedder = ner.embedder
    ner.__dict__["type_vector_cache"] = None  # bypass the disk level: every description is encoded
    descriptions = distinct_descriptions(2 * count)
    if len(descriptions) < 2 * count:
        raise SystemExit(f"--queries {count}: at most {len(descriptions) // 2} distinct descriptions here")
    load_before = load_average()
    embed_ms = embed_times(embedder, descriptions[:count])
    fp32 = MentionEmbedder.from_settings(settings.replace(dtype="fp32"), spin=True)
    fp32.embed_type("warm-up query")
    embed_fp32_ms = embed_times(fp32, descriptions[:count])
    del fp32
    query_ms = []
    for description in descriptions[count:]:
        ner.clear_type_vectors()
        started = time.perf_counter()
        ner.search_type(description)
        query_ms.append((time.perf_counter() - started) * 1000)
    counts = ner.opensearch.count(index=ner.settings.index)["count"]
    mentions = ner.opensearch.search(index=ner.settings.index, body={"size": 0, "aggs": {"m": {"nested": {
        "path": "mentions"}}}})["aggregations"]["m"]["doc_count"]
    ner.close()
    mode = ner.search_type(descriptions[0]).mode
    return {"uncached_embed_ms": summary(embed_ms), "uncached_embed_fp32_ms": summary(embed_fp32_ms),
            "numerics": {"queries": settings.query_numerics, "documents": settings.numerics},
            "uncached_query_ms": summary(query_ms), "query_mode": mode,
            "index_documents": counts, "index_mentions": mentions, "load_before": load_before,
            "load_after": load_average()}


def embed_times(embedder, descriptions: list[str]) -> list[float]:
    """Milliseconds of ``embedder.embed_type`` for each description."""
    out = []
    for description in descriptions:
        started = time.perf_counter()
        embedder.embed_type(description)
        out.append((time.perf_counter() - started) * 1000)
    return out


def loader_first_document(env: dict, runs: int) -> list[dict]:
    folder = Path(tempfile.mkdtemp(prefix="query-cold-"))
    try:
        one = folder / "one.jsonl"
        one.write_text(SAMPLE.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")
        out = []
        for _ in range(runs):
            before = load_average()
            launched = time.time()
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", FIRST_ENCODE, str(launched), str(one), "--index",
                                   "bench-query-cold-load", "--replace-index"], env=env, capture_output=True,
                                  text=True, check=False, cwd=ROOT)
            wall = time.perf_counter() - started
            first = [line for line in done.stdout.splitlines() if line.startswith("FIRST_ENCODE")]
            if done.returncode != 0 or not first:
                raise SystemExit(f"ner-os load failed: {done.stderr.strip()[-2000:]}")
            out.append({"first_document_s": float(first[0].split()[1]), "process_wall_s": round(wall, 3),
                        "load_before": before, "load_after": load_average()})
        return out
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="OpenSearch URL (an index loaded, e.g. the demo sample)")
    parser.add_argument("--index", default="ner-os-demo")
    parser.add_argument("--queries", type=int, default=200, help="uncached in-process queries (and embeddings)")
    parser.add_argument("--loader-runs", type=int, default=3)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    settings = Settings.resolve(opensearch_url=args.url, index=args.index)
    env = {**os.environ, "NER_OS_OPENSEARCH_URL": args.url, "PYTHONPATH": str(ROOT)}
    cache = NerOs(settings).type_vector_cache

    def forget(description):
        shutil.rmtree(cache.entry(description), ignore_errors=True)

    cold = cold_cli_runs(env, args.index, COLD_DESCRIPTIONS, forget)
    cached = cold_cli_runs(env, args.index, COLD_DESCRIPTIONS, None)
    warm = in_process(settings, args.queries)
    loads = loader_first_document(env, args.loader_runs)
    report = {
        "cold_cli_search_s_p50": float(np.median([run["wall_s"] for run in cold])),
        "cold_cli_search_s_cached_p50": float(np.median([run["wall_s"] for run in cached])),
        "cold_cli_search_cpu_s_p50": float(np.median([run["cpu_s"] for run in cold])),
        "cold_cli_search_cpu_s_cached_p50": float(np.median([run["cpu_s"] for run in cached])),
        "uncached_embed_p50_ms": warm["uncached_embed_ms"]["p50"],
        "uncached_embed_p99_ms": warm["uncached_embed_ms"]["p99"],
        "uncached_embed_fp32_p50_ms": warm["uncached_embed_fp32_ms"]["p50"],
        "uncached_embed_fp32_p99_ms": warm["uncached_embed_fp32_ms"]["p99"],
        "numerics": warm["numerics"],
        "uncached_query_p50_ms": warm["uncached_query_ms"]["p50"],
        "uncached_query_p99_ms": warm["uncached_query_ms"]["p99"],
        "uncached_query_mode": warm["query_mode"],
        "index": {"name": args.index, "documents": warm["index_documents"], "mentions": warm["index_mentions"]},
        "loader_first_document_s": float(np.median([run["first_document_s"] for run in loads])),
        "targets": {"cold_cli_search_s_p50": 1.5, "uncached_p50_ms": 30, "uncached_p99_ms": 80,
                    "loader_first_document_s": 5.0},
        "runs": {"cold_cli_search": cold, "cold_cli_search_cached": cached, "in_process": warm, "loader": loads},
        "settings": {key: value for key, value in settings.describe().items() if key in
                     ("profile", "backend", "device", "dtype", "head", "layer")},
        "load_average_end": load_average(),
    }
    report = write_result(OUT, report, "bench/query_cold.py", argv, started)
    merge_json(SUMMARY, {"cold_cli_search_s_p50": report["cold_cli_search_s_p50"],
                         "cold_cli_source": f"bench/results/query_cold.json ({report['command']}, {report['date']})"})
    return report


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:]), indent=2))
