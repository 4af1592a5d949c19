"""Docs/s of the single-process loader against the Ray engine with 1 and with 2 workers, on this CPU.

The first ``--sentences`` Few-NERD INTER test sentences (text only: spans by the default spaCy
detector) are cut into ``--rounds`` slices. Each round loads its slice three times, into three fresh
indexes, the order of the engines turning each round, so that the shared machine's noise falls on
all three alike:

- ``single``: :func:`ner_os.loader.load` (threads: read -> spans -> encode -> bulk), the model
  loaded once for the whole run;
- ``ray_1`` and ``ray_2``: :func:`ner_os.ray.load_file` on a local Ray of ``--cpus`` CPUs with 1 or 2
  embedding actors of 1 CPU each (spans fused into them), each actor loading the model.

Docs/s are documents over load wall time summed over the rounds: from the first line read (the Ray
engine: from its first worker having its encoder loaded; the actors' model loading is reported as
setup) to the last write acknowledged. Reported too: the encoder's share of the workers' time (encode
seconds over workers x wall, and over their busy seconds), the load average during each engine's
runs, and ray_2 / single. Writes ``bench/results/ray_load.json``:

    python bench/ray_load.py                           # NER_OS_OPENSEARCH_URL, or the local node
    python bench/ray_load.py --sentences 60 --rounds 1 # a quick look
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path

from _common import FEWNERD, RESULTS, load_average, write_result
from load import LoadSampler, write_corpus

from ner_os.config import Settings
from ner_os.loader import load
from ner_os.store import connection, schema

OUT = RESULTS / "ray_load.json"
ENGINES = ("single", "ray_1", "ray_2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=800)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray")
    parser.add_argument("--batch-docs", type=int, default=64, help="Documents per Ray batch")
    parser.add_argument("--data", type=Path, default=FEWNERD)
    parser.add_argument("--url", help="OpenSearch URL [default: NER_OS_OPENSEARCH_URL or the local node]")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    started = time.perf_counter()

    import ray

    from ner_os.mentions.embedder import MentionEmbedder
    from ner_os.ray import load_file
    from ner_os.spans import detector_from_name

    work = Path(tempfile.mkdtemp(prefix="ner-os-bench-ray-"))
    settings = Settings.resolve(opensearch_url=args.url, data_dir=str(work / "data"))
    texts = write_corpus(args.data, args.sentences, work / "all.jsonl")
    slices = [texts[i::args.rounds] for i in range(args.rounds)]
    embedder = MentionEmbedder.from_settings(settings)  # the single-process loader's, built once
    detector = detector_from_name("spacy")
    embedder.encoder.encode(texts[:16])
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    client = connection.client_from_settings(settings)
    runs = {engine: [] for engine in ENGINES}
    loads = {engine: [] for engine in ENGINES}
    for number, chunk in enumerate(slices):
        corpus = work / f"round-{number}.jsonl"
        write_corpus_texts(chunk, corpus)
        order = ENGINES[number % 3:] + ENGINES[:number % 3]
        for engine in order:
            index = f"bench-ray-{engine.replace('_', '')}-{uuid.uuid4().hex[:8]}"
            with LoadSampler() as sampled:
                if engine == "single":
                    summary = load(corpus, settings.replace(index=index), embedder=embedder, detector=detector,
                                   progress=False, resume=False)
                else:
                    summary = load_file(corpus, settings.replace(index=index), workers=int(engine[-1]),
                                        batch_docs=args.batch_docs, progress=False)
            runs[engine].append(summary)
            loads[engine].extend(sampled.samples)
            client.indices.delete(index=index)
            schema.remove_templates(client, index)
            print(f"round {number} {engine}: {summary.docs_per_s:.2f} docs/s", flush=True)
    report = result(runs, loads, args)
    write_result(args.out, report, "bench/ray_load.py", None, started)
    print(report)


def write_corpus_texts(texts: list[str], path: Path) -> None:
    path.write_text("".join(json.dumps({"text": text}, ensure_ascii=False) + "\n" for text in texts),
                    encoding="utf-8")


def result(runs: dict, loads: dict, args) -> dict:
    engines = {}
    for engine, summaries in runs.items():
        workers = 1 if engine == "single" else int(engine[-1])
        wall = sum(summary.wall_seconds for summary in summaries)
        documents = sum(summary.run_documents for summary in summaries)
        seconds = {name: sum(summary.stage_seconds.get(name, 0.0) for summary in summaries)
                   for name in summaries[0].stage_seconds}
        busy = seconds["spans"] + seconds["encode"] + seconds["head"]
        engines[engine] = {
            "docs_per_s": round(documents / wall, 2) if wall else 0.0,
            "documents": documents,
            "mentions": sum(summary.run_mentions for summary in summaries),
            "wall_s": round(wall, 1),
            "setup_s": round(sum(summary.setup_seconds for summary in summaries), 1),
            "encoder_share_of_worker_time": round(seconds["encode"] / (workers * wall), 3) if wall else 0.0,
            "encoder_share_of_worker_busy": round(seconds["encode"] / busy, 3) if busy else 0.0,
            "stage_busy_s": {name: round(value, 1) for name, value in seconds.items()},
            "load_average": {"mean": round(sum(loads[engine]) / max(1, len(loads[engine])), 2),
                             "max": round(max(loads[engine], default=0.0), 2)},
        }
    single = engines["single"]["docs_per_s"]
    return {
        "engines": engines,
        "ray_2_over_single": round(engines["ray_2"]["docs_per_s"] / single, 3) if single else None,
        "ray_1_over_single": round(engines["ray_1"]["docs_per_s"] / single, 3) if single else None,
        "target": "ray_2 >= 0.9 x single",
        "corpus": f"first {args.sentences} sentences of Few-NERD INTER test in {args.rounds} interleaved rounds, "
                  "spans by spaCy",
        "settings": {"profile": "gemma3-270m", "backend": "onnx", "device": "cpu", "ray_cpus": args.cpus,
                     "cpus_per_worker": 1,
                     "batch_docs": args.batch_docs},
        "load_average_at_end": load_average(),
    }


if __name__ == "__main__":
    main()
