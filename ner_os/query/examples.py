"""Query by example: a type given by a few of its entities ("like the Nile and the Danube"), with or
without a description.

An example is a surface (``"Nile"``), read alone exactly as a description is (``embed_type``); a mention
already in the index (:class:`MentionRef`: document id and character offsets), whose stored vector is
fetched (:func:`mention_vector_steps`); or a hit of an earlier result (its best mention). The CLI also
takes ``DOCID:START-END`` and ``HIT:N`` (:func:`parse_example`).

The type vector (:func:`combine`): the description counts as :data:`DESCRIPTION_WEIGHT` examples,
``normalise(w * description + sum of the examples)``; without a description, the examples' normalised
mean. The weight was chosen on the Few-NERD dev folds by ``bench/queries_beyond.py`` (docs/queries.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Generator, Mapping, Sequence

import numpy as np

from ner_os.errors import NerOsError
from ner_os.fields import MENTIONS_PATH, VECTOR_BYTES_FIELD, VECTOR_FIELD, stored_vector
from ner_os.query.model import TypeHit
from ner_os.query.steps import SearchRequest

# bench/queries_beyond.py, dev folds: the description weighed as this many examples (grid 0.5-8; 5 and 8
# within 0.001, a fixed share of the description at best 0.001 below); with 3 examples 0.763 -> 0.778
DESCRIPTION_WEIGHT = 5.0
MENTION_PATTERN = re.compile(r"^(?P<doc>.+):(?P<start>\d+)-(?P<end>\d+)$")
HIT_PATTERN = re.compile(r"^HIT:(?P<number>-?\d+)$", re.IGNORECASE)
MAX_LABEL_CHARS = 120


@dataclass(frozen=True)
class MentionRef:
    """A mention already in the index: its document's id and its character offsets ``[start, end)``."""

    doc_id: str
    start: int
    end: int

    def __str__(self) -> str:
        return f"{self.doc_id}:{self.start}-{self.end}"


@dataclass(frozen=True)
class HitRef:
    """``HIT:N``: the N-th hit (as printed, from 1) of the last result the CLI saved."""

    number: int


Example = Any  # str (a surface) | MentionRef | TypeHit (its best mention) | (doc_id, start, end)


def parse_example(text: str) -> str | MentionRef | HitRef:
    """A ``--like`` value: ``HIT:N``, ``DOCID:START-END`` (a mention in the index), else a surface."""
    hit = HIT_PATTERN.match(text.strip())
    if hit:
        return HitRef(check_hit_number(int(hit["number"])))
    mention = MENTION_PATTERN.match(text.strip())
    if mention:
        return mention_ref((mention["doc"], int(mention["start"]), int(mention["end"])))
    return text


def check_hit_number(number: Any) -> int:
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise NerOsError(f"a hit number counts from 1, as the results print it, got {number!r}")
    return number


def parse_hit_numbers(values: Sequence[str]) -> list[int]:
    """``--more-like 1,3 --more-like 5`` -> [1, 3, 5] (duplicates dropped, order kept)."""
    numbers = []
    for value in values:
        for part in str(value).split(","):
            if not part.strip().isdigit():
                raise NerOsError(f"hit numbers are given as 1,3,5; got {value!r}")
            numbers.append(check_hit_number(int(part)))
    return list(dict.fromkeys(numbers))


def mention_ref(example: Any) -> MentionRef:
    """A :class:`MentionRef` from itself, a ``(doc_id, start, end)`` triple or a hit (its best mention)."""
    if isinstance(example, MentionRef):
        ref = example
    elif isinstance(example, TypeHit):
        if not example.mentions:
            raise NerOsError(f"hit {example.id!r} came back without mentions: it cannot serve as an example")
        best = example.mentions[0]
        ref = MentionRef(example.id, best.start, best.end)
    elif isinstance(example, (tuple, list)) and len(example) == 3:
        ref = MentionRef(str(example[0]), *example[1:])
    else:
        raise NerOsError(f"an example is a surface, a hit or (doc_id, start, end); got {example!r}")
    if not (isinstance(ref.start, int) and isinstance(ref.end, int) and 0 <= ref.start < ref.end):
        raise NerOsError(f"mention {ref}: offsets must be integers with 0 <= start < end")
    return ref


def split_examples(examples: Sequence[Example]) -> tuple[list[str], list[MentionRef]]:
    """The surfaces and the mentions in the index among ``examples``."""
    surfaces, mentions = [], []
    for example in examples:
        if isinstance(example, str):
            surfaces.append(example)
        elif isinstance(example, HitRef):
            raise NerOsError("HIT:N names a hit of the CLI's last result: pass the hit itself in the API")
        else:
            mentions.append(mention_ref(example))
    return surfaces, mentions


def unit(vector: np.ndarray, what: str = "the examples") -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    if not norm > 1e-6:
        raise NerOsError(f"{what} cancel out: give other ones")
    return (np.asarray(vector, dtype=np.float64) / norm).astype(np.float32)


def combine(description: np.ndarray | None, examples: Sequence[np.ndarray],
            description_weight: float = DESCRIPTION_WEIGHT) -> np.ndarray:
    """The type vector of a description (None: none) and example vectors (unit vectors)."""
    if description is None and not len(examples):
        raise NerOsError("a type query needs a description or examples (e.g. --like Nile)")
    total = np.sum(np.asarray(examples, dtype=np.float64), axis=0) if len(examples) else 0.0
    if description is not None:
        total = total + description_weight * np.asarray(description, dtype=np.float64)
    return unit(total, "the description and the examples")


def query_label(description: str | None, examples: Sequence[Example]) -> str:
    """What the results say was searched: the description, then ``like`` and the examples."""
    named = [example if isinstance(example, str) else str(mention_ref(example)) for example in examples]
    label = " ".join(part for part in [description or "", "like " + ", ".join(named) if named else ""] if part)
    label = label or "like the marked hits"
    return label if len(label) <= MAX_LABEL_CHARS else label[:MAX_LABEL_CHARS - 1] + "…"


def mention_vector_steps(refs: Sequence[MentionRef]) -> Generator[SearchRequest, Any, list[np.ndarray]]:
    """One request for the documents of ``refs``; returns each mention's stored vector, in order.
    A document that is not there, or offsets that match none of its mentions: a one-line error."""
    doc_ids = sorted({ref.doc_id for ref in refs})
    body = {"size": len(doc_ids), "query": {"ids": {"values": doc_ids}},
            "_source": [f"{MENTIONS_PATH}.start", f"{MENTIONS_PATH}.end", VECTOR_BYTES_FIELD, VECTOR_FIELD]}
    response = yield SearchRequest(body)
    stored = {hit["_id"]: (hit.get("_source") or {}).get(MENTIONS_PATH) or [] for hit in response["hits"]["hits"]}
    return [mention_vector(ref, stored) for ref in refs]


def mention_vector(ref: MentionRef, stored: Mapping[str, list]) -> np.ndarray:
    if ref.doc_id not in stored:
        raise NerOsError(f"mention {ref}: the index has no document {ref.doc_id!r}")
    for mention in stored[ref.doc_id]:
        vector = stored_vector(mention) if mention.get("start") == ref.start and mention.get("end") == ref.end else None
        if vector is not None:
            return unit(vector, f"mention {ref}'s vector")
    spans = ", ".join(f"{m.get('start')}-{m.get('end')}" for m in stored[ref.doc_id]) or "none"
    raise NerOsError(f"mention {ref}: document {ref.doc_id!r} has no mention at {ref.start}-{ref.end} "
                     f"(its mentions: {spans})")
