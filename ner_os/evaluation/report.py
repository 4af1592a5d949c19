"""What ``ner-os eval`` writes: a markdown table, the JSON of every figure, and a chart.

``eval.md``: macro scores per system (R-Precision, the same without catch-all types, P@10,
Recall@100, MAP), the ratios the project's targets are stated in, and R-Precision per type.
``eval.json``: everything, with the command, the machine, the date and where the time went.
``eval-r-precision.png``: R-Precision per type per system as a dot plot, one row per type, the
macro average on top; colour is the system, a filled dot gold spans, an open one detected spans.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ner_os.evaluation.results import EvalResult

MARKDOWN_FILE = "eval.md"
JSON_FILE = "eval.json"
CHART_FILE = "eval-r-precision.png"
MACRO_COLUMNS = (
    ("r_precision", "R-Prec"),
    ("r_precision_specific", "R-Prec w/o catch-all"),
    ("p_at_10", "P@10"),
    ("recall_at_100", "R@100"),
    ("average_precision", "MAP"),
)
# the systems' colours stay the same from chart to chart
SYSTEM_COLOURS = {
    "bm25": "#7f7f7f",
    "dense": "#1f77b4",
    "raw": "#ff7f0e",
    "raw-exact": "#bcbd22",
    "ner-os": "#d62728",
    "ner-os-exact": "#9467bd",
    "hybrid": "#2ca02c",
}


def write_report(result: EvalResult, out: str | Path) -> dict[str, Path]:
    """Write the markdown table, the JSON and the chart into directory ``out``; their paths by kind."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / MARKDOWN_FILE, "json": out / JSON_FILE, "chart": out / CHART_FILE}
    paths["json"].write_text(json.dumps(result.to_dict(), indent=2, sort_keys=False) + "\n", encoding="utf-8")
    paths["markdown"].write_text(markdown(result), encoding="utf-8")
    plot_r_precision(result, paths["chart"])
    return paths


def _figure(value: float | None) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def macro_rows(result: EvalResult) -> list[dict]:
    """One row per run: its name, system, spans and macro figures (``r_precision_specific`` included)."""
    rows = []
    for run in result.runs:
        figures = dict(run.scores.macro)
        figures["r_precision_specific"] = run.scores.macro_specific["r_precision"]
        rows.append({"name": run.spec.name, "system": run.spec.system, "spans": run.spec.spans or "–", **figures})
    return rows


def comparisons(result: EvalResult) -> list[tuple[str, str]]:
    """The ratios and gaps the project's targets are stated in, for the systems that ran."""
    lines = []
    for spans in result.span_sources:
        macro = result.macro_r_precision(spans)
        ner_os = macro.get("ner-os")
        if ner_os is None:
            continue
        for baseline in ("bm25", "dense"):
            if macro.get(baseline):
                lines.append((f"ner-os / {baseline} [{spans}]", f"{ner_os / macro[baseline]:.2f}x"))
        if "ner-os-exact" in macro:
            lines.append((f"ner-os-exact − ner-os [{spans}] (what HNSW costs)", f"{macro['ner-os-exact'] - ner_os:+.3f}"))
        if "hybrid" in macro:
            lines.append((f"hybrid − ner-os [{spans}]", f"{macro['hybrid'] - ner_os:+.3f}"))
    return lines


def markdown(result: EvalResult) -> str:
    sampled = (f" (a seeded sample, seed {result.seed}, of {result.sentences_in_file:,} sentences)"
               if result.documents < result.sentences_in_file else "")
    lines = [
        f"# ner-os eval: {Path(result.data).name}",
        "",
        f"{result.documents:,} documents{sampled}, {len(result.types)} types; "
        f"wall time {result.wall_seconds:.0f} s; {result.date}.",
        "",
        *([model_line(result.model), ""] if result.model else []),
        "## Macro averages",
        "",
        "| system | spans | " + " | ".join(label for _, label in MACRO_COLUMNS) + " |",
        "|---|---|" + "---:|" * len(MACRO_COLUMNS),
    ]
    for row in macro_rows(result):
        lines.append(f"| {row['system']} | {row['spans']} | "
                     + " | ".join(_figure(row[key]) for key, _ in MACRO_COLUMNS) + " |")
    compared = comparisons(result)
    if compared:
        lines += ["", "| comparison | value |", "|---|---:|"] + [f"| {name} | {value} |" for name, value in compared]
    if result.span_detection:
        detection = result.span_detection
        lines += ["", f"Detected spans against the gold spans: recall {detection['recall_exact']:.3f} exact, "
                      f"{detection['recall_same_end']:.3f} same end, {detection['recall_overlap']:.3f} overlapping; "
                      f"{detection['spans_per_text']:.2f} spans per sentence (gold {detection['gold_per_text']:.2f})."]
    lines += ["", "## R-Precision per type", "",
              "| type | query | R | " + " | ".join(run.spec.name for run in result.runs) + " |",
              "|---|---|---:|" + "---:|" * len(result.runs)]
    for eval_type in result.types:
        cells = []
        for run in result.runs:
            scores = run.scores.per_type.get(eval_type.label)
            cells.append(_figure(scores.r_precision if scores else None))
        catch_all = " *" if any(eval_type.label in run.scores.catch_all for run in result.runs) else ""
        lines.append(f"| {eval_type.label}{catch_all} | {eval_type.description} | {len(eval_type.relevant):,} | "
                     + " | ".join(cells) + " |")
    if any(run.scores.catch_all for run in result.runs):
        lines += ["", "\\* catch-all type, left out of “R-Prec w/o catch-all”."]
    lines += ["", "## Where the time went", "", "| step | seconds |", "|---|---:|"]
    lines += [f"| {name} | {seconds:.1f} |" for name, seconds in result.timings.items()]
    if result.command:
        lines += ["", "Command:", "", "```", result.command, "```"]
    return "\n".join(lines) + "\n"


def model_line(model: dict) -> str:
    """Which models produced the vectors, in one line."""
    parts = []
    encoder = model.get("encoder")
    if encoder:
        numerics = model.get("dtype")
        if model.get("query_dtype") not in (None, numerics):
            numerics = f"{numerics}, descriptions {model['query_dtype']}"
        parts.append(f"encoder {encoder['profile']} layer {encoder['layer']} ({model.get('backend')}, {numerics})")
    if "head" in model:
        parts.append(f"head {model['head']}" if model["head"] else "no head: ner-os ran on raw value vectors")
    if model.get("dense"):
        parts.append(f"dense {model['dense']['model']}")
    return "Models: " + "; ".join(parts) + "."


def plot_r_precision(result: EvalResult, path: str | Path) -> Path:
    """A dot plot of R-Precision: a row per type (macro first), a dot per run."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    rows = ["macro"] + [t.label for t in result.types]
    descriptions = {t.label: t.description for t in result.types}
    labels = ["macro average"] + [f"{descriptions[label]}  (R={len(t.relevant):,})"
                                  for label, t in zip(rows[1:], result.types)]
    height = max(3.0, 1.0 + 0.45 * len(rows))
    figure, axes = plt.subplots(figsize=(10, height), dpi=120)
    offsets = _row_offsets(len(result.runs))
    for run, offset in zip(result.runs, offsets):
        values = [run.scores.macro["r_precision"]] + [
            run.scores.per_type[label].r_precision if label in run.scores.per_type else math.nan for label in rows[1:]]
        colour = SYSTEM_COLOURS.get(run.spec.system, "#17becf")
        detected = run.spec.spans == "detected"
        axes.scatter(values, [len(rows) - 1 - i + offset for i in range(len(rows))], s=42, marker="o",
                     facecolors="white" if detected else colour, edgecolors=colour, linewidths=1.6,
                     label=run.spec.name, zorder=3)
    axes.set_yticks(range(len(rows)))
    axes.set_yticklabels(list(reversed(labels)))
    axes.get_yticklabels()[-1].set_fontweight("bold")
    axes.axhline(len(rows) - 1.5, color="#444444", linewidth=0.8)
    for y in range(len(rows)):
        axes.axhspan(y - 0.5, y + 0.5, color="#f2f2f2" if y % 2 else "white", zorder=0)
    axes.set_xlim(-0.02, 1.02)
    axes.set_ylim(-0.6, len(rows) - 0.4)
    axes.set_xlabel("R-Precision (higher is better)")
    axes.grid(axis="x", color="#dddddd", zorder=1)
    axes.set_title(f"R-Precision per type: {Path(result.data).name}, {result.documents:,} sentences", fontsize=11)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=9,
                title="filled: gold spans\nopen: detected spans", title_fontsize=8.5, alignment="left")
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, bbox_inches="tight")
    plt.close(figure)
    return path


def _row_offsets(count: int) -> list[float]:
    """Small vertical offsets so that runs with equal scores do not hide each other."""
    if count <= 1:
        return [0.0] * count
    spread = min(0.6, 0.06 * (count - 1))
    return [spread / 2 - spread * i / (count - 1) for i in range(count)]
