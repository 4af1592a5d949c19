"""The eval's corpus and its judgements: a BIO/CoNLL file as one document per sentence, and the types.

A document is relevant to a type when it holds a gold mention of that type, and the type's
description (from the name map; the label itself when the map lacks it) is the query.

Ranking depth: each type's ranking holds ``max(1000, R)`` documents, at most 10,000 (the k-NN
plugin's largest ``k`` and OpenSearch's result window): enough for R-Precision (the top R),
Recall@100, and MAP to depth 1000 or R, whichever is larger. A type with R over 10,000 is scored on
a truncated ranking, and the result says so.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from ner_os.errors import ConfigError
from ner_os.evaluation.readers import GoldMention, Sentence, read_bio

log = logging.getLogger(__name__)

# the reader handles both layouts: token first, tag last, tab or space separated, IOB1/IOB2/IO tags
READERS: dict[str, Callable[[str | Path], Iterable[Sentence]]] = {"bio": read_bio, "conll": read_bio}
MIN_DEPTH = 1000
MAX_DEPTH = 10_000  # the k-NN plugin's largest k and index.max_result_window


@dataclass(frozen=True)
class EvalDocument:
    """One sentence of the file, as a document, with its gold mentions kept aside for judging."""

    id: str
    text: str
    gold: tuple[GoldMention, ...]
    line: int  # of the sentence's first token in the file

    @property
    def gold_spans(self) -> tuple[tuple[int, int], ...]:
        return tuple((mention.start, mention.end) for mention in self.gold)


@dataclass(frozen=True)
class EvalType:
    """A type to query: its label in the file, the description that is the query, its relevant documents."""

    label: str
    description: str
    relevant: frozenset[str]

    @property
    def depth(self) -> int:
        return ranking_depth(len(self.relevant))


def ranking_depth(n_relevant: int) -> int:
    """Documents a type's ranking holds: max(1000, R), at most 10,000."""
    return min(MAX_DEPTH, max(MIN_DEPTH, n_relevant))


def read_corpus(path: str | Path, data_format: str = "bio", limit: int | None = None, seed: int = 0) -> list[EvalDocument]:
    """The file's sentences as documents, ids ``s<ordinal in the file>``; with ``limit``, a seeded
    random sample of that many sentences, kept in file order."""
    if data_format not in READERS:
        raise ConfigError(f"unknown data format {data_format!r}; known: {', '.join(READERS)}")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit {limit}: must be at least 1")
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    sentences = list(READERS[data_format](path))
    if not sentences:
        raise ConfigError(f"{path}: no sentences found (expected one token and its tag per line, a blank line between sentences)")
    width = len(str(len(sentences) - 1))
    picked = range(len(sentences))
    if limit is not None and limit < len(sentences):
        picked = sorted(random.Random(seed).sample(range(len(sentences)), limit))
    return [EvalDocument(id=f"s{i:0{width}d}", text=sentences[i].text, gold=tuple(sentences[i].mentions),
                         line=sentences[i].line) for i in picked]


def eval_types(documents: Sequence[EvalDocument], names: Mapping[str, str]) -> list[EvalType]:
    """Every label with a gold mention in the corpus, with its description and relevant documents,
    in label order. A label the map lacks is its own description."""
    relevant: dict[str, set[str]] = {}
    for document in documents:
        for mention in document.gold:
            relevant.setdefault(mention.label, set()).add(document.id)
    if not relevant:
        raise ConfigError("the corpus holds no gold mention, so no type can be judged")
    missing = sorted(label for label in relevant if label not in names)
    if missing:
        log.warning("no description for %s in the name map; querying with the label itself", ", ".join(missing))
    return [EvalType(label, names.get(label, label), frozenset(ids)) for label, ids in sorted(relevant.items())]


def loader_records(documents: Sequence[EvalDocument], spans: Sequence[Sequence[tuple[int, int]]]) -> Iterable[dict]:
    """The loader's records (:func:`ner_os.loader.load_records`): each document with the mentions it is to be indexed with."""
    for document, document_spans in zip(documents, spans):
        yield {"id": document.id, "text": document.text, "line": document.line,
               "mentions": [{"start": int(start), "end": int(end)} for start, end in document_spans]}


def count_sentences(data: str | Path, data_format: str) -> int:
    return sum(1 for _ in READERS[data_format](data))
