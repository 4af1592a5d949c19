"""Several types in one query, relative thresholds and compositional descriptions (issue #20, docs/queries.md).

1. ``boolean``: combined queries (``all_of`` / ``any_of`` / ``none_of``) against the brute-force answer
   computed in numpy from the vectors the index stores, on the hand-made corpus (bench/handmade_corpus.py)
   and on the Few-NERD sample (ner_os/samples, gold spans), exact and approximate clauses, every kind of
   threshold. ``threshold_choice``: which threshold rule tags a type's mentions best, one parameter shared
   by every type, chosen on the Few-NERD dev folds (a seeded draw of train-slice sentences, all gold
   mentions; the folds' dev types) and only reported on the test sample.
2. ``compositional``: descriptions such as "river in Africa" read whole, split into a type plus a context
   (BM25 on the text, or a second k-NN clause), or expanded; R-Precision on the hand-made corpus, on
   the dev folds' multi-word descriptions and (reported only) on the test sample's.

Needs the shared node (``NER_OS_OPENSEARCH_URL``) and the shipped model; merges its keys into
``bench/results/queries_beyond.json`` (other keys of that file are kept):

    python bench/queries_boolean.py --train-sentences 2000 --dev-sentences 600
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import time
import uuid

import numpy as np

from _common import FEWNERD, RESULTS, SAMPLE, command, machine, utc_now, write_json
import handmade_corpus as hand
import queries_folds
from ner_os import query as q
from ner_os.client import NerOs
from ner_os.config import Settings
from ner_os.fields import stored_vector
from ner_os.evaluation.metrics import r_precision
from ner_os.loader import load_records

OUT = RESULTS / "queries_beyond.json"
GRIDS = {"score": [round(x, 3) for x in np.arange(0.55, 0.97, 0.01)],
         "percentile": [80, 90, 95, 97, 98, 99, 99.5, 99.8],
         "sigma": [round(x, 2) for x in np.arange(1.0, 5.01, 0.25)]}
STOPWORDS = {"in", "of", "a", "an", "the", "or", "and"}


class Pool:
    """Mention vectors grouped by document, with each mention's tags and each document's text."""

    def __init__(self, doc_ids, vectors, tags, texts, spans, embed):
        self.embed = functools.lru_cache(maxsize=None)(embed)  # description -> unit vector (this pool's head)
        self.doc_ids = list(doc_ids)  # per mention
        self.spans = list(spans)  # per mention: (start, end)
        self.vectors = np.asarray(vectors, dtype=np.float64)
        self.tags = [set(t) for t in tags]
        self.texts = dict(texts)
        self.documents = sorted(self.texts)
        rows: dict[str, list[int]] = {doc: [] for doc in self.documents}
        for row, doc in enumerate(self.doc_ids):
            rows[doc].append(row)
        self.rows = rows

    def by_document(self) -> dict[str, np.ndarray]:
        return {doc: self.vectors[rows] for doc, rows in self.rows.items()}

    def scores(self, vector) -> np.ndarray:
        return (1 + self.vectors @ np.asarray(vector, dtype=np.float64)) / 2

    def doc_scores(self, mention_scores: np.ndarray) -> dict[str, float]:
        return {doc: float(mention_scores[rows].max()) if rows else 0.0 for doc, rows in self.rows.items()}

    def relevant(self, tag: str) -> set[str]:
        return {doc for doc, tags in zip(self.doc_ids, self.tags) if tag in tags}


def ranking(doc_scores: dict[str, float], first: set[str] | None = None) -> list[str]:
    """Documents best first; ``first``: those documents ahead of all others (a filter that keeps the rest after)."""
    return sorted(doc_scores, key=lambda doc: (first is not None and doc not in first, -doc_scores[doc], doc))


def unit(vector) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float64)
    return vector / np.linalg.norm(vector)


# --- loading and reading back --------------------------------------------------------------------


def load_index(ner: NerOs, records: list[dict], name: str) -> None:
    settings = ner.settings.replace(index=name)
    load_records(records, settings, embedder=ner.embedder, client=ner.opensearch, progress=False, resume=False)


def stored_pool(ner: NerOs, index: str, tags_of) -> Pool:
    """The index's mentions as it stores them (vectors read back), tagged by ``tags_of(doc, start, end)``."""
    response = ner.opensearch.search(index=index, body={"size": 10_000, "query": {"match_all": {}}})
    doc_ids, vectors, tags, texts, spans = [], [], [], {}, []
    for hit in response["hits"]["hits"]:
        texts[hit["_id"]] = hit["_source"]["text"]
        for mention in hit["_source"].get("mentions", []):
            doc_ids.append(hit["_id"])
            vectors.append(stored_vector(mention))
            spans.append((mention["start"], mention["end"]))
            tags.append(tags_of(hit["_id"], mention["start"], mention["end"]))
    return Pool(doc_ids, vectors, tags, texts, spans, ner.type_vector)


# --- 1. boolean agreement ------------------------------------------------------------------------


def agreement(ner: NerOs, index: str, pool: Pool, queries: list[dict]) -> dict:
    stored = pool.by_document()
    per_query = []
    for options in queries:
        for approximate in (False, True):
            results = ner.search_combined(**options, index=index, size=len(pool.documents),
                                          approximate=approximate)
            vectors = [ner.type_vector(item.description) for item in results.clauses]
            expected = q.brute_force_ids(stored, vectors, results.thresholds, [item.role for item in results.clauses])
            got = set(results.ids)
            per_query.append({"query": {k: v for k, v in options.items()}, "approximate": approximate,
                              "thresholds": [round(t, 4) for t in results.thresholds], "expected": len(expected),
                              "returned": len(got), "total": results.total, "exact": got == expected,
                              "jaccard": len(got & expected) / len(got | expected) if got | expected else 1.0})
    summary = {mode: {"queries": len(rows), "exact": sum(r["exact"] for r in rows),
                      "mean_jaccard": round(float(np.mean([r["jaccard"] for r in rows])), 6)}
               for mode, rows in (("exact", [r for r in per_query if not r["approximate"]]),
                                  ("approximate", [r for r in per_query if r["approximate"]]))}
    return {"documents": len(pool.documents), "mentions": len(pool.doc_ids), **summary, "per_query": per_query}


HAND_QUERIES = [
    dict(all_of=["politician", "political party"], threshold="p80"),
    dict(all_of=["politician"], none_of=["company"], threshold="p85"),
    dict(all_of=["city"], any_of=["politician", "company"], threshold="p75"),
    dict(any_of=["river", "lake"], none_of=["city"], threshold="z1"),
    dict(all_of=["company@0.75", "city@p70"], threshold="z1.5"),
    dict(none_of=["city", "country"], threshold="p90"),
]
DEV_QUERIES = [  # over the first fold's dev types (the plan's) and a few train types
    dict(all_of=["company", "airplane"]),
    dict(all_of=["director"], none_of=["broadcast program"], threshold="p95"),
    dict(any_of=["island", "restaurant"], threshold="z2"),
    dict(all_of=["god@p95"], any_of=["country, state or city", "protest"], threshold="p90"),
    dict(none_of=["company", "island"], threshold="p97"),
    dict(all_of=["politician", "protest@z2"], threshold="p95"),
]
DEV_DOCUMENTS = 300  # of the first fold's pool, loaded into an index for the agreement check
SAMPLE_QUERIES = [
    dict(all_of=["athlete", "sports event"]),
    dict(all_of=["actor"], none_of=["musical work"]),
    dict(any_of=["car", "weapon"], threshold="p97"),
    dict(all_of=["political party", "election"], threshold="z2"),
    dict(all_of=["body of water@p95"], any_of=["location", "living thing"], threshold="p90"),
    dict(any_of=["hospital", "medical term"], none_of=["government agency"], threshold=0.8),
    dict(all_of=["written work"], none_of=["actor", "musical work"], threshold="z3"),
    dict(none_of=["location", "car"], threshold="p95"),
]


# --- relative thresholds: which rule tags a type's mentions best ---------------------------------


def tagging_f1(pool: Pool, vector, tag: str, threshold: q.Threshold) -> float:
    scores = pool.scores(vector)
    predicted = scores >= threshold.resolve(scores)
    gold = np.asarray([tag in tags for tags in pool.tags])
    true_positives = int((predicted & gold).sum())
    return 2 * true_positives / max(1, int(predicted.sum()) + int(gold.sum()))


def mean_f1(pool: Pool, types, threshold: q.Threshold) -> float:
    return float(np.mean([tagging_f1(pool, pool.embed(description), tag, threshold) for tag, description in types]))


def sweep(dev: list[tuple[Pool, list]], kind: str) -> dict[float, list[float]]:
    return {value: [mean_f1(pool, types, q.Threshold(kind, value)) for pool, types in dev] for value in GRIDS[kind]}


def threshold_choice(dev: list[tuple[Pool, list]], shipped: list[tuple[Pool, list]], test: tuple[Pool, list]) -> dict:
    """Per rule, the one parameter (shared by every type) with the best mean tagging F1 over the dev folds
    (heads that never saw the dev types); how that parameter does through the shipped head (which saw them),
    and the reverse; then the chosen parameter's F1 on the test sample (reported, never chosen on)."""
    former = q.Threshold("score", 0.8)  # types add's default before relative thresholds
    out = {"former_default_0.8": {"dev_f1": round(float(np.mean([mean_f1(p, t, former) for p, t in dev])), 4),
                                  "shipped_head_f1": round(float(np.mean([mean_f1(p, t, former) for p, t in shipped])), 4),
                                  "test_f1": round(mean_f1(*test, former), 4)}}
    for kind in GRIDS:
        curve, shipped_curve = sweep(dev, kind), sweep(shipped, kind)
        best = max(curve, key=lambda value: np.mean(curve[value]))
        best_shipped = max(shipped_curve, key=lambda value: np.mean(shipped_curve[value]))
        spec = q.Threshold(kind, best).spec
        out[kind] = {
            "best": spec(), "dev_f1": round(float(np.mean(curve[best])), 4),
            "dev_f1_per_fold": [round(x, 4) for x in curve[best]],
            "shipped_head": {"best": q.Threshold(kind, best_shipped).spec(),
                             "f1_at_its_best": round(float(np.mean(shipped_curve[best_shipped])), 4),
                             "f1_at_the_dev_choice": round(float(np.mean(shipped_curve[best])), 4),
                             "dev_f1_at_its_best": round(float(np.mean(curve[best_shipped])), 4)},
            "test_f1": round(mean_f1(*test, q.Threshold(kind, best)), 4),
            "dev_curve": {q.Threshold(kind, v).spec(): round(float(np.mean(f)), 4) for v, f in curve.items()}}
    return out


# --- compositional descriptions ------------------------------------------------------------------


def split_description(description: str) -> tuple[str, str] | None:
    """(type, context) of "X in Y" / "X of Y" / "ADJ X"; None for a one-word description or a list."""
    if "," in description or " or " in description or len(description.split()) < 2:
        return None
    for word in (" in ", " of "):
        if word in description:
            head, _, context = description.partition(word)
            return head, context
    *modifier, head = description.split()
    return head, " ".join(modifier)


def context_documents(pool: Pool, context: str) -> set[str]:
    """Documents whose text holds one of the context's words (what a BM25 ``match`` on ``text`` keeps)."""
    words = {word for word in re.findall(r"\w+", context.lower()) if word not in STOPWORDS}
    return {doc for doc, text in pool.texts.items() if words & set(re.findall(r"\w+", text.lower()))}


def compositional_rankings(pool: Pool, description: str, head: str, context: str,
                           paraphrases: list[str] | None = None) -> dict[str, list[str]]:
    vector = pool.embed
    whole, typed, ctx = vector(description), vector(head), vector(context)
    typed_docs = pool.doc_scores(pool.scores(typed))
    context_docs = pool.doc_scores(pool.scores(ctx))
    out = {
        "whole phrase": ranking(pool.doc_scores(pool.scores(whole))),
        "type alone": ranking(typed_docs),
        "split: type + BM25 context on the text": ranking(typed_docs, context_documents(pool, context)),
        "split: type + k-NN context (all_of, summed)": ranking({d: typed_docs[d] + context_docs[d] for d in typed_docs}),
        "expansion: phrase + type (mean vector)": ranking(pool.doc_scores(pool.scores(unit(whole + typed)))),
        "vector sum: type + context": ranking(pool.doc_scores(pool.scores(unit(typed + ctx)))),
        "type gate + whole phrase": ranking(pool.doc_scores(gated(pool, typed, whole))),
    }
    if paraphrases:
        mean = q.mean_direction([vector(p) for p in paraphrases])  # what "a | b | c" searches with
        out["expansion: hand-written paraphrases (mean vector)"] = ranking(pool.doc_scores(pool.scores(mean)))
    return out


def gated(pool: Pool, typed, whole) -> np.ndarray:
    """The phrase's mention scores, those of mentions under the type's default threshold pushed below all others."""
    typed_scores, phrase_scores = pool.scores(typed), pool.scores(whole)
    return np.where(typed_scores >= q.DEFAULT_THRESHOLD.resolve(typed_scores), phrase_scores, phrase_scores - 1)


def compositional(pool: Pool, items: list[tuple[str, str, str, str]], paraphrases=None) -> dict:
    """``items``: (tag, description, type, context); mean R-Precision per way, and per description."""
    per_description, tops = {}, {}
    for tag, description, head, context in items:
        relevant = pool.relevant(tag)
        if not relevant:
            continue
        rankings = compositional_rankings(pool, description, head, context, (paraphrases or {}).get(description))
        per_description[description] = {way: round(r_precision(ranked, relevant), 4) for way, ranked in rankings.items()}
        tops[description] = {way: [first_surface(pool, doc, pool.embed(description)) for doc in ranked[:5]]
                             for way, ranked in rankings.items() if way in ("whole phrase",
                                                                            "split: type + BM25 context on the text")}
    mean = mean_by_way(per_description)
    return {"descriptions": len(per_description), "mean_r_precision": mean, "per_description": per_description,
            "top5_documents_by_their_best_mention_for_the_phrase": tops}


def mean_by_way(per_description: dict) -> dict:
    """Mean R-Precision per way over the descriptions it ran on (hand-written paraphrases exist for some only);
    a way that ran on fewer descriptions also gives the whole phrase's mean over those, to compare like with like."""
    ways = list(dict.fromkeys(way for scores in per_description.values() for way in scores))
    out = {}
    for way in ways:
        runs = [scores for scores in per_description.values() if way in scores]
        out[way] = round(float(np.mean([scores[way] for scores in runs])), 4)
        if len(runs) < len(per_description):
            out[way + " -- whole phrase on the same descriptions"] = round(float(np.mean(
                [scores["whole phrase"] for scores in runs])), 4)
    return out


def first_surface(pool: Pool, doc: str, vector) -> str:
    rows = pool.rows[doc]
    best = rows[int(np.argmax(pool.scores(vector)[rows]))]
    start, end = pool.spans[best]
    return pool.texts[doc][start:end]


# --- the corpora -----------------------------------------------------------------------------------


def hand_tags(doc: str, start: int, end: int) -> set[str]:
    text, mentions = hand.SENTENCES[int(doc[1:])]
    return next(tags for surface, tags in mentions if text.index(surface) == start)


def sample_records(type_names: dict) -> tuple[list[dict], dict]:
    records, tags = [], {}
    for line in SAMPLE.read_text().splitlines():
        item = json.loads(line)
        gold = sorted(item["gold"], key=lambda g: g["start"])
        records.append({"id": item["id"], "text": item["text"],
                        "mentions": [{"start": g["start"], "end": g["end"]} for g in gold]})
        tags.update({(item["id"], g["start"], g["end"]): {type_names[g["label"]]} for g in gold})
    return records, tags


def fold_pools(ner: NerOs, type_names: dict, n_train: int, n_dev: int) -> list[tuple[Pool, Pool, list[str]]]:
    """Each dev fold's pool scored through a head trained without its dev types (bench/queries_folds.py), and
    the same mentions through the shipped head (which saw them)."""
    encoder = ner.embedder.encoder
    folds = queries_folds.fold_pools(ner.settings, encoder, type_names, n_train, n_dev, int(encoder.layer))
    return [(Pool(f.doc_ids, f.vectors, f.tags, f.texts, f.spans, f.embedder.embed_type),
             Pool(f.doc_ids, ner.embedder.project(f.raw, "mention"), f.tags, f.texts, f.spans, ner.type_vector),
             f.dev_descriptions) for f in folds]


def dev_records(pool: Pool) -> list[dict]:
    """The first :data:`DEV_DOCUMENTS` documents of a dev fold's pool with their gold spans, as records."""
    return [{"id": doc, "text": pool.texts[doc],
             "mentions": sorted(({"start": pool.spans[r][0], "end": pool.spans[r][1]} for r in pool.rows[doc]),
                                key=lambda span: span["start"])}
            for doc in pool.documents[:DEV_DOCUMENTS]]


def no_tags(doc: str, start: int, end: int) -> set:
    return set()


def with_mentions(pool: Pool, descriptions, least: int = 3) -> list[tuple[str, str]]:
    counts = {d: sum(d in tags for tags in pool.tags) for d in descriptions}
    return [(d, d) for d in descriptions if counts[d] >= least]


def split_items(descriptions) -> list[tuple[str, str, str, str]]:
    return [(d, d, *split_description(d)) for d in sorted(set(descriptions)) if split_description(d)]


def merged(folds: list[dict]) -> dict:
    """The folds' compositional results as one: every (fold, description) pair counted once."""
    per = {f"{description} (fold {number})": scores for number, fold in enumerate(folds)
           for description, scores in fold["per_description"].items()}
    return {"descriptions": len(per), "folds": len(folds), "per_description": per, "mean_r_precision": mean_by_way(per)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-sentences", type=int, default=2000, help="train-slice sentences each fold's head trains on")
    parser.add_argument("--dev-sentences", type=int, default=600, help="dev sentences per fold (as many background ones join)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    ner = NerOs(Settings.resolve())
    type_names = json.loads((FEWNERD / "type_names.json").read_text())
    folds = fold_pools(ner, type_names, args.train_sentences, args.dev_sentences)
    dev = [(pool, with_mentions(pool, descriptions)) for pool, _, descriptions in folds]
    shipped = [(pool, with_mentions(pool, descriptions)) for _, pool, descriptions in folds]
    names = {corpus: f"nerosbench-{corpus}-{uuid.uuid4().hex[:8]}" for corpus in ("hand", "sample", "dev")}
    try:
        load_index(ner, hand.records(), names["hand"])
        records, sample_tags = sample_records(type_names)
        load_index(ner, records, names["sample"])
        load_index(ner, dev_records(shipped[0][0]), names["dev"])
        hand_pool = stored_pool(ner, names["hand"], hand_tags)
        sample_pool = stored_pool(ner, names["sample"], lambda doc, a, b: sample_tags.get((doc, a, b), set()))
        boolean = {"hand-made": agreement(ner, names["hand"], hand_pool, HAND_QUERIES),
                   "few-nerd dev fold sample": agreement(ner, names["dev"], stored_pool(ner, names["dev"], no_tags),
                                                         DEV_QUERIES),
                   "few-nerd sample": agreement(ner, names["sample"], sample_pool, SAMPLE_QUERIES)}
    finally:
        for name in names.values():
            ner.delete_index(name)
    sample_types = with_mentions(sample_pool, sorted({d for tags in sample_pool.tags for d in tags}))
    boolean["threshold_choice"] = threshold_choice(dev, shipped, (sample_pool, sample_types))
    composed = {
        "hand-made": compositional(hand_pool, [(d, d, h, c) for d, h, c in hand.COMPOSITIONAL], hand.PARAPHRASES),
        "dev folds": merged([compositional(pool, split_items(d for d, _ in types), hand.FEWNERD_PARAPHRASES)
                             for pool, types in dev]),
        "few-nerd test sample (reported only)": compositional(sample_pool, split_items(d for d, _ in sample_types),
                                                              hand.FEWNERD_PARAPHRASES),
    }
    how = {"command": command("bench/queries_boolean.py", argv), "machine": machine(), "date": utc_now(),
           "seconds": round(time.perf_counter() - started, 1), "dev_sentences": args.dev_sentences,
           "train_sentences": args.train_sentences, "dev_types": [[d for d, _ in types] for _, types in dev]}
    report = json.loads(OUT.read_text()) if OUT.exists() else {}  # read just before writing: other keys kept
    report.update(boolean={**boolean, **how}, compositional={**composed, **how})
    write_json(OUT, report)
    return report


if __name__ == "__main__":
    result = main()
    print(json.dumps({key: {k: v for k, v in result[key].items() if k not in ("machine",)} for key in
                      ("boolean", "compositional")}, indent=1)[:6000])
