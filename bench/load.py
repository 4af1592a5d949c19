"""Throughput of ``ner-os load`` on real sentences, and how close it comes to the encoder alone.

The first ``--sentences`` Few-NERD INTER test sentences (default 2,000) are written as JSONL (text
only: spans come from the detector, as for a user's corpus) and, in one process with one loaded
model:

1. ``encoder_alone``: ``Encoder.encode`` on all the texts (its own length-sorted token-budget
   batches): the rate the loader cannot beat;
2. ``load``: the whole loader into a fresh index (read -> spans -> encode -> head -> bulk), timed
   from the first line read to the last write acknowledged, once per ``--spans`` detector (default
   ``spacy,encoder,union``; a fresh index each). The top-level figures are the default detector's
   (``union``); ``by_spans`` holds each, with its wall time relative to the spaCy load
   (``wall_vs_spacy``) and the detection's busy seconds over the wall time (``spans_share``).

Reported: docs/s and mentions/s of the load, busy seconds per stage, the encoder's share of the
load's wall time, and docs/s relative to the encoder alone. The machine is shared: the load average
is sampled during each phase and recorded. Writes ``bench/results/load.json``:

    python bench/load.py                      # NER_OS_OPENSEARCH_URL, or the local node
    python bench/load.py --backend torch --sentences 500
    python bench/load.py --sentences 500 --spans spacy,encoder,union
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
    parser.add_argument("--spans", default="spacy,encoder,union", help="detectors, one load each (default first: union)")
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
    from ner_os.spans import DEFAULT_DETECTOR, detector_from_name

    corpus = work / "fewnerd-test.jsonl"
    texts = write_corpus(args.data, args.sentences, corpus)
    names = [name.strip() for name in args.spans.split(",") if name.strip()]
    started = time.perf_counter()
    embedder = MentionEmbedder.from_settings(settings)
    detectors = {name: detector_from_name(name, profile=settings.profile, encoder=embedder.encoder) for name in names}
    setup_s = time.perf_counter() - started
    embedder.encoder.encode(texts[:16])  # warm the runtime before anything is timed
    for detector in detectors.values():
        detector.detect(texts[:16])

    with LoadSampler() as alone_load:
        started = time.perf_counter()
        embedder.encoder.encode(texts)
        encoder_alone_s = time.perf_counter() - started
    alone_docs_per_s = len(texts) / encoder_alone_s
    by_spans = {}
    for name, detector in detectors.items():
        by_spans[name] = one_load(corpus, settings.replace(index=f"{index}-{name}"), embedder, detector, texts,
                                  alone_docs_per_s)
    spacy_wall = by_spans.get("spacy", {}).get("load_wall_s")
    for row in by_spans.values():
        row["wall_vs_spacy"] = round(row["load_wall_s"] / spacy_wall, 3) if spacy_wall else None
    default = by_spans.get(DEFAULT_DETECTOR) or next(iter(by_spans.values()))
    result = {
        **{key: value for key, value in default.items()},
        "spans": DEFAULT_DETECTOR if DEFAULT_DETECTOR in by_spans else names[0],
        "by_spans": by_spans,
        "encoder_alone_docs_per_s": round(alone_docs_per_s, 2),
        "encoder_alone_s": round(encoder_alone_s, 2),
        "distinct_texts": len(set(texts)),  # a repeated sentence has the same content-hash id: one document
        "setup_s": {"model_and_detectors": round(setup_s, 1), "load_setup": default["setup_s"]},
        "settings": {"profile": settings.profile, "backend": settings.backend, "device": settings.device,
                     "dtype": settings.numerics, "batch_tokens": settings.batch_tokens,
                     "layer": embedder.encoder.layer, "dim": embedder.dim,
                     "head": None if embedder.head is None else embedder.head.manifest.get("source")},
        "corpus": f"first {len(texts)} sentences of Few-NERD INTER test, spans by the detector",
        "load_average": {"encoder_alone": alone_load.summary(), **{name: row.pop("load_average")
                                                                    for name, row in by_spans.items()}},
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "date": utc_now(),
    }
    write_json(args.out, result)
    print(json.dumps(result, indent=2))


def one_load(corpus: Path, settings: Settings, embedder, detector, texts: list[str], alone_docs_per_s: float) -> dict:
    """One load of the corpus into a fresh index (deleted after): its figures."""
    with LoadSampler() as sampled:
        summary = load(corpus, settings, embedder=embedder, detector=detector, progress=False)
    client = connection.client_from_settings(settings)
    stored = client.count(index=settings.index)["count"]
    client.indices.delete(index=settings.index)
    schema.remove_templates(client, settings.index)
    spans_s = summary.stage_seconds.get("spans", 0.0)
    return {
        "docs_per_s": round(summary.docs_per_s, 2),
        "mentions_per_s": round(summary.mentions_per_s, 2),
        "encoder_share": round(summary.encoder_share, 3),
        "spans_share": round(spans_s / summary.wall_seconds, 3) if summary.wall_seconds else None,
        "vs_encoder_alone": round(summary.docs_per_s / alone_docs_per_s, 3),
        "documents": summary.documents,
        "documents_in_index": stored,
        "mentions": summary.mentions,
        "mentions_per_document": round(summary.mentions / max(summary.documents, 1), 3),
        "rejected": summary.rejected,
        "load_wall_s": round(summary.wall_seconds, 2),
        "stage_busy_s": {name: round(seconds, 2) for name, seconds in summary.stage_seconds.items()},
        "setup_s": round(summary.setup_seconds, 1),
        "load_average": sampled.summary(),
    }


if __name__ == "__main__":
    main()
