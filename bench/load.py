"""Throughput of ``ner-os load`` on real sentences, and how close it comes to the encoder alone.

The first ``--sentences`` Few-NERD INTER test sentences (default 2,000) are written as JSONL (text
only: spans come from the default spaCy detector, as for a user's corpus) and, in one process with
one loaded model:

1. ``encoder_alone``: ``Encoder.encode`` on all the texts (its own length-sorted token-budget
   batches): the rate the loader cannot beat;
2. ``load``: the whole loader into a fresh index (read -> spans -> encode -> head -> bulk), timed
   from the first line read to the last write acknowledged.

Reported: docs/s and mentions/s of the load, busy seconds per stage, the encoder's share of the
load's wall time, and docs/s relative to the encoder alone. The machine is shared: the load average
is sampled during each phase and recorded. Writes ``bench/results/load.json``:

    python bench/load.py                      # NER_OS_OPENSEARCH_URL, or the local node
    python bench/load.py --backend torch --sentences 500
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from _common import FEWNERD, RESULTS, machine, utc_now, write_json
from ner_os.store import connection, schema
from ner_os.store.node import lifecycle as local_node
from ner_os.config import Settings
from ner_os.loader import load

OUT = RESULTS / "load.json"


class LoadSampler:
    """The 1-minute load average, sampled every second while a phase runs (the CPU is shared)."""

    def __init__(self):
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.samples.append(os.getloadavg()[0])
            self._stop.wait(1.0)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        if not self.samples:
            return {}
        return {"mean": round(sum(self.samples) / len(self.samples), 2), "max": round(max(self.samples), 2)}


def write_corpus(data: Path, count: int, path: Path) -> list[str]:
    from ner_os.evaluation.readers import read_bio

    texts = []
    for sentence in read_bio(data / "inter_test.txt"):
        texts.append(sentence.text)
        if len(texts) == count:
            break
    path.write_text("".join(json.dumps({"text": text}, ensure_ascii=False) + "\n" for text in texts), encoding="utf-8")
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--data", type=Path, default=FEWNERD)
    parser.add_argument("--url", help="OpenSearch URL [default: NER_OS_OPENSEARCH_URL or the local node]")
    parser.add_argument("--backend", choices=["onnx", "torch"], help="[default: the settings' (onnx)]")
    parser.add_argument("--batch-tokens", type=int)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    index = f"bench-load-{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix="ner-os-bench-load-"))
    settings = Settings.resolve(opensearch_url=args.url, backend=args.backend, batch_tokens=args.batch_tokens,
                                index=index, data_dir=str(work / "data"))
    node_started_here = settings.opensearch_url is None and local_node.running(settings) is None
    try:
        run(args, settings, work, index)
    finally:
        if node_started_here:
            local_node.stop(settings)


def run(args, settings: Settings, work: Path, index: str) -> None:
    from ner_os.mentions.embedder import MentionEmbedder
    from ner_os.spans import detector_from_name

    corpus = work / "fewnerd-test.jsonl"
    texts = write_corpus(args.data, args.sentences, corpus)
    started = time.perf_counter()
    embedder = MentionEmbedder.from_settings(settings)
    detector = detector_from_name("spacy")
    setup_s = time.perf_counter() - started
    embedder.encoder.encode(texts[:16])  # warm the runtime before anything is timed

    with LoadSampler() as alone_load:
        started = time.perf_counter()
        embedder.encoder.encode(texts)
        encoder_alone_s = time.perf_counter() - started
    with LoadSampler() as load_load:
        summary = load(corpus, settings, embedder=embedder, detector=detector, progress=False)
    client = connection.client_from_settings(settings)
    stored = client.count(index=index)["count"]
    client.indices.delete(index=index)
    schema.remove_templates(client, index)

    alone_docs_per_s = len(texts) / encoder_alone_s
    result = {
        "docs_per_s": round(summary.docs_per_s, 2),
        "mentions_per_s": round(summary.mentions_per_s, 2),
        "encoder_share": round(summary.encoder_share, 3),
        "vs_encoder_alone": round(summary.docs_per_s / alone_docs_per_s, 3),
        "encoder_alone_docs_per_s": round(alone_docs_per_s, 2),
        "documents": summary.documents,
        "documents_in_index": stored,
        "distinct_texts": len(set(texts)),  # a repeated sentence has the same content-hash id: one document
        "mentions": summary.mentions,
        "rejected": summary.rejected,
        "load_wall_s": round(summary.wall_seconds, 2),
        "encoder_alone_s": round(encoder_alone_s, 2),
        "stage_busy_s": {name: round(seconds, 2) for name, seconds in summary.stage_seconds.items()},
        "setup_s": {"model_and_detector": round(setup_s, 1), "load_setup": round(summary.setup_seconds, 1)},
        "settings": {"profile": settings.profile, "backend": settings.backend, "device": settings.device,
                     "dtype": settings.dtype, "batch_tokens": settings.batch_tokens,
                     "layer": embedder.encoder.layer, "dim": embedder.dim,
                     "head": None if embedder.head is None else embedder.head.manifest.get("source")},
        "corpus": f"first {len(texts)} sentences of Few-NERD INTER test, spans by spaCy",
        "load_average": {"encoder_alone": alone_load.summary(), "load": load_load.summary()},
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "date": utc_now(),
    }
    write_json(args.out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
