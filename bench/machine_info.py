"""The machine description every benchmark writes beside its figures."""

import json
import os
import platform
import sys
import time
from pathlib import Path


def machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version()}


def write_result(out, report: dict, script: str, argv, started: float) -> dict:
    """``report`` plus how, where and when it was made (command, machine, date, seconds since
    ``started``), written as JSON to ``out``; returns it."""
    report.update({
        "command": "python " + " ".join([script] + (argv if argv is not None else sys.argv[1:])),
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "seconds": round(time.perf_counter() - started, 1),
    })
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(report, indent=2) + "\n")
    return report
