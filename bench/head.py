"""Zero-shot test figures of a projection head: the 17 Few-NERD INTER test types, never trained on.

Each test sentence is a document; a type's query is its plain-words description, read at its last
token like a mention. Documents are ranked by their best mention (exact cosine over one vector per
mention); a document is relevant when it holds a gold mention of the type. Four settings: raw value
vectors or the head, over gold spans or over the spans the default detector finds. One encoder pass
reads gold and detected spans together (cached under the cache dir, so a rerun does not encode).

Writes ``bench/results/head.json``:

    python bench/head.py --data ../shared/data/fewnerd-inter
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
from _common import RESULTS, ROOT, command, machine, write_json

from ner_os.config import Settings
from ner_os.encoder import Encoder, LayeredText
from ner_os.evaluation.metrics import span_scores
from ner_os.evaluation.readers import TYPE_NAMES_FILE, read_type_names
from ner_os.head import ProjectionHead, shipped_head_path
from ner_os.mentions.cache import token_vector_cache
from ner_os.mentions.proxy import EncoderProxy
from ner_os.spans import Span
from ner_os.training import (
    TEST_FILE, LabelledText, RetrievalTask, description_texts, encoder_factory, mention_vector_cache,
    mention_vectors, project, read_sentences, relevant_documents,
)
from ner_os.training.vectors import TRAINING_DTYPE, dataset_content

METRICS = ("r_precision", "p_at_10", "recall_at_100", "average_precision")


def detected_spans(settings: Settings, texts: list[str], detector_name: str) -> list[list[tuple[int, int]]]:
    """The detector's spans for ``texts``, cached by texts, detector name and the source of ner_os/spans/spacy_detector.py."""
    import ner_os.spans as spans_module
    import ner_os.spans.spacy_detector as rules_module

    key = hashlib.sha256(json.dumps([detector_name, texts]).encode() + Path(rules_module.__file__).read_bytes())
    path = Path(settings.cache_dir) / "detected-spans" / f"{key.hexdigest()[:24]}.json"
    if path.is_file():
        return [[tuple(span) for span in spans] for spans in json.loads(path.read_text())]
    started = time.perf_counter()
    found = spans_module.detector_from_name(detector_name).detect(texts)
    print(f"detected spans in {time.perf_counter() - started:.0f} s", flush=True)
    spans = [[(span.start, span.end) for span in text_spans] for text_spans in found]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spans))
    return spans


def span_figures(gold: list[LabelledText], detected: list[list[tuple[int, int]]]) -> dict:
    scores = span_scores([[Span(s, e) for s, e, _ in t.spans] for t in gold],
                         [[Span(s, e) for s, e in spans] for spans in detected])
    return {"recall": {"exact": round(scores.recall_exact, 4), "same_end": round(scores.recall_same_end, 4),
                       "overlap": round(scores.recall_overlap, 4)},
            "precision": {"exact": round(scores.precision_exact, 4), "same_end": round(scores.precision_same_end, 4)},
            "n_gold": scores.n_gold, "n_detected": scores.n_detected}


class StoredTokens:
    """``encode_layers`` over the eval's token-vector cache (``ner-os eval --vector-cache``).

    The cache holds the token vectors of every test sentence at one layer, so the full test set
    costs no encoding after an eval run; slices it lacks are encoded (ONNX) and written to it.
    """

    def __init__(self, settings: Settings, texts: list[str], layer: int):
        self.layer = layer
        self.encoder = EncoderProxy(Encoder.from_settings(settings, layer=layer, dtype=TRAINING_DTYPE), remember=True)
        self.encoder.encode_all(texts, cache=token_vector_cache(settings, self.encoder))

    def encode_layers(self, texts, layers):
        if list(layers) != [self.layer]:
            raise ValueError(f"the token-vector store holds layer {self.layer} only, not {list(layers)}")
        return [LayeredText({self.layer: item.vectors}, item.offsets) for item in self.encoder.encode(texts)]


def test_vectors(settings: Settings, data: str | Path, layers: list[int], detector: str, sentences: int = 0,
                 seed: int = 0):
    """Gold and detected spans of the test sentences and their value vectors (one cached pass), and
    the test types' description vectors. ``sentences`` > 0: a fixed seeded subset of that size."""
    type_names = read_type_names(Path(data) / TYPE_NAMES_FILE)
    gold = read_sentences([Path(data) / TEST_FILE])
    detected = detected_spans(settings, [t.text for t in gold], detector)
    if 0 < sentences < len(gold):
        keep = sorted(np.random.default_rng(seed).permutation(len(gold))[:sentences].tolist())
        gold, detected = [gold[i] for i in keep], [detected[i] for i in keep]
    test_types = sorted({label for t in gold for *_, label in t.spans})
    both = [LabelledText(t.text, t.spans + tuple((s, e, None) for s, e in spans)) for t, spans in zip(gold, detected)]
    cache = mention_vector_cache(settings)
    texts = [t.text for t in gold]

    def from_token_store(missing: list[int]):
        return StoredTokens(settings, texts, *missing) if len(missing) == 1 else encoder_factory(settings)(missing)

    mentions = mention_vectors(cache, both, layers, from_token_store, description="reading test mentions")
    descriptions = mention_vectors(cache, description_texts({t: type_names[t] for t in test_types}), layers,
                                   encoder_factory(settings), description="encoding test type descriptions")
    return gold, detected, both, mentions, descriptions


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the Few-NERD INTER folder")
    parser.add_argument("--head", help="head directory [default: the head shipped for the profile]")
    parser.add_argument("--compare", action="append", default=[], metavar="NAME=DIR",
                        help="another head to score on the same vectors (repeatable)")
    parser.add_argument("--raw-layers", default="", help="more layers whose raw vectors are scored, e.g. 8,12,17")
    parser.add_argument("--detector", default="spacy")
    parser.add_argument("--sentences", type=int, default=0,
                        help="a fixed seeded subset of the 14,006 test sentences [default 0: all; their token "
                             "vectors are read from the eval's store (ner-os eval --vector-cache), or encoded once "
                             "and kept there: ~45 min on a busy 2-core CPU]")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subset")
    parser.add_argument("--out", default=str(RESULTS / "head.json"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    settings = Settings.resolve()
    head_dir = args.head or shipped_head_path(settings.profile)
    if head_dir is None:
        raise SystemExit(f"no head shipped for {settings.profile}: pass --head")
    head = ProjectionHead.load(head_dir)
    layer = head.encoder["layer"]
    layers = sorted({layer, *(int(x) for x in args.raw_layers.split(",") if x)})

    type_names = read_type_names(Path(args.data) / TYPE_NAMES_FILE)
    gold, detected, both, mentions, descriptions = test_vectors(settings, args.data, layers, args.detector,
                                                                args.sentences, args.seed)
    test_types = sorted({label for t in gold for *_, label in t.spans})
    cache = mention_vector_cache(settings)
    pools = mentions.gold_and_detected()
    relevant = relevant_documents(pools["gold"], test_types)

    def score(at_layer: int, through: ProjectionHead | None) -> dict:
        """Exact search at ``at_layer``: raw vectors (``through`` None) or through a head."""
        raw_queries = descriptions.of_labels(at_layer, test_types)
        queries = dict(zip(test_types, project(through, raw_queries, "query")))
        return {pool: RetrievalTask(vectors, relevant).evaluate(at_layer, queries, lambda x: project(through, x))
                for pool, vectors in pools.items()}

    reports = {"raw": score(layer, None), "head": score(layer, head)}
    four = {f"{kind}_{pool}": round(reports[kind][pool].macro["r_precision"], 4)
            for pool in ("gold", "detected") for kind in ("raw", "head")}
    result = {
        "test_macro_r_precision": four,
        "head_over_raw": {pool: round(four[f"head_{pool}"] / four[f"raw_{pool}"], 3) for pool in ("gold", "detected")},
        "done_when_1_2x": all(four[f"head_{p}"] >= 1.2 * four[f"raw_{p}"] for p in ("gold", "detected")),
        "test_macro": {f"{kind}_{pool}": {m: round(reports[kind][pool].macro[m], 4) for m in METRICS}
                       for kind in reports for pool in pools},
        "test_macro_specific": {f"{kind}_{pool}": {m: round(reports[kind][pool].macro_specific[m], 4) for m in METRICS}
                                for kind in reports for pool in pools},
        "catch_all_types": reports["head"]["gold"].catch_all,
        "per_type_r_precision": {t: {f"{kind}_{pool}": round(reports[kind][pool].per_type[t].r_precision, 4)
                                     for kind in reports for pool in pools} for t in test_types},
        "layer": layer,
        "head": {"path": str(Path(head_dir).resolve().relative_to(ROOT)) if Path(head_dir).resolve().is_relative_to(ROOT)
                 else str(head_dir), "encoder": head.encoder,
                 "types": len(head.manifest.get("training", {}).get("types", []))},
        "test_types": {t: type_names[t] for t in test_types},
        "documents": len(gold),
        "test_subset": {"sentences": len(gold), "of": 14006, "seed": args.seed,
                        "note": "fixed seeded subset of inter_test.txt sentences" if args.sentences else "all"},
        "mentions": {pool: len(vectors) for pool, vectors in pools.items()},
        "span_detector": args.detector,
        "span_recall": None, "span_precision": None,
    }
    spans = span_figures(gold, detected)
    result["span_recall"], result["span_precision"] = spans["recall"], spans["precision"]
    result["spans"] = {"n_gold": spans["n_gold"], "n_detected": spans["n_detected"]}
    if len(layers) > 1:
        result["raw_by_layer"] = {str(at): {pool: round(report.macro["r_precision"], 4)
                                            for pool, report in score(at, None).items()} for at in layers}
    for item in args.compare:
        name, _, directory = item.partition("=")
        other = ProjectionHead.load(directory)
        result.setdefault("compare", {})[name] = {
            "layer": other.encoder["layer"], "types": len(other.manifest.get("training", {}).get("types", [])),
            **{pool: round(report.macro["r_precision"], 4)
               for pool, report in score(other.encoder["layer"], other).items()}}
    meta = cache.read_meta(cache.entry(dataset_content(both)))
    result["encoding"] = {"passes": meta["passes"], "note": "encoder time of the cached pass(es); 0 s here means a cache hit"}
    result.update(command=command("bench/head.py", argv), machine=machine(), date=time.strftime("%Y-%m-%d"),
                  seconds=round(time.perf_counter() - started, 1))
    write_json(args.out, result)
    print(json.dumps({k: result[k] for k in ("test_macro_r_precision", "head_over_raw", "span_recall")}, indent=2))
    return result


if __name__ == "__main__":
    main()
