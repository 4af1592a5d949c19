"""Reading: lines -> checked documents -> length-sorted batches under the encoder's token budget."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import numpy as np

from ner_os.loader.ledger import LineLedger, RejectLog
from ner_os.loader.records import Document, Rejected, in_shard, is_blank, parse_line
from ner_os.loader.summary import LoadSummary

WINDOW_BUDGETS = 8  # a sort window holds about this many token budgets of documents
WINDOW_MAX_DOCS = 4096


@dataclass
class Batch:
    """Documents encoded together; ``spans`` and ``vectors`` are filled by the later stages.

    ``pending``: positions of the documents whose spans are read from their own encoding (an
    encoder-reading detector); their ``spans`` hold what the detector's text part found so far."""

    documents: list[Document]
    spans: list[tuple[tuple[int, int], ...]] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)


class Reader:
    """Lines -> checked documents -> length-sorted, token-budgeted batches, one bounded window at a time.

    ``stream``: what the lines come from (:mod:`ner_os.loader.sources`: a ``HashingReader`` over a
    file or a ``RecordReader`` over records), positioned at the ledger's mark."""

    def __init__(self, stream, ledger: LineLedger, reject_log: RejectLog, shard: tuple[int, int],
                 max_line_bytes: int, nested_limit: int, count_tokens: Callable[[list[str]], list[int]],
                 batch_tokens: int, summary: LoadSummary):
        self.stream, self.ledger, self.reject_log = stream, ledger, reject_log
        self.shard, self.max_line_bytes, self.nested_limit = shard, max_line_bytes, nested_limit
        self.count_tokens, self.batch_tokens, self.summary = count_tokens, batch_tokens, summary

    def documents(self) -> Iterator[Document]:
        for line, sha in self.stream.lines(self.ledger.mark, self.max_line_bytes):
            if not in_shard(line.number, self.shard) or is_blank(line):
                self.ledger.open(line, sha, settled=True)
                continue
            if self.ledger.open_if_acknowledged(line, sha):  # written by the run this one resumes
                continue
            parsed = parse_line(line, self.max_line_bytes, self.nested_limit)
            if isinstance(parsed, Rejected):
                self.reject_log.write(parsed)
                self.ledger.open(line, sha, settled=True, rejected=1)
                continue
            self.ledger.open(line, sha)
            yield parsed

    def batches(self) -> Iterator[Batch]:
        window: dict[str, Document] = {}
        window_chars = 0
        window_budget_chars = self.batch_tokens * WINDOW_BUDGETS * 4  # ~4 characters a token
        for document in self.documents():
            earlier = window.pop(document.id, None)
            if earlier is not None:
                # sorting reorders a window: keep only the later line so that it is the one that stays
                self.summary.superseded += 1
                self.ledger.settle(earlier.line)
            window[document.id] = document
            window_chars += len(document.text)
            if window_chars >= window_budget_chars or len(window) >= WINDOW_MAX_DOCS:
                yield from self._cut(list(window.values()))
                window, window_chars = {}, 0
        if window:
            yield from self._cut(list(window.values()))

    def _cut(self, documents: list[Document]) -> Iterator[Batch]:
        tokens = self.count_tokens([document.text for document in documents])
        for group in plan_batches(documents, tokens, self.batch_tokens):
            yield Batch(group)


def plan_batches(items: Sequence, lengths: Sequence[int], budget: int) -> list[list]:
    """Items sorted by length and packed so that each batch's padded size (count x longest) stays
    within ``budget``; an item longer than the budget goes alone (the encoder chunks it)."""
    order = sorted(range(len(items)), key=lambda i: (lengths[i], i))
    batches: list[list] = []
    current: list = []
    longest = 0
    for i in order:
        length = max(1, int(lengths[i]))
        if current and max(longest, length) * (len(current) + 1) > budget:
            batches.append(current)
            current, longest = [], 0
        current.append(items[i])
        longest = max(longest, length)
    if current:
        batches.append(current)
    return batches


def token_counter(embedder) -> Callable[[list[str]], list[int]]:
    """Tokens the encoder will see per text (BOS included), from its tokenizer; ~4 characters a token
    for an encoder without one."""
    tokenizer = getattr(getattr(embedder, "encoder", None), "tokenizer", None)
    if callable(tokenizer):
        return lambda texts: [len(ids) + 1 for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]
    return lambda texts: [len(text) // 4 + 2 for text in texts]
