"""Build the shipped sample corpus ``ner_os/samples/fewnerd-sample.jsonl`` from Few-NERD.

    python bench/make_sample.py

Deterministic: for each INTER test type (in name order) it draws ``--per-type`` sentences that
hold a gold mention of that type and were not drawn before, with one seeded generator; the lines
keep the file's order. (Every INTER test sentence holds a test-type mention, so there are no
mention-free sentences to add.) Each line
holds ``id``, ``text`` (the sentence's tokens joined by single spaces, as the evaluation reads
them), ``source`` and ``gold`` (gold mentions as character offsets with their Few-NERD label;
the loader keeps it as metadata, the detector never sees it).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from _common import FEWNERD_TEST, SAMPLE
from ner_os.evaluation.readers import Sentence, read_bio

DEFAULT_DATA = FEWNERD_TEST
DEFAULT_OUT = SAMPLE
SOURCE = "few-nerd-inter-test"


def draw_sample(sentences: list[Sentence], per_type: int, seed: int) -> list[Sentence]:
    rng = random.Random(seed)
    chosen: dict[int, Sentence] = {}  # keyed by line number: unique and in file order
    labels = sorted({m.label for s in sentences for m in s.mentions})
    for label in labels:
        candidates = [s for s in sentences if s.line not in chosen and any(m.label == label for m in s.mentions)]
        for sentence in rng.sample(candidates, min(per_type, len(candidates))):
            chosen[sentence.line] = sentence
    return [chosen[line] for line in sorted(chosen)]


def as_record(sentence: Sentence) -> dict:
    return {
        "id": f"fewnerd-inter-test-{sentence.line}",
        "text": sentence.text,
        "source": SOURCE,
        "gold": [{"start": m.start, "end": m.end, "label": m.label} for m in sentence.mentions],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--per-type", type=int, default=18)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    if not args.data.exists():
        sys.exit(f"no data at {args.data} (see ../shared/data/fewnerd-inter/README.md)")
    sample = draw_sample(list(read_bio(args.data)), args.per_type, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as handle:
        for sentence in sample:
            handle.write(json.dumps(as_record(sentence), ensure_ascii=False) + "\n")
    print(f"wrote {len(sample)} sentences to {args.out}")


if __name__ == "__main__":
    main()
