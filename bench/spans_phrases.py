"""Phrases around names (issue #15): does indexing "Ovarian cancer" beside "Ovarian" help? Dev only.

The detectors end many mentions at a name inside a longer noun phrase: "Ovarian" in "Ovarian cancer",
"Scottish Parliament" in "the 2011 Scottish Parliament election" (spaCy's ``cut_common_head`` rule
cuts the common head on purpose; the encoder detector learned it from Few-NERD INTER train, where
the test types' mentions are ``O``). A mention vector is read at the span's last token, so the
cancer and the election are never indexed. The remedy under test: also index the phrase, nested
around the name (``SpanRules.phrases``: the whole chunk a head was cut from; ``union_spans``: a
secondary span that holds whole the spans it overlaps is kept).

Measured like bench/spans_unseen.py: macro R-Precision with the default ranking (k-NN alone, the
shipped head, exact cosine over the mentions) of the 36 train types on a seeded 4,000-sentence
sample of Few-NERD train slice 2 (sentences no detector trained on), and of the eight
``spans_unseen.HELD_OUT`` types, next to gold spans:

- ``union (before)``: the union as it was (a secondary span overlapping a primary one is dropped),
  spaCy without phrases;
- ``union, nesting kept``: the new merge rule, spaCy without phrases;
- ``union + phrases``: the new merge rule and spaCy's phrases (the shipped default);
- ``spacy (before)`` and ``spacy + phrases``: spaCy alone.

    python bench/spans_phrases.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import RESULTS, write_result

from spans import r_precision  # bench/spans.py
from spans_unseen import HELD_OUT, RetrievalDev  # bench/spans_unseen.py
from ner_os.spans import Span, detector_from_name
from ner_os.spans.encoder_detector import union_spans
from ner_os.spans.spacy_detector import SpacyDetector, SpanRules


def union_before(primary, secondary) -> list[Span]:
    """The union's merge before phrases: the secondary spans that end elsewhere and overlap nothing."""
    kept = sorted(primary)
    ends = {span.end for span in kept}
    merged: list[Span] = []
    for span in sorted(kept + [s for s in secondary if s.end not in ends and not any(s.overlaps(k) for k in kept)]):
        if not merged or not span.overlaps(merged[-1]):
            merged.append(span)
    return merged


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=4000, help="slice-2 sentences")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default=str(RESULTS / "spans_phrases.json"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    dev = RetrievalDev(args.sentences, args.seed)
    corpus = dev.corpus
    encoder_spans = detector_from_name("encoder", encoder=dev.encoder).detect_encoded(corpus.texts, corpus.encoded)
    spacy_before = SpacyDetector(rules=SpanRules(phrases=False)).detect(corpus.texts)
    spacy_phrases = SpacyDetector(rules=SpanRules(phrases=True)).detect(corpus.texts)
    corpus.found = {
        "union (before)": [union_before(e, s) for e, s in zip(encoder_spans, spacy_before)],
        "union, nesting kept": [union_spans(e, s) for e, s in zip(encoder_spans, spacy_before)],
        "union + phrases": [union_spans(e, s) for e, s in zip(encoder_spans, spacy_phrases)],
        "spacy (before)": spacy_before,
        "spacy + phrases": spacy_phrases,
    }
    rows = {}
    for source in ["gold", *corpus.found]:
        per_type = r_precision(corpus, source, dev.embedder, dev.queries)["per_type"]
        spans = corpus.gold if source == "gold" else corpus.found[source]
        rows[source] = {"macro": round(float(np.mean(list(per_type.values()))), 4),
                        "held_out": round(float(np.mean([v for t, v in per_type.items() if t in HELD_OUT])), 4),
                        "spans_per_sentence": round(float(np.mean([len(s) for s in spans])), 3)}
        print(source, rows[source], flush=True)
    result = {"corpus": f"Few-NERD INTER train slice 2, {args.sentences} sentences (seed {args.seed})",
              "types": len(dev.queries), "held_out_types": list(HELD_OUT), "r_precision": rows,
              "ranking": "k-NN alone (the default), shipped head, exact cosine"}
    return write_result(args.out, result, "bench/spans_phrases.py", argv, started)


if __name__ == "__main__":
    main()
