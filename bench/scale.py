"""The scale curve: type queries on 100k, 300k and 1M **distinct** mention vectors.

What the index holds. The real part: every gold and detected (spaCy) span of the 14,006 Few-NERD
INTER test sentences, encoded by the real pipeline (bench/head.py's cached pass, layer of the
shipped head) and projected by the shipped head, duplicates removed (a detected span that ends where
a gold one ends has the same value vector). The rest is generated, sentence by sentence: a real
sentence's text and spans again, each vector replaced by ``unit(v + noise)``, the noise Gaussian with
the per-dimension standard deviation of the real gold vectors around their type's centroid (the
within-type spread), so a generated mention sits about as far from its source as the type's own
mentions sit from their centroid. No vector repeats (checked). ``generated_statistics`` records how
close the generated rows stay to the real ones.

Measured at each size (the index grows; after each step it is force-merged to one segment):

- ``knn_p50_ms`` / ``knn_p99_ms``: ``NerOs.search_vector`` (k-NN, the default ranking) with type
  vectors computed beforehand: the OpenSearch part alone;
- ``default_p50_ms`` / ``default_p99_ms``: ``NerOs.search_type`` end to end with a description never
  seen before each time (both type-vector caches bypassed), the default mode;
- ``recall_at_10``: the share of the exact top 10 documents (numpy, a document's score is its best
  mention's cosine) that HNSW returns in its top 10, over every query vector asked: the type names' and
  the new descriptions' (``recall_queries``; ``recall_at_10_fewnerd_types``: the 53 Few-NERD type
  descriptions' alone, the measure of runs before 2026-12-03, written ``recall_at_10_test_types`` until
  the second 2026-12-03 run);
- ``by_depth``: all of these again at each k-NN depth of ``--depths`` (the same new descriptions at
  each; the row's figures are the first depth's, the product's default k unless told otherwise);
- ``build_s``: bulk indexing plus force merge of the step, and ``build_total_s`` up to this size;
- ``heap_mb`` / ``disk_mb``: the node's JVM heap in use and the index's store size, each also per
  million mentions.

    python bench/scale.py --url http://127.0.0.1:9200                      # 100k, 300k, 1M
    python bench/scale.py --url http://127.0.0.1:9200 --sizes 20000,50000   # a quick look
    python bench/scale.py --url ... --encoder sq                            # lucene scalar quantisation
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from pathlib import Path

import numpy as np

from _common import FEWNERD, RESULTS, command, machine, merge_json, utc_now, write_json
from head import test_vectors
from query_cold import HEADS, MODIFIERS
from ner_os.client import NerOs
from ner_os.config import Settings
from ner_os.fields import vector_fields
from ner_os.head import ProjectionHead, shipped_head_path
from ner_os.query import TypeQuery
from ner_os.store import bulk, schema

OUT = RESULTS / "scale.json"
CHART = RESULTS.parent.parent / "docs" / "scale-latency.png"
SUMMARY = RESULTS / "query.json"  # the issue-17 figures: `scale` and the uncached latency at the largest size
BULK_CHUNK = 200
DESCRIPTION_WARMUP = 20  # new descriptions encoded untimed first (the earlier runs' 20): every run times the same ones


class RealMentions:
    """The real pipeline's unit mention vectors of the test sentences, grouped by sentence."""

    def __init__(self, settings: Settings, data: Path):
        head = ProjectionHead.load(shipped_head_path(settings.profile))
        layer = head.encoder["layer"]
        gold, _, both, mentions, _ = test_vectors(settings, data, [layer], "spacy")
        vectors = head.project(mentions.vectors[layer], "mention").astype(np.float32)
        _, first = np.unique(vectors.round(6), axis=0, return_index=True)
        keep = np.sort(first)
        self.texts = [t.text for t in both]
        self.vectors, self.sentence_ids = vectors[keep], mentions.sentence_ids[keep]
        self.starts, self.ends, labels = mentions.starts[keep], mentions.ends[keep], mentions.labels[keep]
        self.labels = mentions.label_of(keep)  # the gold type of each row, None for a detected span
        self.spread = within_type_spread(self.vectors, labels)
        self.by_sentence = np.split(np.arange(len(keep)), np.flatnonzero(np.diff(self.sentence_ids)) + 1)

    def __len__(self) -> int:
        return len(self.vectors)


def within_type_spread(vectors: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-dimension standard deviation of labelled vectors around their own type's centroid."""
    labelled = labels >= 0
    types, of_type = np.unique(labels[labelled], return_inverse=True)
    centroids = np.stack([vectors[labels == t].mean(0) for t in types])
    return (vectors[labelled] - centroids[of_type]).std(axis=0)


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def generated(vectors: np.ndarray, real: RealMentions, rng: np.random.Generator) -> np.ndarray:
    """New unit rows near ``vectors``: each plus Gaussian noise of the real within-type spread."""
    return unit(vectors + rng.standard_normal(vectors.shape, dtype=np.float32) * real.spread)


def documents(real: RealMentions, rng: np.random.Generator):
    """(doc id, text, mention rows) forever: the real sentences once, then generated copies of them."""
    for copy in itertools.count():
        for number, rows in enumerate(real.by_sentence):
            vectors = real.vectors[rows]
            if copy:
                vectors = generated(vectors, real, rng)
            text = real.texts[real.sentence_ids[rows[0]]]
            mentions = [{"start": int(s), "end": int(e), "surface": text[s:e], "vector": v}
                        for s, e, v in zip(real.starts[rows], real.ends[rows], vectors)]
            yield f"{number}-{copy}", text, copy, mentions


class GrowingIndex:
    """The bench's index, grown to each size in turn, with every stored vector kept for exact search."""

    def __init__(self, ner: NerOs, name: str, real: RealMentions, encoder: str | None, seed: int, graph: dict,
                 reuse: bool = False):
        self.ner, self.name, self.client = ner, name, ner.opensearch
        self.stream = documents(real, np.random.default_rng(seed))
        self.vectors, self.doc_of, self.doc_ids = [], [], []
        self.mentions, self.build_total_s, self.reuse = 0, 0.0, reuse
        if reuse:  # a --keep run's index: the same seed makes the same documents again, for exact search
            return
        dim = real.vectors.shape[1]
        self.client.indices.delete(index=name, ignore_unavailable=True)
        body = schema.index_body(name, dim, **graph)
        if encoder:
            body["mappings"]["properties"]["mentions"]["properties"]["vector"]["method"]["parameters"]["encoder"] = \
                {"name": encoder}
        body["mappings"].setdefault("_meta", {})[schema.VECTORS_META] = dict(ner.encoder_identity())
        self.client.indices.create(index=name, body=body)
        self.client.indices.put_settings(index=name, body={"index": {"refresh_interval": "-1"}})

    def grow_to(self, size: int) -> dict:
        if self.reuse:
            return self._regenerate(size)
        started = time.perf_counter()
        result = bulk.bulk_index(self.client, self._actions(size), chunk_size=BULK_CHUNK)
        if result.failures:
            raise SystemExit(f"{len(result.failures)} documents failed, first: {result.failures[0]}")
        bulk_s = time.perf_counter() - started
        self.client.indices.refresh(index=self.name)
        self.client.indices.forcemerge(index=self.name, max_num_segments=1, request_timeout=7200)
        self.client.indices.refresh(index=self.name)
        build_s = time.perf_counter() - started
        self.build_total_s += build_s
        return {"bulk_s": round(bulk_s, 1), "build_s": round(build_s, 1), "build_total_s": round(self.build_total_s, 1)}

    def _regenerate(self, size: int) -> dict:
        """The documents of the index a run with these arguments left (``--keep``), made again, unwritten."""
        for _ in self._actions(size):
            pass
        stored = self.client.count(index=self.name)["count"]
        if stored != len(self.doc_ids):
            raise SystemExit(f"--reuse: index {self.name} holds {stored} documents, these arguments make "
                             f"{len(self.doc_ids)}: it was not built by this seed and size")
        return {"bulk_s": None, "build_s": None, "build_total_s": None, "reused": True}

    def _actions(self, size: int):
        while self.mentions < size:
            doc_id, text, copy, mentions = next(self.stream)
            for mention in mentions:
                self.vectors.append(mention["vector"])
                self.doc_of.append(len(self.doc_ids))
                mention.update(vector_fields(mention["vector"]))
            self.doc_ids.append(doc_id)
            self.mentions += len(mentions)
            yield {"_index": self.name, "_id": doc_id,
                   "_source": {"doc_id": doc_id, "text": text, "metadata": {"copy": copy}, "mentions": mentions}}

    def exact_top(self, queries: np.ndarray, top: int = 10, chunk: int = 64) -> list[set[str]]:
        """Each query's exact top documents (best mention's cosine), by numpy over every stored vector."""
        matrix, owners = np.stack(self.vectors), np.asarray(self.doc_of)
        order = np.argsort(owners, kind="stable")
        matrix, starts = matrix[order], np.flatnonzero(np.r_[True, np.diff(owners[order]) != 0])
        group_owner = owners[order][starts]  # the document of each reduced column
        tops = []
        for rows in np.array_split(unit(queries), max(1, -(-len(queries) // chunk))):  # bounded memory at 1M
            best = np.maximum.reduceat(rows @ matrix.T, starts, axis=1)
            tops += [{self.doc_ids[group_owner[i]] for i in np.argsort(-row)[:top]} for row in best]
        return tops

    def memory(self) -> dict:
        nodes = self.client.nodes.stats(metric="jvm")["nodes"].values()
        heap = sum(node["jvm"]["mem"]["heap_used_in_bytes"] for node in nodes) / 2**20
        store = self.client.indices.stats(index=self.name)["indices"][self.name]["primaries"]["store"]
        per_million = 1e6 / self.mentions
        return {"heap_mb": round(heap, 1), "disk_mb": round(store["size_in_bytes"] / 2**20, 1),
                "heap_mb_per_million": round(heap * per_million, 1),
                "disk_mb_per_million": round(store["size_in_bytes"] / 2**20 * per_million, 1)}


def percentiles(samples_ms: list[float]) -> tuple[float, float]:
    return round(float(np.percentile(samples_ms, 50)), 2), round(float(np.percentile(samples_ms, 99)), 2)


def measure(ner: NerOs, index: GrowingIndex, type_vectors: dict[str, np.ndarray], descriptions: list[str],
            queries: int, depth: int | None) -> dict:
    """Both modes at k-NN depth ``depth``; recall@10 over every query vector asked (the type names' and the new
    descriptions'), and over the Few-NERD type descriptions' alone (``recall_at_10_fewnerd_types``)."""
    knn_ms, returned = [], {}
    for description, vector in itertools.islice(itertools.cycle(type_vectors.items()), max(queries, len(type_vectors))):
        started = time.perf_counter()
        results = ner.search_vector(vector, TypeQuery(description, k=depth), index=index.name)
        knn_ms.append((time.perf_counter() - started) * 1000)
        returned[description] = set(results.ids)
    default_ms, asked = [], dict(type_vectors)
    for description in descriptions:
        ner.clear_type_vectors()
        started = time.perf_counter()
        results = ner.search_type(description, index=index.name, k=depth)
        default_ms.append((time.perf_counter() - started) * 1000)
        returned[description], asked[description] = set(results.ids), ner.type_vector(description)
    exact = dict(zip(asked, index.exact_top(np.stack(list(asked.values())))))
    recall = {d: len(returned[d] & want) / len(want) for d, want in exact.items()}
    (knn_p50, knn_p99), (default_p50, default_p99) = percentiles(knn_ms), percentiles(default_ms)
    k = TypeQuery("k", k=depth, shards=ner.index_shards(index.name)).knn_k  # per shard
    return {"k": k, "k_default": depth is None, "knn_p50_ms": knn_p50, "knn_p99_ms": knn_p99, "default_p50_ms": default_p50,
            "default_p99_ms": default_p99, "recall_at_10": round(float(np.mean(list(recall.values()))), 4),
            "recall_queries": len(recall),
            "recall_at_10_fewnerd_types": round(float(np.mean([recall[d] for d in type_vectors])), 4)}


def measure_depths(ner: NerOs, index: GrowingIndex, type_vectors: dict[str, np.ndarray], fresh_descriptions,
                   queries: int, depths: list[int | None], warmup: int = DESCRIPTION_WARMUP) -> dict:
    """The row's figures at the product's default depth (the first), and ``by_depth`` for every depth asked:
    the same new descriptions at each depth (the type-vector cache emptied before every query)."""
    for number, (description, vector) in enumerate(itertools.islice(itertools.cycle(type_vectors.items()), warmup)):
        ner.search_vector(vector, TypeQuery(description), index=index.name)
        if number < DESCRIPTION_WARMUP:  # the same new descriptions warm up in every run, so that all time the same
            ner.search_type(next(fresh_descriptions), index=index.name)
    descriptions = list(itertools.islice(fresh_descriptions, queries))
    by_depth = [measure(ner, index, type_vectors, descriptions, queries, depth) for depth in depths]
    return {**by_depth[0], "by_depth": by_depth}


def generated_statistics(real: RealMentions, rng: np.random.Generator, sample: int = 2000) -> dict:
    """How close generated rows stay to real ones: cosine to their source, and to the nearest real row."""
    rows = rng.choice(len(real), size=min(sample, len(real)), replace=False)
    source = real.vectors[rows]
    made = generated(source, real, rng)
    nearest_other = np.sort(source @ real.vectors.T, axis=1)[:, -2]
    return {"cosine_to_source_mean": round(float((made * source).sum(1).mean()), 4),
            "cosine_to_nearest_real_mean": round(float((made @ real.vectors.T).max(1).mean()), 4),
            "real_cosine_to_nearest_other_real_mean": round(float(nearest_other.mean()), 4),
            "spread_rms": round(float(np.sqrt((real.spread ** 2).sum())), 4)}


def type_score_statistics(real: RealMentions, type_vectors: dict[str, np.ndarray], rng: np.random.Generator) -> dict:
    """How generated rows score against the type queries next to real ones: for each type, the share of
    generated rows (one copy of every real row) above the real rows' 99th percentile (1 % if alike)."""
    made = generated(real.vectors, real, rng)
    queries = unit(np.stack(list(type_vectors.values())))
    real_scores, made_scores = queries @ real.vectors.T, queries @ made.T
    cutoffs = np.percentile(real_scores, 99, axis=1, keepdims=True)
    above = (made_scores > cutoffs).mean(axis=1)
    return {"generated_share_above_real_p99_mean": round(float(above.mean()), 4),
            "generated_share_above_real_p99_min": round(float(above.min()), 4),
            "generated_share_above_real_p99_max": round(float(above.max()), 4),
            "real_score_p99_mean": round(float(cutoffs.mean()), 4),
            "generated_score_p99_mean": round(float(np.percentile(made_scores, 99, axis=1).mean()), 4)}


def generated_against_real(real: RealMentions, type_vectors: dict[str, np.ndarray]) -> dict:
    return {**generated_statistics(real, np.random.default_rng(1)),
            **type_score_statistics(real, type_vectors, np.random.default_rng(2))}


def fresh_descriptions():
    """Descriptions never asked before in this process: HEADS x MODIFIERS, then numbered ones."""
    for modifier, head in itertools.product(MODIFIERS, HEADS):
        yield f"{modifier} {head}".strip()
    for number in itertools.count():
        yield f"{HEADS[number % len(HEADS)]} number {number}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="OpenSearch URL [default: NER_OS_OPENSEARCH_URL, else the local node]")
    parser.add_argument("--index", default="nerosbench-scale")
    parser.add_argument("--data", type=Path, default=FEWNERD)
    parser.add_argument("--sizes", default="100000,300000,1000000", help="mention counts, ascending")
    parser.add_argument("--queries", type=int, default=200, help="timed queries per mode and size")
    parser.add_argument("--depths", default="default",
                        help="k-NN depths (k, per shard) to measure, the first one the row's; 'default': the "
                             "product's own k for the index (KNN_CANDIDATES split over its shards)")
    parser.add_argument("--encoder", choices=["sq"], help="lucene scalar quantisation of the stored vectors")
    parser.add_argument("--hnsw-m", type=int, default=schema.DEFAULT_PARAMS["hnsw_m"], help="the HNSW graph's m")
    parser.add_argument("--ef-construction", type=int, default=schema.DEFAULT_PARAMS["hnsw_ef_construction"],
                        help="the HNSW graph's ef_construction")
    parser.add_argument("--shards", type=int, default=schema.DEFAULT_PARAMS["shards"],
                        help="primary shards of the index (each holds its own graphs; k is per shard)")
    parser.add_argument("--merge-threads", type=int,
                        help="set the cluster's knn.algo_param.index_thread_qty (Lucene HNSW merge workers) first")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--keep", action="store_true", help="leave the index for a look afterwards")
    parser.add_argument("--reuse", action="store_true",
                        help="measure the index a --keep run of the same --sizes (one), --seed and --index left, "
                             "building nothing (build figures are then null)")
    parser.add_argument("--warmup", type=int, default=DESCRIPTION_WARMUP,
                        help=f"untimed k-NN queries before the timed ones (the first {DESCRIPTION_WARMUP} each with a new "
                             "description too)")
    parser.add_argument("--chart", type=Path, default=CHART, help="latency against mentions (PNG; needs matplotlib)")
    parser.add_argument("--redraw", action="store_true", help="only draw --chart again from query.json's scale rows")
    parser.add_argument("--summary", action="store_true",
                        help="only merge --out's rows into query.json again (and redraw --chart)")
    parser.add_argument("--statistics", action="store_true",
                        help="only print how generated rows compare with real ones (no index)")
    args = parser.parse_args()
    if args.redraw:
        draw_chart(json.loads(SUMMARY.read_text()), args.chart)
        return
    if args.summary:
        write_summary(json.loads(args.out.read_text()), args.out)
        draw_chart(json.loads(SUMMARY.read_text()), args.chart)
        return

    started, load_before = time.perf_counter(), os.getloadavg()
    settings = Settings.resolve(opensearch_url=args.url)
    ner = NerOs(settings, embedding="local")
    ner.__dict__["type_vector_cache"] = None  # no disk level: a rerun would read the last run's descriptions
    real = RealMentions(settings, args.data)
    print(f"{len(real)} distinct real mentions in {len(real.by_sentence)} sentences", flush=True)
    descriptions = list(dict.fromkeys(json.loads((args.data / "type_names.json").read_text()).values()))
    type_vectors = {d: ner.type_vector(d) for d in descriptions}
    if args.statistics:
        print(json.dumps(generated_against_real(real, type_vectors), indent=2))
        return
    graph = {"hnsw_m": args.hnsw_m, "hnsw_ef_construction": args.ef_construction, "shards": args.shards}
    if args.merge_threads:
        ner.opensearch.cluster.put_settings(body={"transient": {"knn.algo_param.index_thread_qty": args.merge_threads}})
    index = GrowingIndex(ner, args.index, real, args.encoder, args.seed, graph, reuse=args.reuse)
    fresh = fresh_descriptions()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    depths = [None if d == "default" else int(d) for d in args.depths.split(",")]
    statistics = generated_against_real(real, type_vectors)
    scale = []
    for size in sizes:
        built = index.grow_to(size)
        row = {"mentions": index.mentions, "documents": len(index.doc_ids), "distinct": True,
               "real_mentions": min(len(real), index.mentions), **built, **index.memory(),
               **measure_depths(ner, index, type_vectors, fresh, args.queries, depths, args.warmup),
               "load_average": os.getloadavg()}
        print(row, flush=True)
        scale.append(row)
        complete = len(scale) == len(sizes)
        report = {  # written after every size: a run stopped midway keeps the sizes it measured
            "scale": scale, "complete": complete, "sizes_asked": sizes, "distinct_checked": None,
            "encoder": args.encoder or "none (float32)", "graph": graph,
            "merge_threads": merge_threads(ner),
            "real_mentions": len(real), "generated_statistics": statistics,
            "how_generated": __doc__.split("\n\n")[1].replace("\n", " "),
            "queries_per_mode": args.queries, "depths": depths, "load_average_before": load_before, "load_average_after": os.getloadavg(),
            "command": command("bench/scale.py"), "machine": machine(), "date": utc_now(),
            "seconds": round(time.perf_counter() - started, 1)}
        write_json(args.out, report)
    # the check (minutes and gigabytes at 1M) after the figures are safe on disk
    report["distinct_checked"] = len(np.unique(np.stack(index.vectors).round(6), axis=0)) == len(index.vectors)
    write_json(args.out, report)
    if not (args.keep or args.reuse):
        ner.opensearch.indices.delete(index=args.index, ignore_unavailable=True)
    print(f"wrote {args.out}")
    template_graph = all(graph[key] == schema.DEFAULT_PARAMS[key] for key in ("hnsw_m", "hnsw_ef_construction"))
    if not args.encoder and template_graph and args.out.resolve().parent == RESULTS.resolve():  # not a /tmp look
        write_summary(json.loads(args.out.read_text()), args.out)
        draw_chart(json.loads(SUMMARY.read_text()), args.chart)


def merge_threads(ner: NerOs) -> int:
    """The cluster's Lucene HNSW merge workers (knn.algo_param.index_thread_qty), as it builds the graphs."""
    found = ner.opensearch.cluster.get_settings(include_defaults=True, flat_settings=True)
    for level in ("transient", "persistent", "defaults"):
        if "knn.algo_param.index_thread_qty" in found.get(level, {}):
            return int(found[level]["knn.algo_param.index_thread_qty"])
    return 1


def draw_chart(summary: dict, path: Path) -> None:
    """query.json's ``scale`` rows (each run at the product's default k): p50 and p99 of both modes against the
    number of mentions (log x), a line per shard count, recall@10 written at each point."""
    try:
        import matplotlib
    except ImportError:
        print("no matplotlib (pip install 'ner-os[eval]'): chart not drawn")
        return
    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    for shards in sorted({row.get("shards", 1) for row in summary["scale"]}):
        rows = sorted((row for row in summary["scale"] if row.get("shards", 1) == shards), key=lambda row: row["mentions"])
        sizes, fill = [row["mentions"] for row in rows], "full" if shards == 1 else "none"
        for key, label, style, colour in (("knn", "k-NN, type vector given", "-o", "tab:blue"),
                                          ("default", "new description each time", "-s", "tab:green")):
            axes.plot(sizes, [row[f"{key}_p50_ms"] for row in rows], style, color=colour, fillstyle=fill,
                      label=f"{shards} shard{'s' * (shards > 1)}, {label}: p50")
            axes.plot(sizes, [row[f"{key}_p99_ms"] for row in rows], style, color=colour, fillstyle=fill, alpha=0.35,
                      label=f"{shards} shard{'s' * (shards > 1)}, {label}: p99")
        for size, row in zip(sizes, rows):
            axes.annotate(f"{shards}: k {row['k']}, recall@10 {row['recall_at_10']:.3f}", (size, row["knn_p50_ms"]),
                          textcoords="offset points", xytext=(0, -14 - 9 * (shards - 1)), ha="center", fontsize=6)
    axes.set_xscale("log")
    axes.margins(x=0.2)  # room for the first and last points' labels
    axes.set_xlabel("distinct mention vectors in the index")
    axes.set_ylabel("ms per query")
    axes.set_ylim(bottom=0)
    axes.set_title("One local node, 2-core CPU, float32 vectors, the product's default k per shard", fontsize=9)
    axes.legend(fontsize=6)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    print(f"drew {path}")


def write_summary(report: dict, source: Path) -> None:
    """Merge a run of the template's graph (any shard count) into query.json: its rows at the product's default
    k join the ``scale`` list (replacing rows of the same mentions and shards), and ``uncached_p50_ms`` /
    ``uncached_p99_ms`` are the default mode's at the largest size measured, with the shards they had."""
    shards = report.get("graph", {}).get("shards", 1)
    keys = ["mentions", "distinct", "k", "knn_p50_ms", "knn_p99_ms", "default_p50_ms", "default_p99_ms", "recall_at_10",
            "recall_queries", "build_s", "heap_mb", "disk_mb", "heap_mb_per_million", "disk_mb_per_million", "load_average"]
    rows = [{**{key: row.get(key) for key in keys}, **default_depth(row, shards), "shards": shards}
            for row in report["scale"]]
    summary = json.loads(SUMMARY.read_text()) if SUMMARY.is_file() else {}
    kept = [row for row in summary.get("scale", [])
            if (row["mentions"], row.get("shards", 1)) not in {(new["mentions"], shards) for new in rows}]
    scale = sorted(kept + rows, key=lambda row: (row.get("shards", 1), row["mentions"]))
    largest = max(rows, key=lambda row: row["mentions"])
    how = f"{os.path.relpath(source, RESULTS.parent.parent)} ({report['command']}, {report['date']})"
    merge_json(SUMMARY, {"scale": scale, "uncached_p50_ms": largest["default_p50_ms"],
                         "uncached_p99_ms": largest["default_p99_ms"], "uncached_at_mentions": largest["mentions"],
                         "uncached_shards": shards, "scale_source": how})
    print(f"updated {SUMMARY}")


def default_depth(row: dict, shards: int) -> dict:
    """The figures of ``row``'s depth that is the product's default k for ``shards`` (the row's own when unmeasured)."""
    default = TypeQuery("k", shards=shards).knn_k
    for depth in row.get("by_depth", []):
        if depth["k"] == default:
            return {key: value for key, value in depth.items() if key != "k_default"}
    return {}

if __name__ == "__main__":
    main()
