"""What a client learns about an index once (one request) and keeps: its mention vectors' dimension and its shards."""

from __future__ import annotations

from typing import Callable

from ner_os.errors import NerOsError
from ner_os.fields import VECTOR_FIELD
from ner_os.store import schema


class IndexFacts:
    """Per index name, read on first use; :meth:`forget` drops them (an index found missing)."""

    def __init__(self, opensearch: Callable):
        self._opensearch = opensearch  # called for the client when a fact is first needed
        self._facts: dict[str, tuple[int, int]] = {}  # index -> (vector dimension, primary shards)

    def dimension(self, index: str) -> int:
        """The dimension of the index's mention vectors; a one-line error for a missing or foreign index."""
        return self._read(index)[0]

    def shards(self, index: str) -> int:
        """The primary shards a search of the index covers (``TypeQuery.knn_k`` splits its default over them)."""
        return self._read(index)[1]

    def _read(self, index: str) -> tuple[int, int]:
        if index not in self._facts:
            client = self._opensearch()
            dim, shards = schema.search_facts(client, index)
            if dim is None:
                if not schema.index_exists(client, index):
                    raise NerOsError(f"index {index!r} does not exist: load documents into it first "
                                     "(ner-os load) or name another one with --index")
                raise NerOsError(f"index {index!r} has no {VECTOR_FIELD} field: it is not a ner-os index")
            self._facts[index] = dim, shards
        return self._facts[index]

    def forget(self, index: str) -> None:
        self._facts.pop(index, None)
