"""Query by example and relevance feedback, measured: macro R-Precision on the dev folds and on Few-NERD test.

Documents are sentences ranked by their best mention (exact cosine); a document is relevant to a type
when it holds a gold mention of it. Every pool's sentences are split in two by a seeded draw (seed 0):
the *example* half, whose gold mentions of a type are where its examples come from, and the *evaluated*
half, every gold mention of which is ranked. So an example is never itself in the evaluated pool.

- dev folds (``bench/layers.py`` Folds: the plan's dev types and two seeded draws; 8 held-out train types
  each, heads trained with the shipped recipe on ``--train-sentences`` train-slice sentences free of them):
  the pool is every gold mention (train types too) of the evaluated half of the fold's dev sentences;
- Few-NERD test (``bench/head.py`` test_vectors, the shipped head): the gold mentions of the evaluated half
  of the 14,006 test sentences. Reported only: every choice is made on the dev folds.

Examples: per type, ``--draws`` seeded draws (``numpy.random.default_rng([draw, type number])``) of 5
distinct surfaces among the type's gold mentions in the example half, each with one of its mentions; the
first 1, 3, 5 of a draw are the 1, 3, 5 examples. Two kinds: the surface read alone, as ``--like Nile``
embeds it (a description's path), and the mention in its sentence, as ``--like DOCID:START-END`` / ``HIT:N``
take it (the stored vector). Feedback: the description's top 5 documents marked right or wrong from the
gold labels, each standing for its best mention, one Rocchio round; R-Precision of the new full ranking.

Writes the keys ``examples`` and ``feedback`` of ``bench/results/queries_beyond.json`` (merged with what
the file holds):

    python bench/queries_beyond.py
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from _common import FEWNERD, RESULTS, command, machine, utc_now, write_json
from head import test_vectors
from layers import Folds
from queries_folds import chosen_texts

from ner_os.config import Settings
from ner_os.evaluation.metrics import ExactRanker, evaluate
from ner_os.head import ProjectionHead, encoder_identity, shipped_head_path
from ner_os.mentions.positions import description_text
from ner_os.profiles import resolve_profile
from ner_os.query import combine, rocchio
from ner_os.training import (DataPlan, LabelledText, TrainConfig, encoder_factory, load_train_set,
                             mention_vector_cache, mention_vectors, read_sentences, train_head)
from ner_os.training.data import TRAIN_FILES

COUNTS = (1, 3, 5)
DESCRIPTION_WEIGHTS = (0.5, 1.0, 2.0, 3.0, 5.0, 8.0)  # the description counts as this many examples
SHARES = (0.3, 0.5, 0.6, 0.7, 0.8, 0.9)  # the other rule: share * description + (1 - share) * examples' mean
RIGHT_WEIGHTS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
WRONG_WEIGHTS = (0.0, 0.25, 0.5, 1.0)
FEEDBACK_TOP = 5
KINDS = ("surface", "in_context")


@dataclass
class Pool:
    """One evaluation: its types, their description vectors, the evaluated mentions, and examples."""

    name: str
    types: list[str]
    descriptions: np.ndarray  # [types, dim]
    units: np.ndarray  # evaluated mentions, [n, dim]
    doc_ids: list[str]
    relevant: dict[str, set]
    head: ProjectionHead
    candidates: dict[str, list[tuple[str, np.ndarray]]]  # type -> (surface, in-context unit) of the example half
    examples: dict = field(default_factory=dict)  # (kind, draw) -> {type: [unit vectors]}

    def __post_init__(self):
        self.ranker = ExactRanker(self.units, self.doc_ids)
        self.depth = FEEDBACK_TOP + max(len(docs) for docs in self.relevant.values())

    def rankings(self, queries: np.ndarray):
        return self.ranker.rank_many(queries, top_n=self.depth)

    def r_precision(self, queries: np.ndarray, leave_out: list[set] | None = None) -> float:
        """Macro R-Precision; ``leave_out``: per type, documents taken out of its ranking and relevant set."""
        leave_out = leave_out or [set()] * len(self.types)
        ranked = {label: [doc for doc in ranking.doc_ids if doc not in left]
                  for label, ranking, left in zip(self.types, self.rankings(queries), leave_out)}
        relevant = {label: self.relevant[label] - left for label, left in zip(self.types, leave_out)}
        return float(evaluate(ranked, relevant).macro["r_precision"])


def halves(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded split of ``n`` sentences: (example half, evaluated half)."""
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2:])


def make_pool(name, types, descriptions, head, mentions, layer, texts, label_of, example_sentences) -> Pool:
    """``mentions``: MentionVectors of the pool's sentences (``texts`` indexed by their sentence ids)."""
    units = head.project(mentions.vectors[layer], "mention")
    in_examples = np.isin(mentions.sentence_ids, example_sentences)
    labels = np.asarray(label_of, dtype=object)
    evaluated = np.flatnonzero(~in_examples)
    evaluated_ids, evaluated_labels = mentions.sentence_ids[evaluated], labels[evaluated]
    relevant = {label: {str(s) for s in evaluated_ids[evaluated_labels == label]} for label in types}
    candidates = {label: [(texts[mentions.sentence_ids[row]][mentions.starts[row]:mentions.ends[row]], units[row])
                          for row in np.flatnonzero(in_examples & (labels == label))] for label in types}
    return Pool(name, list(types), descriptions, units[evaluated], [str(s) for s in mentions.sentence_ids[evaluated]],
                relevant, head, candidates)


def draw_examples(pool: Pool, draws: int) -> dict[tuple[int, int], list[tuple[str, np.ndarray]]]:
    """(draw, type number) -> up to 5 (surface, in-context unit) pairs of distinct surfaces."""
    out = {}
    for number, label in enumerate(pool.types):
        by_surface: dict[str, list[np.ndarray]] = {}
        for surface, unit in pool.candidates[label]:
            by_surface.setdefault(surface, []).append(unit)
        surfaces = sorted(by_surface)
        for draw in range(draws):
            rng = np.random.default_rng([draw, number])
            chosen = [surfaces[i] for i in rng.permutation(len(surfaces))[: max(COUNTS)]]
            out[draw, number] = [(s, by_surface[s][int(rng.integers(len(by_surface[s])))]) for s in chosen]
    return out


def surface_vectors(settings, layer: int, surfaces: set[str]) -> dict[str, np.ndarray]:
    """Each surface read alone (as a description is): raw value vectors, cached."""
    ordered = sorted(surfaces)
    texts = [LabelledText(text, ((start, end, None),)) for text, (start, end) in map(description_text, ordered)]
    raw = mention_vectors(mention_vector_cache(settings), texts, [layer], encoder_factory(settings),
                          description="encoding example surfaces").vectors[layer]
    return dict(zip(ordered, raw))


def fill_examples(pools: list[Pool], settings, layer: int, draws: int) -> None:
    drawn = {pool.name: draw_examples(pool, draws) for pool in pools}
    raw = surface_vectors(settings, layer, {s for d in drawn.values() for pairs in d.values() for s, _ in pairs})
    for pool in pools:
        for draw in range(draws):
            pairs = {label: drawn[pool.name][draw, number] for number, label in enumerate(pool.types)}
            pool.examples["in_context", draw] = {label: [unit for _, unit in p] for label, p in pairs.items()}
            pool.examples["surface", draw] = {label: list(pool.head.project(np.stack([raw[s] for s, _ in p]), "query"))
                                             if p else [] for label, p in pairs.items()}


def example_queries(pool: Pool, kind: str, draw: int, n: int, weight: float | None, rule: str = "count") -> np.ndarray:
    """Per type: its first ``n`` examples, with the description weighed as ``weight`` examples (None: none;
    rule ``share``: the description's share of the sum with the examples' normalised mean).
    A type without examples in the example half keeps its description."""
    rows = []
    for label, description in zip(pool.types, pool.descriptions):
        examples = pool.examples[kind, draw][label][:n]
        if not examples:
            rows.append(description)
        elif rule == "share":
            mean = combine(None, examples)
            rows.append(combine(None, [weight * description + (1 - weight) * mean]))
        else:
            rows.append(combine(None if weight is None else description, examples, weight or 0.0))
    return np.stack(rows)


def example_figures(pool: Pool, draws: int, weights, shares=SHARES) -> dict:
    """Mean over draws: n examples alone, and with the description at each weight; per kind."""
    out = {"description": round(pool.r_precision(pool.descriptions), 4)}
    for kind in KINDS:
        figures = {}
        for n in COUNTS:
            figures[f"{n} examples"] = mean_over(
                draws, lambda d: pool.r_precision(example_queries(pool, kind, d, n, None)))
            for weight in weights:
                figures[f"description + {n} examples, weight {weight:g}"] = mean_over(
                    draws, lambda d: pool.r_precision(example_queries(pool, kind, d, n, weight)))
            for share in shares:
                figures[f"description + {n} examples, share {share:g}"] = mean_over(
                    draws, lambda d: pool.r_precision(example_queries(pool, kind, d, n, share, "share")))
        out[kind] = figures
    return out


def mean_over(draws: int, score) -> float:
    return round(float(np.mean([score(draw) for draw in range(draws)])), 4)


def feedback_figures(pool: Pool, pairs) -> dict:
    """One round: the description's top documents marked from gold labels, for each (right, wrong) weight."""
    marked, seen = [], []
    for label, ranking in zip(pool.types, pool.rankings(pool.descriptions)):
        top = list(zip(ranking.doc_ids, ranking.best_mentions))[:FEEDBACK_TOP]
        marked.append(([pool.units[row] for doc, row in top if doc in pool.relevant[label]],
                       [pool.units[row] for doc, row in top if doc not in pool.relevant[label]]))
        seen.append({doc for doc, _ in top})
    out = {"marked_right_per_query": round(float(np.mean([len(right) for right, _ in marked])), 3),
           "residual": {"description": round(pool.r_precision(pool.descriptions, seen), 4)}}
    for right_weight, wrong_weight in pairs:
        queries = np.stack([rocchio(description, right, wrong, right_weight, wrong_weight)
                            for description, (right, wrong) in zip(pool.descriptions, marked)])
        name = f"right {right_weight:g}, wrong {wrong_weight:g}"
        out[name] = round(pool.r_precision(queries), 4)
        out["residual"][name] = round(pool.r_precision(queries, seen), 4)
    return out


def fold_head(settings, fold, layer: int, n_train: int, number: int) -> ProjectionHead:
    """The shipped recipe trained on the fold's train types (kept under the cache dir for reruns)."""
    directory = Path(settings.cache_dir) / "bench-fold-heads" / f"layer{layer}-train{n_train}-fold{number}"
    if (directory / "manifest.json").is_file():
        return ProjectionHead.load(directory)
    data = fold.training_data(layer, hold_out_dev=True)
    head = train_head(data, TrainConfig(), {"profile": settings.profile, "layer": layer,
                                            "d_v": int(data.mentions.shape[1])}, progress=False).head
    head.save(directory)
    return head


def dev_pools(settings, layer: int, n_train: int) -> list[Pool]:
    plan = DataPlan()  # the sentences bench/highlight.py encodes: their vectors are cached
    train_set = load_train_set(settings, FEWNERD, [layer], plan)
    texts = chosen_texts(plan, read_sentences([FEWNERD / name for name in TRAIN_FILES]), train_set.dev_types)
    pools = []
    for number, fold in enumerate(Folds(train_set, n_train or None).folds):
        head = fold_head(settings, fold, layer, n_train, number)
        rows = np.flatnonzero(np.isin(train_set.mentions.sentence_ids, fold.dev_sentences))
        mentions = train_set.mentions.subset(rows)
        example_half, _ = halves(len(fold.dev_sentences), seed=number)
        descriptions = head.project(fold.anchors(layer, fold.dev_types), "query")
        pools.append(make_pool(f"dev fold {number + 1}", fold.dev_types, descriptions, head, mentions, layer, texts,
                               mentions.label_of(), fold.dev_sentences[example_half]))
        print(f"{pools[-1].name}: {len(pools[-1].doc_ids)} evaluated mentions, types {fold.dev_types}", flush=True)
    return pools


def test_pool(settings, layer: int, head: ProjectionHead) -> Pool:
    gold, _, _, mentions, descriptions = test_vectors(settings, FEWNERD, [layer], "spacy")
    pool = mentions.gold_and_detected()["gold"]
    types = sorted(set(pool.label_of()))
    example_half, _ = halves(len(gold))
    return make_pool("Few-NERD test", types, head.project(descriptions.of_labels(layer, types), "query"), head,
                     pool, layer, [t.text for t in gold], pool.label_of(), example_half)


def dev_mean(folds: list[dict], path: tuple) -> float:
    values = []
    for fold in folds:
        for key in path:
            fold = fold[key]
        values.append(fold)
    return round(float(np.mean(values)), 4)


def rules() -> list[tuple[str, float]]:
    return [("weight", w) for w in DESCRIPTION_WEIGHTS] + [("share", a) for a in SHARES]


def summary(per_fold: list[dict], feedback: list[dict], pairs) -> tuple[tuple, tuple, dict]:
    """The rule and weights chosen on the dev folds (best mean), and the dev means of every figure."""
    def rule_mean(rule):
        return np.mean([dev_mean(per_fold, (kind, f"description + {n} examples, {rule[0]} {rule[1]:g}"))
                        for kind in KINDS for n in COUNTS])

    rule = max(rules(), key=rule_mean)
    pair = max(pairs, key=lambda p: dev_mean(feedback, (f"right {p[0]:g}, wrong {p[1]:g}",)))
    means = {"description": dev_mean(per_fold, ("description",)),
             **{kind: {name: dev_mean(per_fold, (kind, name)) for name in per_fold[0][kind]} for kind in KINDS},
             "feedback": {name: dev_mean(feedback, (name,)) for name in feedback[0] if name != "residual"},
             "residual": {name: dev_mean(feedback, ("residual", name)) for name in feedback[0]["residual"]}}
    means["rules"] = {f"{name} {value:g}": round(float(rule_mean((name, value))), 4) for name, value in rules()}
    return rule, pair, means


def headline(figures: dict, rule: tuple, pair: tuple) -> dict:
    """The figures the issue asks for, at the chosen rule and weights."""
    out = {"description": figures["description"]}
    for kind in KINDS:
        out[kind] = {**{f"{n} examples": figures[kind][f"{n} examples"] for n in COUNTS},
                     **{f"description + {n} examples":
                        figures[kind][f"description + {n} examples, {rule[0]} {rule[1]:g}"] for n in COUNTS}}
    chosen = f"right {pair[0]:g}, wrong {pair[1]:g}"
    out["after one round of feedback"] = figures["feedback"][chosen]
    out["residual (the 5 marked documents left out)"] = {"description": figures["residual"]["description"],
                                                         "after one round of feedback": figures["residual"][chosen]}
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-sentences", type=int, default=0,
                        help="a seeded draw of this many train-slice sentences per fold head [default 0: all of the "
                             "fold's, as bench/highlight.py trains them]")
    parser.add_argument("--draws", type=int, default=10, help="seeded example draws per type")
    parser.add_argument("--skip-test", action="store_true", help="the dev folds only")
    parser.add_argument("--out", default=str(RESULTS / "queries_beyond.json"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    settings = Settings.resolve()
    layer = resolve_profile(settings.profile, settings.model, settings.layer).layer
    pairs = [(r, w) for r in RIGHT_WEIGHTS for w in WRONG_WEIGHTS]
    pools = dev_pools(settings, layer, args.train_sentences)
    shipped = ProjectionHead.load(shipped_head_path(settings.profile))
    test = None if args.skip_test else test_pool(settings, layer, shipped)
    fill_examples(pools + ([test] if test else []), settings, layer, args.draws)
    per_fold = [example_figures(pool, args.draws, DESCRIPTION_WEIGHTS) for pool in pools]
    feedback = [feedback_figures(pool, pairs) for pool in pools]
    rule, pair, dev = summary(per_fold, feedback, pairs)
    print(json.dumps({"chosen rule": rule, "chosen feedback weights": pair, "dev": headline(dev, rule, pair)},
                     indent=1), flush=True)
    test_figures = None
    if test is not None:
        weights, shares = ([rule[1]], []) if rule[0] == "weight" else ([], [rule[1]])
        fed = feedback_figures(test, [pair])
        test_figures = {**example_figures(test, args.draws, weights, shares), "residual": fed.pop("residual"),
                        "feedback": fed}
    report = write_report(args, pools, per_fold, feedback, dev, rule, pair, test, test_figures, started, argv)
    print(json.dumps(report["examples"].get("test", {}), indent=1))
    return report


def write_report(args, pools, per_fold, feedback, dev, rule, pair, test, test_figures, started, argv) -> dict:
    rule_text = (f"normalise({rule[1]:g} * description + sum of the example vectors)" if rule[0] == "weight" else
                 f"normalise({rule[1]:g} * description + {1 - rule[1]:g} * the examples' normalised mean)")
    report = {"examples": {
        "what": __doc__.split("\n\n", 1)[1].rsplit("\n\n", 2)[0],
        "rule": f"type vector = {rule_text}: chosen on the dev folds among the description counted as w examples "
                f"(w in {list(DESCRIPTION_WEIGHTS)}) and a fixed share a of the description (a in {list(SHARES)}), "
                "best mean over 1/3/5 examples and both kinds; without a description, the examples' normalised mean",
        "chosen": {"rule": rule[0], "value": rule[1]}, "draws": args.draws,
        "train_sentences_per_fold_head": args.train_sentences,
        "dev_folds": [pool.types for pool in pools], "dev": headline(dev, rule, pair),
        "dev_rules": dev["rules"], "dev_all": {kind: dev[kind] for kind in KINDS}, "dev_per_fold": per_fold,
        **({"test": {key: value for key, value in headline(test_figures, rule, pair).items()
                     if key in ("description", *KINDS)}, "test_documents": len(set(test.doc_ids)),
            "test_types": test.types} if test_figures else {}),
    }}
    chosen = f"right {pair[0]:g}, wrong {pair[1]:g}"
    report["feedback"] = {
        "rule": f"refined = normalise(description + {pair[0]:g} * mean(right) - {pair[1]:g} * mean(wrong)), each "
                f"marked hit its best mention; the top {FEEDBACK_TOP} documents of the description marked from gold "
                f"labels; weights chosen on the dev folds (grids {list(RIGHT_WEIGHTS)} x {list(WRONG_WEIGHTS)}); "
                "R-Precision of the whole new ranking, and residual: the marked documents left out of ranking and "
                "relevant set",
        "right_weight": pair[0], "wrong_weight": pair[1],
        "dev": {"description": dev["description"], "after one round": dev["feedback"][chosen],
                "residual": {"description": dev["residual"]["description"], "after one round": dev["residual"][chosen]},
                "marked_right_per_query": dev["feedback"]["marked_right_per_query"]},
        "dev_all": dev["feedback"], "dev_residual_all": dev["residual"], "dev_per_fold": feedback,
        **({"test": {"description": test_figures["description"],
                     "after one round": test_figures["feedback"][chosen],
                     "residual": {"description": test_figures["residual"]["description"],
                                  "after one round": test_figures["residual"][chosen]},
                     "marked_right_per_query": test_figures["feedback"]["marked_right_per_query"]}}
           if test_figures else {}),
    }
    provenance = {"command": command("bench/queries_beyond.py", argv), "machine": machine(), "date": utc_now(),
                  "seconds": round(time.perf_counter() - started, 1)}
    for key in report:
        report[key].update(provenance)
    out = Path(args.out)  # read just before writing: another bench writes its keys into the same file
    write_json(out, (json.loads(out.read_text()) if out.is_file() else {}) | report)
    return report


if __name__ == "__main__":
    main()
