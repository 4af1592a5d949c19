"""Layer choice and head hyper-parameters, measured on dev types held out of the 36 INTER train types.

1. raw value vectors at several layers: macro R-Precision of the dev types' descriptions;
2. at the best raw layer, a sweep of losses and hyper-parameters (each run scored after every
   epoch; a run's score is its best epoch), the leaders rerun with other seeds;
3. the chosen configuration trained at the best raw layers.

The 17 test types are never touched here. Value vectors come from the cache that ``ner-os train``
fills (one encoder pass reads every layer). Writes ``bench/results/layers.json`` and, with
``--docs``, the table in ``docs/layers.md``.

    python bench/layers.py --data ../shared/data/fewnerd-inter --docs
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from machine_info import machine  # noqa: E402

from ner_os.config import Settings  # noqa: E402
from ner_os.training import DataPlan, TrainConfig, load_train_set, train_head  # noqa: E402

# Stage 1 of the sweep: the loss family, each at two learning rates. "paper triplet" is the
# reference recipe (triplet on cosine distance, margin 0.5, anchors = type descriptions, half the
# negatives the hardest of the batch) without its bugs.
LOSSES = {
    "paper triplet": dict(loss="triplet", mention_weight=0.0, hard_pairs_per_type=0, input_norm="none"),
    "triplet + hard pairs": dict(loss="triplet", mention_weight=0.0),
    "triplet + hard pairs + mention term": dict(loss="triplet", mention_weight=0.5),
    "infonce t=0.05 + hard pairs": dict(loss="infonce", mention_weight=0.0),
    "infonce t=0.05 + hard pairs + mention term": dict(loss="infonce", mention_weight=0.5),
    "infonce t=0.1 + hard pairs + mention term": dict(loss="infonce", mention_weight=0.5, temperature=0.1),
}
LEARNING_RATES = (1e-3, 2e-4)
# Stage 2: one change at a time to the best of stage 1.
VARIATIONS = {
    "no hard pairs": dict(hard_pairs_per_type=0),
    "16 hard pairs": dict(hard_pairs_per_type=16),
    "rms input": dict(input_norm="rms"),
    "raw input": dict(input_norm="none"),
    "lr 5e-5": dict(lr=5e-5),
    "dropout 0.3": dict(dropout=0.3),
    "weight decay 0.05": dict(weight_decay=0.05),
    "64 mentions per type": dict(mentions_per_type=64),
    "mention weight 1.0": dict(mention_weight=1.0),
    "hidden 1000": dict(hidden_dim=1000),
}
SEEDS = (1, 2)


def rounded(values: dict) -> dict:
    return {key: round(value, 4) if isinstance(value, float) else value for key, value in values.items()}


class Runner:
    """Trains heads on the train types at a layer and scores them on the dev types after every epoch."""

    def __init__(self, train_set):
        self.train_set = train_set
        self._data, self._evaluators = {}, {}

    def __call__(self, layer: int, config: TrainConfig) -> dict:
        if layer not in self._data:  # built once per layer: the hard pairs are computed once
            self._data[layer] = self.train_set.training_data(layer, hold_out_dev=True)
            self._evaluators[layer] = self.train_set.dev_evaluator(layer)
        data = self._data[layer]
        identity = {"profile": "bench", "layer": layer, "d_v": int(data.mentions.shape[1])}
        result = train_head(data, config, identity, self._evaluators[layer], progress=False)
        best = max(result.history, key=lambda record: record["dev"])
        return {"best": rounded(best), "last": rounded(result.history[-1]), "seconds": round(result.seconds, 1),
                "curve": [round(record["dev"], 4) for record in result.history]}


def sweep(run: Runner, layer: int, base: TrainConfig, log) -> tuple[TrainConfig, dict]:
    results = {}

    def record(name: str, change: dict) -> None:
        results[name] = {"change": change, **run(layer, dataclasses.replace(base, **change))}
        log(f"  {name:52s} best dev {results[name]['best']['dev']:.4f} at epoch {results[name]['best']['epoch']:2d}"
            f" ({results[name]['seconds']:.0f} s)")

    for name, change in LOSSES.items():
        for lr in LEARNING_RATES:
            record(f"{name}, lr {lr:g}", {**change, "lr": lr})
    stage_one = max(results, key=lambda name: results[name]["best"]["dev"])
    chosen = dataclasses.replace(base, **results[stage_one]["change"])
    for name, change in VARIATIONS.items():
        if all(getattr(chosen, key) == value for key, value in change.items()):
            continue
        record(f"{stage_one} + {name}", {**results[stage_one]["change"], **change})
    leaders = sorted(results, key=lambda name: -results[name]["best"]["dev"])[:2]
    for name in leaders:
        config = dataclasses.replace(base, **results[name]["change"])
        seeds = [run(layer, dataclasses.replace(config, seed=seed))["best"] for seed in SEEDS]
        all_seeds = [results[name]["best"]] + seeds
        results[name]["seeds"] = {"best_dev": [s["dev"] for s in all_seeds], "epoch": [s["epoch"] for s in all_seeds],
                                  "mean_best_dev": round(float(np.mean([s["dev"] for s in all_seeds])), 4)}
        log(f"  seeds of {name}: {results[name]['seeds']}")
    winner = max(leaders, key=lambda name: results[name]["seeds"]["mean_best_dev"])
    epochs = int(round(np.median(results[winner]["seeds"]["epoch"])))
    return dataclasses.replace(base, **results[winner]["change"], epochs=epochs), {"runs": results, "winner": winner}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the Few-NERD INTER folder")
    parser.add_argument("--layers", default="6,8,9,12,15,17", help="layers of the raw sweep")
    parser.add_argument("--head-layers", type=int, default=3, help="how many of the best raw layers get a head")
    parser.add_argument("--sweep-layer", type=int, help="layer of the hyper-parameter sweep [default: best raw]")
    parser.add_argument("--epochs", type=int, default=15, help="epochs of each sweep run (best epoch is kept)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "layers.json"))
    parser.add_argument("--docs", action="store_true", help="also write docs/layers.md")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    log = lambda line: print(line, flush=True)  # noqa: E731
    layers = [int(layer) for layer in args.layers.split(",")]
    settings = Settings.resolve()
    plan = DataPlan()
    train_set = load_train_set(settings, args.data, layers, plan)
    log(f"dev types: {', '.join(train_set.dev_types)}")

    raw = {layer: rounded(train_set.dev_evaluator(layer)(None)) for layer in layers}
    for layer in layers:
        log(f"raw layer {layer:2d}: {raw[layer]}")
    by_raw = sorted(layers, key=lambda layer: -raw[layer]["dev"])
    sweep_layer = args.sweep_layer if args.sweep_layer is not None else by_raw[0]

    log(f"sweep at layer {sweep_layer}")
    run = Runner(train_set)
    chosen, sweep_results = sweep(run, sweep_layer, TrainConfig(epochs=args.epochs), log)
    log(f"chosen: {sweep_results['winner']} -> {chosen}")

    heads = {}
    for layer in sorted(set(by_raw[: args.head_layers]) | {sweep_layer}):
        heads[layer] = run(layer, chosen)
        log(f"head layer {layer:2d}: {heads[layer]['last']}")
    default_layer = max(heads, key=lambda layer: heads[layer]["last"]["dev"])

    data = train_set.training_data(sweep_layer, hold_out_dev=True)
    report = {
        "what": "macro R-Precision of held-out dev types (descriptions as queries) over dev sentences; "
                "dev_only: pool of dev-type gold mentions; dev_all: all gold mentions; dev: their mean",
        "dev_types": train_set.dev_types,
        "train_types": data.types,
        "plan": dataclasses.asdict(plan),
        "dev_sentences": int(len(train_set.dev_sentences)),
        "train_sentences": int(len(train_set.train_sentences)),
        "train_mentions": int(len(data.labels)),
        "raw": {str(layer): values for layer, values in raw.items()},
        "sweep_layer": sweep_layer,
        "sweep": sweep_results,
        "chosen_config": dataclasses.asdict(chosen),
        "heads": {str(layer): values for layer, values in heads.items()},
        "default_layer": default_layer,
        "command": "python " + " ".join([str(Path(sys.argv[0]))] + (argv if argv is not None else sys.argv[1:])),
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "seconds": round(time.perf_counter() - started, 1),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    if args.docs:
        (ROOT / "docs" / "layers.md").write_text(render_docs(report))
    log(f"default layer {default_layer}; wrote {args.out}")
    return report


def render_docs(report: dict) -> str:
    raw, heads = report["raw"], report["heads"]
    lines = [
        "# Layer choice (Gemma 3 270M)",
        "",
        "Which block's value vectors ner-os reads, chosen by measurement on **dev types held out of the 36",
        "Few-NERD INTER train types** — never on the 17 test types. Queries are the dev types' plain-words",
        "descriptions, read at their last token like a mention; documents are held-out sentences ranked by",
        "their best mention (exact cosine). `dev_only`: the pool holds the dev types' gold mentions;",
        "`dev_all`: every gold mention of those sentences (train types too); `dev`: their mean.",
        "",
        f"Dev types: {', '.join(report['dev_types'])}.",
        f"{report['dev_sentences']} dev sentences; heads trained on {report['train_mentions']} mentions of "
        f"{len(report['train_types'])} types in {report['train_sentences']} other sentences.",
        "",
        "| layer | raw dev_only | raw dev_all | raw dev | head dev_only | head dev_all | head dev |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for layer in sorted(raw, key=int):
        head = heads.get(layer, {}).get("last")
        head_cells = [f"{head[k]:.3f}" for k in ("dev_only", "dev_all", "dev")] if head else ["", "", ""]
        lines.append(f"| {layer} | {raw[layer]['dev_only']:.3f} | {raw[layer]['dev_all']:.3f} | "
                     f"{raw[layer]['dev']:.3f} | " + " | ".join(head_cells) + " |")
    config = report["chosen_config"]
    lines += [
        "",
        f"**Default layer: {report['default_layer']}** (best head `dev`). Heads use the configuration chosen",
        f"by the sweep at layer {report['sweep_layer']} (`{report['sweep']['winner']}`, {config['epochs']} epochs).",
        "",
        "## Loss and hyper-parameter sweep",
        "",
        f"At layer {report['sweep_layer']}, each run scored after every epoch; best epoch shown.",
        "",
        "| run | best dev | at epoch | dev after last epoch | seeds (best dev) |",
        "|---|---:|---:|---:|---|",
    ]
    for name, run_result in report["sweep"]["runs"].items():
        seeds = run_result.get("seeds", {}).get("best_dev")
        lines.append(f"| {name} | {run_result['best']['dev']:.3f} | {run_result['best']['epoch']} | "
                     f"{run_result['last']['dev']:.3f} | {', '.join(f'{s:.3f}' for s in seeds) if seeds else ''} |")
    lines += [
        "",
        f"Reproduce: `{report['command']}` ({report['date']}, {report['machine']['cpu_count']} CPUs, "
        f"{report['seconds']:.0f} s with cached value vectors).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
