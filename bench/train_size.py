"""How many training sentences the head wants, measured on the dev folds of ``bench/layers.py``.

At the default layer, the chosen recipe (and its untrained input transforms) trained on a seeded
draw of 6,000 and 12,000 of each fold's train sentences and on all of them, every run scored on
the same dev sentences; then the ceiling of any description: raw vectors and the recipe queried by
the mean of each dev type's gold mentions. Value vectors come from the cache that ``ner-os train`` fills (all the
train-slice sentences: the first run encodes them). Writes ``bench/results/train_size.json``:

    python bench/train_size.py --data ../shared/data/fewnerd-inter
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from _common import RESULTS, write_result
from layers import Folds

from ner_os.config import Settings
from ner_os.profiles import resolve_profile
from ner_os.training import DataPlan, TrainConfig, load_train_set

SIZES = (6000, 12000, None)  # None: every train sentence of the fold


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the Few-NERD INTER folder")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of each run (the best mean epoch is kept)")
    parser.add_argument("--out", default=str(RESULTS / "train_size.json"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    settings = Settings.resolve()
    layer = resolve_profile(settings.profile, settings.model, settings.layer).layer
    plan = DataPlan()
    train_set = load_train_set(settings, args.data, [layer], plan)
    base = TrainConfig(epochs=args.epochs)
    every = Folds(train_set)  # all of each fold's train sentences
    raw = every.raw(layer)
    print(f"raw value vectors: {raw['dev']:.4f} {raw['folds']}", flush=True)
    runs = {}
    for n_train in SIZES:
        folds = every if n_train is None else Folds(train_set, n_train)
        name = "all" if n_train is None else str(n_train)
        runs[name] = {"train_sentences": [int(len(fold.train_sentences)) for fold in folds.folds],
                      "untrained": folds.run(layer, None, base), "recipe": folds.run(layer, base, base)}
        print(f"train sentences {name:>5}: untrained {runs[name]['untrained']['dev']:.4f}, recipe "
              f"{runs[name]['recipe']['dev']:.4f} at epoch {runs[name]['recipe']['epoch']} "
              f"{runs[name]['recipe']['folds']}", flush=True)
    ceiling = {"raw": every.raw(layer, centroid_queries=True),
               "recipe": every.run(layer, base, base, centroid_queries=True)}
    print(f"ceiling (each dev type queried by its gold mentions' mean): raw {ceiling['raw']['dev']:.4f}, "
          f"recipe {ceiling['recipe']['dev']:.4f}", flush=True)
    report = {
        "what": "macro R-Precision of held-out dev types, mean of the dev folds of bench/layers.py, by the number of "
                "train sentences per fold (untrained: the recipe's input transforms alone); ceiling: all train "
                "sentences, each dev type queried by the mean of its gold dev mentions instead of its description",
        "layer": layer,
        "plan": dataclasses.asdict(plan),
        "dev_folds": [fold.dev_types for fold in every.folds],
        "base_config": dataclasses.asdict(base),
        "raw": raw,
        "runs": runs,
        "ceiling": ceiling,
    }
    write_result(args.out, report, "bench/train_size.py", argv, started)
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
