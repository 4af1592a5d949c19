"""What every bench script shares: this checkout on ``sys.path``, the data and results paths, the
machine description, the command line, and writing a result as JSON.

A script runs as ``python bench/<name>.py``, so ``bench/`` is on ``sys.path`` and ``from _common
import ...`` (first, before any ``ner_os`` import) puts the checkout's root there too.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results"
FEWNERD = ROOT.parent / "shared" / "data" / "fewnerd-inter"  # the Few-NERD INTER folder (train slices, test)
FEWNERD_TEST = FEWNERD / "inter_test.txt"
SAMPLE = ROOT / "ner_os" / "samples" / "fewnerd-sample.jsonl"


def machine(**extra: Any) -> dict:
    """Platform, processor, cores and Python, plus ``extra`` (load averages, GPU ...): what the figures ran on."""
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), **extra}


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (the cores are shared: context for every timing)."""
    return [round(value, 2) for value in os.getloadavg()]


def command(script: str | None = None, argv: Sequence[str] | None = None) -> str:
    """``python <script> <arguments>``: the script relative to the checkout, the arguments of this run."""
    script = script or Path(os.path.relpath(sys.argv[0], ROOT)).as_posix()
    return "python " + " ".join([script, *(argv if argv is not None else sys.argv[1:])])


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def write_json(out: str | Path, report: dict) -> Path:
    """``report`` as indented JSON at ``out`` (folders made as needed)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return out


def merge_json(out: str | Path, keys: dict) -> Path:
    """Set ``keys`` in the JSON object at ``out`` (made when missing), leaving its other keys as they are:
    for a summary file that several benches fill (bench/results/query.json)."""
    out = Path(out)
    report = json.loads(out.read_text()) if out.is_file() else {}
    report.update(keys)
    return write_json(out, report)


def write_result(out: str | Path, report: dict, script: str, argv: Sequence[str] | None, started: float) -> dict:
    """``report`` plus how, where and when it was made (command, machine, date, seconds since
    ``started``), written as JSON to ``out``; returns it."""
    report.update({
        "command": command(script, argv),
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "seconds": round(time.perf_counter() - started, 1),
    })
    write_json(out, report)
    return report
