"""The CLI's last result per index, kept under the cache dir so that the next ``ner-os search`` can name its
hits: ``--like HIT:N`` (an example) and ``--more-like 1,3 --less-like 2`` (feedback).

The file holds the type vector searched with, and per hit its id, rank, score and mentions (offsets, no
vectors: a hit's stored vector is fetched from the index when it is used).
"""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ner_os import query as q
from ner_os.errors import NerOsError

LAST_RESULTS_DIR = "last-results"


def last_result_path(settings, index: str) -> Path:
    return Path(settings.cache_dir) / LAST_RESULTS_DIR / f"{urllib.parse.quote(index, safe='')}.json"


def save_last_result(settings, results: q.TypeResults) -> Path:
    """Keep ``results`` as the index's last result (what ``HIT:N`` and ``--more-like`` refer to)."""
    path = last_result_path(settings, results.index)
    hits = [{"id": hit.id, "score": hit.score, "mentions": [mention.to_dict() for mention in hit.mentions]}
            for hit in results.hits]
    record = {"index": results.index, "description": results.description, "mode": results.mode,
              "offset": results.offset, "hits": hits,
              "vector": None if results.vector is None else np.asarray(results.vector, float).round(7).tolist()}
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(record))
    temporary.replace(path)
    return path


def load_last_result(settings, index: str) -> q.TypeResults:
    """The index's last result; a one-line error when there is none."""
    path = last_result_path(settings, index)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise NerOsError(f"no last result on index {index!r}: run `ner-os search` on it first "
                         "(HIT:N, --more-like and --less-like name the hits it printed)") from None
    except (OSError, ValueError) as error:
        raise NerOsError(f"{path}: the last result cannot be read ({error}); run `ner-os search` again") from None
    hits = tuple(q.TypeHit(id=hit["id"], score=hit["score"], source={},
                           mentions=tuple(q.MentionMatch(**{**m, "types": tuple(m.get("types", ()))})
                                          for m in hit["mentions"])) for hit in record["hits"])
    vector = None if record.get("vector") is None else np.asarray(record["vector"], dtype=np.float32)
    return q.TypeResults(description=record["description"], index=record["index"], mode=record["mode"],
                         offset=record["offset"], hits=hits, vector=vector)


def search_with_last(ner, description: str | None, like: Sequence[str], more_like: Sequence[str],
                     less_like: Sequence[str], **options: Any) -> q.TypeResults:
    """``ner-os search``: ``like`` values parsed (:func:`ner_os.query.parse_example`), ``HIT:N`` and hit
    numbers read against the index's last result; with neither a description nor examples, the last
    query itself is refined. The answer becomes the index's last result."""
    examples = [q.parse_example(value) for value in like]
    right, wrong = q.parse_hit_numbers(more_like), q.parse_hit_numbers(less_like)
    index = ner.index_name(options.pop("index", None))
    last = None
    if right or wrong or any(isinstance(example, q.HitRef) for example in examples):
        last = load_last_result(ner.settings, index)
        examples = [q.marked_hits(last, [example.number])[0] if isinstance(example, q.HitRef) else example
                    for example in examples]
    if last is not None and description is None and not examples:
        results = ner.refine(last, right, wrong, **options)
    else:
        q.check_marks(right, wrong)
        results = ner.search_type(description, examples=examples, index=index,
                                  more_like=q.marked_hits(last, right) if last else (),
                                  less_like=q.marked_hits(last, wrong) if last else (), **options)
    save_last_result(ner.settings, results)
    return results
