"""Layer choice and head recipe, measured on dev types held out of the 36 INTER train types.

Three dev folds: the plan's 8 dev types and two other seeded draws (one type per coarse category
each time), over the same 8,000 encoded train-slice sentences (6,000 train, 2,000 dev: every layer
compared is encoded, so this runs on a subsample; ``bench/train_size.py`` measures what all of them
give at the chosen layer); every figure is the mean over the folds (per fold in the JSON). The 17
test types are never touched here.

1. raw value vectors at several layers;
2. at the best raw layer, the head recipe built up one part at a time (the format-1 MLP head, then
   per-role centering, the skip), then single changes to the chosen recipe; each run is scored after
   every epoch and the epoch with the best fold mean is kept;
3. at that layer, raw vectors and the recipe with descriptions read as the first token of a text
   instead of after one space (how ner-os read them before: :func:`ner_os.mentions.positions.description_text`);
4. the chosen recipe at the other best raw layers.

Value vectors come from the cache that ``ner-os train`` fills. Writes ``bench/results/layers.json``
and, with ``--docs``, ``docs/layers.md``:

    python bench/layers.py --data ../shared/data/fewnerd-inter --docs
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

from _common import RESULTS, ROOT, write_result
from ner_os.config import Settings
from ner_os.head import l2_normalise, transform_input
from ner_os.training import DataPlan, TrainConfig, load_train_set, train_head

FOLD_SEEDS = (1, 2)  # besides the plan's own dev types
# Every layer compared is encoded, so the comparison runs on a subsample of the train sentences;
# bench/train_size.py measures what all of them give at the chosen layer.
LAYER_SENTENCES = 6000
# The recipe, one part at a time; "centering only" trains nothing.
RECIPE = {
    "MLP only (format-1 head: InfoNCE + mention term)": dict(centering="none", skip_weight=0.0),
    "per-role centering, nothing trained": None,
    "+ per-role centering": dict(skip_weight=0.0),  # the MLP on centred input
    "+ skip 0.5 (the recipe)": {},
}
CHOSEN = "+ skip 0.5 (the recipe)"
QUERY_MAP = "query map ridge 0.1"  # the recipe of the format-2 head shipped before, with CHOSEN
VARIATIONS = {
    "skip 0.3": dict(skip_weight=0.3),
    "skip 0.7": dict(skip_weight=0.7),
    QUERY_MAP: dict(query_map_ridge=0.1),
    "query map ridge 0.03": dict(query_map_ridge=0.03),
    "temperature 0.1": dict(temperature=0.1),
    "mention weight 1.0": dict(mention_weight=1.0),
    "dropout 0.3": dict(dropout=0.3),
    "seed 1": dict(seed=1),
}


def as_first_token(phrase: str) -> tuple[str, tuple[int, int]]:
    """A description or surface read as the very first token of its text (no space before it)."""
    return phrase.strip(), (0, len(phrase.strip()))


class Centred:
    """The per-role input transforms of a recipe alone, as a head: nothing trained."""

    def __init__(self, data, config: TrainConfig):
        self.tensors = data.input_transforms(config)

    def project(self, x, role="mention"):
        return l2_normalise(transform_input(x, self.tensors, role))


class Folds:
    """Trains a recipe on every fold's train types and scores it on that fold's dev types.

    ``n_train``: train on a seeded draw of that many of each fold's train sentences (None: all).
    """

    def __init__(self, train_set, n_train: int | None = None):
        folds = [train_set] + [train_set.refold(seed) for seed in FOLD_SEEDS]
        if n_train is not None:
            folds = [dataclasses.replace(fold, train_sentences=self._draw(fold.train_sentences, n_train))
                     for fold in folds]
        self.folds = folds
        self._cache: dict = {}

    @staticmethod
    def _draw(sentences: np.ndarray, n: int) -> np.ndarray:
        return np.sort(np.random.default_rng(0).permutation(sentences)[:n])

    def _fold(self, index: int, layer: int, centroid_queries: bool = False):
        key = (index, layer, centroid_queries)
        if key not in self._cache:
            fold = self.folds[index]
            self._cache[key] = fold.training_data(layer, hold_out_dev=True), fold.dev_evaluator(layer, centroid_queries)
        return self._cache[key]

    def raw(self, layer: int, centroid_queries: bool = False) -> dict:
        return summarise([[self._fold(i, layer, centroid_queries)[1](None)] for i in range(len(self.folds))])

    def run(self, layer: int, config: TrainConfig | None, base: TrainConfig, centroid_queries: bool = False) -> dict:
        """``centroid_queries``: each dev type queried by its gold mentions' mean, the ceiling of any
        description (:meth:`ner_os.training.trainset.FewNerdTrainSet.dev_evaluator`)."""
        curves = []
        for index in range(len(self.folds)):
            data, evaluate = self._fold(index, layer, centroid_queries)
            if config is None:
                curves.append([evaluate(Centred(data, base))])
                continue
            identity = {"profile": "bench", "layer": layer, "d_v": int(data.mentions.shape[1])}
            curves.append(train_head(data, config, identity, evaluate, progress=False).history)
        return summarise(curves)


def summarise(curves: list[list[dict]]) -> dict:
    """Per fold, per epoch records -> the epoch with the best mean ``dev`` over the folds."""
    means = np.mean([[record["dev"] for record in curve] for curve in curves], axis=0)
    best = int(np.argmax(means))
    return {"dev": round(float(means[best]), 4), "epoch": best + 1,
            "folds": [round(curve[best]["dev"], 4) for curve in curves],
            "dev_only": round(float(np.mean([curve[best]["dev_only"] for curve in curves])), 4),
            "dev_all": round(float(np.mean([curve[best]["dev_all"] for curve in curves])), 4),
            "curve": [round(float(value), 4) for value in means]}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the Few-NERD INTER folder")
    parser.add_argument("--layers", default="6,8,9,12,15,17", help="layers of the raw comparison")
    parser.add_argument("--head-layers", type=int, default=3, help="how many of the best raw layers get a head")
    parser.add_argument("--epochs", type=int, default=6, help="epochs of each run (the best mean epoch is kept)")
    parser.add_argument("--out", default=str(RESULTS / "layers.json"))
    parser.add_argument("--docs", action="store_true", help="also write docs/layers.md")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    log = lambda line: print(line, flush=True)  # noqa: E731
    layers = [int(layer) for layer in args.layers.split(",")]
    settings = Settings.resolve()
    plan = DataPlan(n_train=LAYER_SENTENCES)
    train_set = load_train_set(settings, args.data, layers, plan, phrases=True)  # a variation fits a query map
    folds = Folds(train_set)
    log("dev folds: " + " | ".join(", ".join(fold.dev_types) for fold in folds.folds))

    raw = {layer: folds.raw(layer) for layer in layers}
    for layer in layers:
        log(f"raw layer {layer:2d}: {raw[layer]['dev']:.4f} {raw[layer]['folds']}")
    by_raw = sorted(layers, key=lambda layer: -raw[layer]["dev"])
    base = TrainConfig(epochs=args.epochs)

    def record(results: dict, layer: int, name: str, change: dict | None) -> None:
        config = None if change is None else dataclasses.replace(base, **change)
        results[name] = {"change": change, **folds.run(layer, config, base)}
        log(f"  L{layer} {name:52s} dev {results[name]['dev']:.4f} at epoch {results[name]['epoch']} "
            f"{results[name]['folds']}")

    recipe: dict = {}
    for name, change in RECIPE.items():
        record(recipe, by_raw[0], name, change)
    variations: dict = {}
    for name, change in VARIATIONS.items():
        record(variations, by_raw[0], name, change)
    first_token = Folds(load_train_set(settings, args.data, [by_raw[0]], plan, phrases=True, read_alone=as_first_token))
    tokenisation = {"after one space (ner-os)": {"raw": raw[by_raw[0]], "recipe": recipe[CHOSEN],
                                                 "recipe with query map": variations[QUERY_MAP]},
                    "first token of the text": {"raw": first_token.raw(by_raw[0]),
                                                "recipe": first_token.run(by_raw[0], base, base),
                                                "recipe with query map": first_token.run(
                                                    by_raw[0], dataclasses.replace(base, **VARIATIONS[QUERY_MAP]), base)}}
    for name, runs in tokenisation.items():
        log(f"  L{by_raw[0]} descriptions read {name}: " + ", ".join(f"{run} {runs[run]['dev']:.4f}" for run in runs))
    heads = {by_raw[0]: recipe[CHOSEN]}
    for layer in by_raw[1: args.head_layers]:
        record(heads, layer, f"{CHOSEN} at layer {layer}", {})
        heads[layer] = heads.pop(f"{CHOSEN} at layer {layer}")
    default_layer = max(heads, key=lambda layer: heads[layer]["dev"])

    data = train_set.training_data(by_raw[0], hold_out_dev=True)
    report = {
        "what": "macro R-Precision of held-out dev types (descriptions as queries) over dev sentences, mean of "
                f"{len(folds.folds)} folds; dev_only: pool of dev-type gold mentions; dev_all: all gold mentions; "
                "dev: their mean",
        "dev_folds": [fold.dev_types for fold in folds.folds],
        "plan": dataclasses.asdict(plan),
        "train_mentions_fold_0": int(len(data.labels)),
        "raw": {str(layer): values for layer, values in raw.items()},
        "recipe_layer": by_raw[0],
        "recipe": recipe,
        "variations": variations,
        "description_tokenisation": tokenisation,
        "base_config": dataclasses.asdict(base),
        "heads": {str(layer): values for layer, values in heads.items()},
        "default_layer": default_layer,
    }
    write_result(args.out, report, "bench/layers.py", argv, started)
    if args.docs:
        (ROOT / "docs" / "layers.md").write_text(render_docs(report))
    log(f"default layer {default_layer}; wrote {args.out}")
    return report


def render_docs(report: dict) -> str:
    raw, heads = report["raw"], report["heads"]
    folds = report["dev_folds"]
    lines = [
        "# Layer choice and head recipe (Gemma 3 270M)",
        "",
        "Measured on **dev types held out of the 36 Few-NERD INTER train types** — never on the 17 test",
        "types. Queries are the dev types' plain-words descriptions, read at their last token; documents",
        "are held-out sentences ranked by their best mention (exact cosine). `dev_only`: the pool holds the",
        "dev types' gold mentions (like the gold-span test); `dev_all`: every gold mention of those",
        "sentences, train types too (like detected spans); `dev`: their mean. Every figure is the mean of",
        f"{len(folds)} folds (8 dev types each, one per coarse category; heads train on the other 28 in the",
        "sentences that hold no dev type):",
        "",
        *[f"{i + 1}. {', '.join(types)}" for i, types in enumerate(folds)],
        "",
        f"The sentences: a seeded draw of {report['plan']['n_train']:,} train-slice sentences free of the first fold's",
        f"dev types and {report['plan']['n_dev']:,} holding one, encoded at every layer compared. The shipped head",
        "trains on all the train-slice sentences at the default layer; `bench/train_size.py` measures what that gives.",
        "",
        "## Raw value vectors and heads by layer",
        "",
        "| layer | raw dev_only | raw dev_all | raw dev | head dev | head / raw |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for layer in sorted(raw, key=int):
        head = heads.get(layer)
        cells = [f"{head['dev']:.3f}", f"{head['dev'] / raw[layer]['dev']:.2f}x"] if head else ["", ""]
        lines.append(f"| {layer} | {raw[layer]['dev_only']:.3f} | {raw[layer]['dev_all']:.3f} | "
                     f"{raw[layer]['dev']:.3f} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"**Default layer: {report['default_layer']}** (best head `dev`).",
        "",
        f"## The head recipe, one part at a time (layer {report['recipe_layer']})",
        "",
        "| run | dev | per fold | best epoch |",
        "|---|---:|---|---:|",
        f"| raw value vectors | {raw[str(report['recipe_layer'])]['dev']:.3f} | "
        f"{', '.join(f'{x:.3f}' for x in raw[str(report['recipe_layer'])]['folds'])} | |",
    ]
    for section in ("recipe", "variations"):
        if section == "variations":
            lines += ["", "Single changes to the recipe:", "", "| run | dev | per fold | best epoch |",
                      "|---|---:|---|---:|"]
        runs = report[section]
        for name in sorted(runs, key=lambda name: runs[name]["change"] is None):  # untrained rows last
            run = runs[name]
            lines.append(f"| {name} | {run['dev']:.3f} | {', '.join(f'{x:.3f}' for x in run['folds'])} | "
                         f"{run['epoch'] if run['change'] is not None else ''} |")
    lines += [
        "",
        "## How a description is read",
        "",
        "A description is read alone, after one space, so that its first word gets the token it has inside a",
        "sentence (Gemma's `\u2581actor`, not `actor`; `ner_os.mentions.positions.description_text`). Read as the very",
        "first token of a text instead:",
        "",
        "| description read | raw dev | recipe dev | recipe / raw | recipe + query map 0.1 |",
        "|---|---:|---:|---:|---:|",
        *[f"| {name} | {run['raw']['dev']:.3f} | {run['recipe']['dev']:.3f} | "
          f"{run['recipe']['dev'] / run['raw']['dev']:.2f}x | {run['recipe with query map']['dev']:.3f} |"
          for name, run in report["description_tokenisation"].items()],
        "",
        "The head shipped before read descriptions as first tokens, with the query map.",
    ]
    lines += [
        "",
        "Why each part is there, and what else was tried: `ner_os/heads/gemma3-270m/MODEL_CARD.md`.",
        "",
        f"Reproduce: `{report['command']}` ({report['date']}, {report['machine']['cpu_count']} CPUs, "
        f"{report['seconds']:.0f} s with cached value vectors).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
