"""The headline retrieval-quality run: ``ner-os eval`` on the Few-NERD INTER test set (17 zero-shot types).

Every system of ``ner-os eval`` on all 14,006 test sentences (or a seeded sample with ``--limit``),
gold and detected spans, the descriptions of ``type_names.json`` as queries. Writes
``bench/results/eval-fewnerd-inter-test.json`` (``macro_r_precision`` per system name, gold spans;
``macro_r_precision_by_spans``; per type figures; the command, machine, date and seconds per step),
its markdown table beside it, and the chart to ``docs/eval-fewnerd-inter-test.png``:

    python bench/eval.py                       # NER_OS_OPENSEARCH_URL, or the local node
    python bench/eval.py --limit 2000          # a seeded sample (say so when quoting it)
    python bench/eval.py --vector-cache        # keep the token vectors: a rerun encodes nothing
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from _common import FEWNERD, RESULTS, ROOT, write_json
from ner_os.config import Settings
from ner_os.evaluation.report import markdown, plot_r_precision
from ner_os.evaluation.plan import DEFAULT_SYSTEMS
from ner_os.evaluation.run import evaluate

OUT = RESULTS / "eval-fewnerd-inter-test.json"
CHART = ROOT / "docs" / "eval-fewnerd-inter-test.png"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=FEWNERD, help="the fewnerd-inter folder")
    parser.add_argument("--systems", default=",".join(DEFAULT_SYSTEMS))
    parser.add_argument("--spans", default="gold,detected")
    parser.add_argument("--limit", type=int, help="a seeded random sample of this many sentences")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vector-cache", action="store_true")
    parser.add_argument("--backend", choices=["onnx", "torch"])
    parser.add_argument("--head", help="a head directory, or none [default: the shipped head]")
    args = parser.parse_args(argv)

    command = "python bench/eval.py " + " ".join(shlex.quote(arg) for arg in (argv if argv is not None else sys.argv[1:]))
    settings = Settings.resolve(backend=args.backend, head=args.head)
    result = evaluate(args.data / "inter_test.txt", args.data / "type_names.json", settings=settings,
                      systems=args.systems, span_sources=args.spans, limit=args.limit, seed=args.seed,
                      vector_cache=args.vector_cache, say=lambda message: print(message, flush=True),
                      command=command.strip())
    write_json(OUT, result.to_dict())
    OUT.with_suffix(".md").write_text(markdown(result))
    plot_r_precision(result, CHART)
    print(markdown(result))
    print(f"wrote {OUT.relative_to(ROOT)}, {OUT.with_suffix('.md').relative_to(ROOT)}, {CHART.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
