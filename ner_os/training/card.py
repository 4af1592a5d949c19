"""The model card of a head (and detector) trained on a user's corpus: ``MODEL_CARD.md`` beside the weights.

It says what was trained on (the data file and name map with their sha256), which types, how many
sentences and mentions each part held, the dev figures, the command and the date, so that a head
found later in a folder can be traced to its data.
"""

from __future__ import annotations

import datetime
from typing import Any

CARD_FILE = "MODEL_CARD.md"


def corpus_card(training: Any, head_dir: str, detector_dir: str | None, command: str | None) -> str:
    """The card's markdown for a :class:`ner_os.training.corpus.CorpusTraining` saved to ``head_dir``."""
    corpus, split, head = training.corpus, training.split, training.head.head
    files = corpus.data_files
    encoder = head.encoder
    lines = [f"# Head trained on {corpus.data_file.name}", "",
             f"- Encoder: profile `{encoder['profile']}`, model `{encoder['model']}`, layer {encoder['layer']}, "
             f"d_v {encoder['d_v']}; head {head.in_dim} -> {head.hidden_dim} -> {head.out_dim}, digest "
             f"`{head.digest[:12]}`",
             f"- Data: `{files['data']['path']}` ({corpus.data_format}), sha256 `{files['data']['sha256']}`",
             f"- Name map: `{files['types']['path']}`, sha256 `{files['types']['sha256']}`",
             f"- Sentences: {len(corpus.sentences)} ({len(split.train)} train, {len(split.dev)} dev, seeded split)",
             f"- Trained: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}, "
             f"{training.head.seconds:.0f} s",
             f"- Command: `{command or 'the Python API (ner_os.client.train_on_corpus)'}`",
             "", "## Types (mentions: train / dev)", "", "| label | description | train | dev |", "|---|---|---|---|"]
    train_counts, dev_counts = corpus.mention_counts(split.train), corpus.mention_counts(split.dev)
    lines += [f"| {label} | {description} | {train_counts.get(label, 0)} | {dev_counts.get(label, 0)} |"
              for label, description in corpus.type_names.items()]
    lines += ["", "## Dev figures", ""] + _head_figures(training.dev)
    if training.detector is not None:
        lines += ["", *_detector_lines(training.detector, detector_dir)]
    lines += ["", "## Use", "", f"    ner-os load CORPUS.jsonl --head {head_dir} --replace-index",
              f"    ner-os search \"{next(iter(corpus.type_names.values()))}\" --head {head_dir}",
              f"    ner-os eval --data DATA --types NAMES.json --head {head_dir}"]
    return "\n".join(lines) + "\n"


def _head_figures(dev: dict) -> list[str]:
    if not dev:
        return ["No dev part was held out (dev share 0): no figures."]
    figures = dev["r_precision"]
    lines = [f"Macro R-Precision of the {len(dev['types'])} types over the {dev['sentences']} dev sentences "
             "(gold spans, exact search, each type queried by its description):", "",
             "| vectors | R-Precision |", "|---|---|"]
    names = {"trained": "this head", "shipped_head": "the head shipped for the profile", "raw_vectors": "raw value vectors"}
    return lines + [f"| {names.get(name, name)} | {value:.4f} |" for name, value in figures.items()]


def _detector_lines(detector: Any, detector_dir: str | None) -> list[str]:
    record = detector.record
    lines = ["## Span detector", "",
             f"In `{detector_dir}` (found by `--head` with `--spans encoder` or `union`), started from "
             f"{detector.started_from}; trained on the train sentences' gold spans, cased and lowercased "
             f"({record.data['tokens']} tokens, {record.data['spans']} spans per casing), end threshold "
             f"{record.decoding['end_threshold']}.", ""]
    dev = record.figures.get("dev")
    if not dev:
        return lines + ["No dev part was held out: no figures."]
    lines += ["Dev sentences: same-end recall / precision (same end) / spans per sentence (gold per sentence):", "",
              "| detector | cased | lowercased |", "|---|---|---|"]
    for name, by_casing in dev.items():
        cells = [f"{s['same_end_recall']:.3f} / {s['precision_same_end']:.3f} / {s['spans_per_sentence']:.2f} "
                 f"({s['gold_per_sentence']:.2f})" for s in (by_casing["cased"], by_casing["lower"])]
        lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    return lines
