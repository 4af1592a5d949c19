"""Latency of type queries on an index of >= 100,000 mentions built from real sentences.

What the index holds: the first ``--sentences`` Few-NERD INTER test sentences that have gold
mentions, their gold spans encoded by the real pipeline (ONNX encoder, layer of the profile, the
head when one is shipped) — real text, real mention vectors. Encoding every sentence needed for
100,000 mentions would take hours on this CPU, so the encoded sentences are indexed again as
copies (same text and vectors, new ids) until the index holds ``--mentions`` mentions: each
mention vector occurs ``copies`` times. The encoded vectors are cached under the cache dir.

Timed, warm (model loaded, index built and searched before timing), over the 53 Few-NERD type
descriptions in turn:

- ``end_to_end``: ``NerOs.search_type`` with the type-vector cache emptied before each query, so
  the description is encoded every time;
- ``end_to_end_cached``: ``search_type`` for a description seen before (the client's cache);
- ``opensearch``: ``NerOs.search_vector`` — requests, responses and parsing, no encoder;
- ``server_took``: the sum of the cluster's own ``took`` over the query's requests.

for hybrid (server-side RRF when the cluster has neural-search), hybrid fused on the client, and
pure k-NN. Writes ``bench/results/query.json``:

    python bench/query.py --url http://127.0.0.1:9200
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import time
from pathlib import Path

import numpy as np

from _common import FEWNERD, RESULTS, command, machine, utc_now, write_json
from ner_os.store import bulk, schema
from ner_os.client import NerOs
from ner_os.config import Settings
from ner_os.fields import vector_fields
from ner_os.query import TypeQuery

OUT = RESULTS / "query.json"


def real_sentences(data: Path, count: int) -> list[tuple[str, list[tuple[int, int]]]]:
    from ner_os.evaluation.readers import read_bio

    out = []
    for sentence in read_bio(data / "inter_test.txt"):
        if sentence.mentions and len(sentence.tokens) <= 60:
            out.append((sentence.text, [(m.start, m.end) for m in sentence.mentions]))
            if len(out) == count:
                break
    return out


def encoded(ner: NerOs, sentences, settings: Settings) -> list[np.ndarray]:
    """Mention vectors of each sentence from the real pipeline, cached by texts, spans and model."""
    embedder = ner.embedder
    identity = {**ner.encoder_identity(), "sentences": sentences}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:24]
    path = Path(settings.cache_dir) / "bench-query" / f"{key}.npz"
    if path.is_file():
        stored = np.load(path)
        return [stored[f"s{i}"] for i in range(len(sentences))]
    started = time.perf_counter()
    vectors = []
    for at in range(0, len(sentences), 64):
        batch = sentences[at:at + 64]
        vectors += embedder.embed([text for text, _ in batch], [spans for _, spans in batch])
        print(f"encoded {at + len(batch)}/{len(sentences)} sentences, {time.perf_counter() - started:.0f} s",
              flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{f"s{i}": array for i, array in enumerate(vectors)})
    return vectors


def build_index(ner: NerOs, name: str, sentences, vectors, wanted_mentions: int) -> dict:
    client = ner.opensearch
    per_pass = sum(len(spans) for _, spans in sentences)
    copies = math.ceil(wanted_mentions / per_pass)
    dim = int(vectors[0].shape[1])
    client.indices.delete(index=name, ignore_unavailable=True)
    schema.install_templates(client, ner.settings.replace(index=name), dim)  # and the RRF pipeline
    schema.create_index(client, name, dim)
    client.indices.put_settings(index=name, body={"index": {"refresh_interval": "-1"}})

    def actions():
        for copy in range(copies):
            for number, ((text, spans), rows) in enumerate(zip(sentences, vectors)):
                mentions = [{"start": start, "end": end, "surface": text[start:end], **vector_fields(row)}
                            for (start, end), row in zip(spans, rows)]
                yield {"_index": name, "_id": f"{number}-{copy}",
                       "_source": {"doc_id": f"{number}-{copy}", "text": text, "metadata": {"copy": copy},
                                   "mentions": mentions}}

    started = time.perf_counter()
    result = bulk.bulk_index(client, actions(), chunk_size=500)
    if result.failures:
        raise SystemExit(f"{len(result.failures)} documents failed, first: {result.failures[0]}")
    client.indices.put_settings(index=name, body={"index": {"refresh_interval": "1s"}})
    client.indices.refresh(index=name)
    indexed_s = time.perf_counter() - started
    client.indices.forcemerge(index=name, max_num_segments=1, request_timeout=1800)
    client.indices.refresh(index=name)
    stats = client.indices.stats(index=name)["indices"][name]["primaries"]
    corpus = {"documents": result.indexed, "mentions": per_pass * copies, "copies": copies,
              "encoded_sentences": len(sentences), "encoded_mentions": per_pass, "dimension": dim,
              "bulk_seconds": round(indexed_s, 1),
              "force_merge_seconds": round(time.perf_counter() - started - indexed_s, 1),
              "segments": stats["segments"]["count"], "store_mb": round(stats["store"]["size_in_bytes"] / 2**20, 1)}
    remember_corpus(client, name, corpus)
    return corpus


def remember_corpus(client, name: str, corpus: dict) -> None:
    """Keep what the index holds in its mapping's ``_meta``, for ``--reuse-index`` runs."""
    meta = client.indices.get_mapping(index=name)[name]["mappings"].get("_meta", {})
    client.indices.put_mapping(index=name, body={"_meta": {**meta, "bench_query": corpus}})


def remembered_corpus(client, name: str) -> dict:
    meta = client.indices.get_mapping(index=name)[name]["mappings"].get("_meta", {})
    if "bench_query" not in meta:
        raise SystemExit(f"index {name} was not built by bench/query.py; run without --reuse-index")
    return {**meta["bench_query"], "reused": True}


def summary(samples_ms: list[float]) -> dict:
    array = np.asarray(samples_ms)
    return {"p50_ms": round(float(np.percentile(array, 50)), 2), "p99_ms": round(float(np.percentile(array, 99)), 2),
            "mean_ms": round(float(array.mean()), 2), "max_ms": round(float(array.max()), 2), "n": len(samples_ms)}


def time_variant(ner: NerOs, name: str, descriptions: list[str], queries: int, warmup: int, hybrid: bool) -> dict:
    end_to_end, cached, opensearch, took, modes = [], [], [], [], set()
    for i in range(warmup + queries):
        description = descriptions[i % len(descriptions)]
        query = TypeQuery(description, hybrid=hybrid)
        ner.clear_type_vectors()
        started = time.perf_counter()
        results = ner.search_type(description, index=name, hybrid=hybrid)
        first = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        ner.search_type(description, index=name, hybrid=hybrid)
        second = (time.perf_counter() - started) * 1000
        vector = ner.type_vector(description)
        started = time.perf_counter()
        alone = ner.search_vector(vector, query, index=name)
        third = (time.perf_counter() - started) * 1000
        assert alone.ids == results.ids and len(results) == 10
        if i >= warmup:
            end_to_end.append(first)
            cached.append(second)
            opensearch.append(third)
            took.append(alone.took_ms)
            modes.add(alone.mode)
    return {"mode": sorted(modes), "end_to_end": summary(end_to_end), "end_to_end_cached": summary(cached),
            "opensearch": summary(opensearch), "server_took": summary(took)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="OpenSearch URL [default: NER_OS_OPENSEARCH_URL, else the local node]")
    parser.add_argument("--index", default="nerosbench-query")
    parser.add_argument("--data", type=Path, default=FEWNERD)
    parser.add_argument("--sentences", type=int, default=2000, help="real sentences encoded by the real pipeline")
    parser.add_argument("--mentions", type=int, default=100_000, help="mentions the index holds at least")
    parser.add_argument("--queries", type=int, default=300, help="timed queries per variant")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--reuse-index", action="store_true", help="time an index an earlier run built")
    parser.add_argument("--drop", action="store_true", help="delete the index (and its templates) at the end")
    args = parser.parse_args()

    settings = Settings.resolve(opensearch_url=args.url)
    ner = NerOs(settings)
    descriptions = list(dict.fromkeys(json.loads((args.data / "type_names.json").read_text()).values()))
    load_before = os.getloadavg()
    started = time.perf_counter()
    if args.reuse_index and ner.opensearch.indices.exists(index=args.index):
        corpus = remembered_corpus(ner.opensearch, args.index)
    else:
        sentences = real_sentences(args.data, args.sentences)
        vectors = encoded(ner, sentences, settings)
        corpus = build_index(ner, args.index, sentences, vectors, args.mentions)
    print(f"index ready: {corpus} ({time.perf_counter() - started:.0f} s)", flush=True)

    ner.embedder  # load the model before timing
    variants = {
        "hybrid": time_variant(ner, args.index, descriptions, args.queries, args.warmup, hybrid=True),
        "knn": time_variant(ner, args.index, descriptions, args.queries, args.warmup, hybrid=False),
    }
    client_side = NerOs(settings, opensearch=ner.opensearch, embedder=ner.embedder, fusion="client")
    variants["hybrid_client_fusion"] = time_variant(client_side, args.index, descriptions, args.queries,
                                                    args.warmup, hybrid=True)
    hybrid = variants["hybrid"]["end_to_end"]
    result = {
        "mentions": corpus["mentions"],
        "p50_ms": hybrid["p50_ms"],
        "p99_ms": hybrid["p99_ms"],
        "what_p50_p99_are": "end to end, hybrid, the description encoded on every query (type-vector cache emptied)",
        "targets": {"p50_ms": 50, "p99_ms": 150},
        "variants": variants,
        "corpus": corpus,
        "corpus_note": ("real Few-NERD INTER test sentences with gold spans, mention vectors from the real pipeline; "
                        "the encoded sentences are indexed `copies` times (same text and vectors, new ids) to reach "
                        "the mention count, so each vector occurs `copies` times; force-merged to one segment"),
        "queries_per_variant": args.queries,
        "descriptions": len(descriptions),
        "size": 10,
        "k": TypeQuery("x").depth,
        "encoder": ner.encoder_identity(),
        "cluster": ner.opensearch.info()["version"]["number"],
        "neural_search": ner.neural_search(),
        "load_average_before_after": [list(load_before), list(os.getloadavg())],
        "command": command(),
        "machine": machine(),
        "date": utc_now(),
    }
    write_json(OUT, result)
    print(json.dumps({k: result[k] for k in ("mentions", "p50_ms", "p99_ms")}))
    for name, figures in variants.items():
        print(name, {part: (v["p50_ms"], v["p99_ms"]) for part, v in figures.items() if isinstance(v, dict)})
    if args.drop:
        ner.opensearch.indices.delete(index=args.index, ignore_unavailable=True)
        schema.remove_templates(ner.opensearch, args.index)


if __name__ == "__main__":
    main()
