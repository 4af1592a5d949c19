"""Start time of the local OpenSearch node (Maven launcher), cold JVM, build already cached.

Each run starts a node on a fresh data directory, waits for yellow health, and stops it.

    python bench/opensearch_node.py [--runs 3]

Writes ``bench/results/opensearch_node.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import RESULTS, command, machine, utc_now, write_json
from ner_os.store.node import lifecycle as local_node
from ner_os.config import Settings



def timed_start(settings: Settings) -> tuple[float, local_node.NodeStatus]:
    began = time.perf_counter()
    record = local_node.start(settings)
    seconds = time.perf_counter() - began
    try:
        return seconds, local_node.describe_cluster(record.url, record.kind)
    finally:
        local_node.stop(settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "opensearch_node.json")
    args = parser.parse_args()

    base = Settings.resolve()
    if local_node.docker_engine_answers():
        sys.exit("a Docker engine answers: this benchmark measures the Maven launcher; run it without Docker")
    build_was_cached = (base.cache_path / "opensearch-node" / local_node.launcher_hash() / "BUILD_OK").is_file()
    build_began = time.perf_counter()
    build_dir = local_node.build_launcher(base)  # Maven runs only when the launcher sources changed
    build_s = time.perf_counter() - build_began
    load_before = os.getloadavg()[0]

    starts, node = [], None
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="ner-os-bench-") as data_dir:
            seconds, node = timed_start(base.replace(data_dir=data_dir))
            starts.append(round(seconds, 2))
            print(f"start to yellow health: {seconds:.2f} s", flush=True)

    java_banner = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()[0]
    result = {
        "what": "local OpenSearch node start (cold JVM, fresh data dir, build cached) until yellow health",
        "start_s": starts,
        "start_median_s": statistics.median(starts),
        "build_s": round(build_s, 2),
        "build_was_cached": build_was_cached,
        "opensearch_version": node.version,
        "plugins": node.plugins,
        "heap": local_node.HEAP,
        "build_dir": str(build_dir),
        "command": command(),
        # the 2 cores are shared with other work: the load gives context for the figures
        "machine": machine(load_average_1m={"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
                           java=java_banner),
        "date": utc_now(),
    }
    write_json(args.out, result)
    print(f"median {result['start_median_s']} s -> {args.out}")


if __name__ == "__main__":
    main()
