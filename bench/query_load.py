"""Query load: 4 concurrent clients run type queries against a real node while a bulk load writes beside them.

Bounded in count and time, loopback only. Each client holds its own :class:`ner_os.client.NerOs` and runs
``search_vector`` (the whole OpenSearch side of ``search_type``: the k-NN and BM25 rankings, the fusion,
the page fetch with its mention inner hits) with one unit vector per type description, as the client
caches it after the first query of a type; the encoder pass of a new description is not timed here (see
``bench/query.py``). Beside the queries one writer bulk-indexes new documents without pause, as a load's
last stage does; the encoder of a real load, which would compete for the same CPU, is not running.

    python bench/query_load.py [--url URL] [--clients 4] [--queries 400] [--seconds 60] [--docs 5000]

Writes ``bench/results/query_load.json`` (``query_load_baseline.json`` with ``--no-writer``): p50/p99 latency, queries per second, documents written per
second beside them, the load average before and after (the CPU is shared), the command, the machine and
the date.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
import uuid

import numpy as np

from _common import RESULTS, command, machine, utc_now
from ner_os.store import bulk, connection, schema
from ner_os.store.node import lifecycle as local_node
from ner_os.client import NerOs
from ner_os.config import Settings
from ner_os.fields import vector_fields
from ner_os.query import TypeQuery

OUT = RESULTS / "query_load.json"
DIM = 64
WORDS = ("Ada Lovelace met Charles Babbage in London while the Nile flows north through Egypt and Tyrannosaurus "
         "rex roamed Montana before the river Danube reached Vienna").split()
DESCRIPTIONS = ["person", "river", "city", "dinosaur", "country", "scientist", "capital city", "animal"]
P99_TARGET_MS = 150.0


def unit_rows(rng: np.random.Generator, count: int) -> np.ndarray:
    rows = rng.standard_normal((count, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def documents(rng: np.random.Generator, first: int, count: int, index: str):
    for i in range(first, first + count):
        words = list(rng.choice(WORDS, size=int(rng.integers(6, 20))))
        text = " ".join(words)
        starts = np.cumsum([0] + [len(word) + 1 for word in words[:-1]])
        picks = sorted(rng.choice(len(words), size=min(3, len(words)), replace=False))
        vectors = unit_rows(rng, len(picks))
        mentions = [{"start": int(starts[p]), "end": int(starts[p] + len(words[p])), "surface": words[p],
                     **vector_fields(vectors[j])} for j, p in enumerate(picks)]
        yield {"_op_type": "index", "_index": index, "_id": f"doc-{i}",
               "_source": {"doc_id": f"doc-{i}", "text": text, "metadata": {"n": i}, "mentions": mentions}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("NER_OS_OPENSEARCH_URL"))
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--queries", type=int, default=400, help="per client, at most")
    parser.add_argument("--seconds", type=float, default=60.0, help="the query phase stops after this long")
    parser.add_argument("--docs", type=int, default=5000, help="documents in the index before the queries")
    parser.add_argument("--no-writer", action="store_true", help="a baseline: no bulk load beside the queries")
    args = parser.parse_args()

    settings = Settings.resolve(opensearch_url=args.url, index=f"bench-query-load-{uuid.uuid4().hex[:8]}")
    url = local_node.ensure_cluster_url(settings)
    if not url.startswith(("http://127.0.0.1", "http://localhost", "https://127.0.0.1", "https://localhost")):
        raise SystemExit(f"{url}: this benchmark runs against a loopback node only")
    client = connection.client_from_settings(settings.replace(opensearch_url=url))
    name = settings.index
    rng = np.random.default_rng(0)
    schema.install_templates(client, settings, DIM)
    schema.create_index(client, name, DIM)
    try:
        bulk.bulk_index(client, documents(rng, 0, args.docs, name), chunk_size=500)
        client.indices.refresh(index=name)
        figures = measure(settings.replace(opensearch_url=url), client, name, args)
    finally:
        client.indices.delete(index=name, ignore_unavailable=True)
        schema.remove_templates(client, name)
    figures.update(command=command("bench/query_load.py"), cluster=url, machine=machine(), date=utc_now())
    OUT.parent.mkdir(parents=True, exist_ok=True)
    results = OUT.with_name("query_load_baseline.json") if args.no_writer else OUT
    results.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps({key: figures[key] for key in ("queries", "qps", "p50_ms", "p99_ms", "written_docs_per_s",
                                                     "load_average_before_after")}, indent=2))


def measure(settings: Settings, client, name: str, args) -> dict:
    type_vectors = dict(zip(DESCRIPTIONS, unit_rows(np.random.default_rng(1), len(DESCRIPTIONS))))
    stop = threading.Event()
    latencies: list[list[float]] = [[] for _ in range(args.clients)]
    errors: list[str] = []
    written = [0]

    def writer():
        rng, first = np.random.default_rng(2), args.docs
        while not stop.is_set():
            result = bulk.bulk_index(client, documents(rng, first, 100, name), chunk_size=100)
            written[0] += result.indexed
            first += 100

    def querier(slot: int):
        ner = NerOs(settings, opensearch=connection.client_from_settings(settings))
        for i in range(args.queries):
            if stop.is_set():
                return
            description = DESCRIPTIONS[(slot + i) % len(DESCRIPTIONS)]
            query = TypeQuery(description, size=10, hybrid=True)
            started = time.perf_counter()
            try:
                ner.search_vector(type_vectors[description], query, index=name)
            except Exception as error:  # noqa: BLE001 - counted and reported, never hidden
                errors.append(f"{type(error).__name__}: {error}")
                continue
            latencies[slot].append((time.perf_counter() - started) * 1000)

    load_before = os.getloadavg()
    writing = threading.Thread(target=writer, daemon=True)
    clients = [threading.Thread(target=querier, args=(slot,)) for slot in range(args.clients)]
    if not args.no_writer:
        writing.start()
    started = time.perf_counter()
    for thread in clients:
        thread.start()
    deadline = started + args.seconds
    for thread in clients:
        thread.join(max(0.0, deadline - time.perf_counter()))
    stop.set()
    for thread in clients:
        thread.join()
    elapsed = time.perf_counter() - started
    if not args.no_writer:
        writing.join()
    load_after = os.getloadavg()
    flat = np.array([value for per_client in latencies for value in per_client])
    return {
        "clients": args.clients, "queries": int(flat.size), "errors": len(errors), "first_errors": errors[:3],
        "seconds": round(elapsed, 2), "qps": round(flat.size / elapsed, 2),
        "p50_ms": round(float(np.percentile(flat, 50)), 1) if flat.size else None,
        "p99_ms": round(float(np.percentile(flat, 99)), 1) if flat.size else None,
        "p99_target_ms": P99_TARGET_MS,
        "what_is_timed": "NerOs.search_vector: hybrid (k-NN + BM25, fused) type query with its page fetch, "
                         "size 10; type vectors cached as after a description's first query",
        "documents_before": args.docs, "mentions_per_document": 3, "dimension": DIM,
        "writer_beside": not args.no_writer, "written_beside": written[0], "written_docs_per_s": round(written[0] / elapsed, 1),
        "load_average_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        "cpu_note": "2 cores shared with other engineers' jobs: the load average says how busy they were",
    }


if __name__ == "__main__":
    main()
