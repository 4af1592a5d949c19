"""The document index's field names and the server limits every stage shares (DESIGN §3).

A ner-os document holds ``text``, a ``doc_id`` keyword copy of its ``_id``, and a nested
``mentions`` array whose items carry ``surface``, ``start``, ``end``, ``vector`` and ``types``.
"""

from __future__ import annotations

from typing import Any

MENTIONS_PATH = "mentions"
DOC_ID_FIELD = "doc_id"  # a keyword copy of _id that ner-os load writes into every document
VECTOR_FIELD = "mentions.vector"
TEXT_FIELD = "text"
SOURCE_WITHOUT_VECTORS = {"excludes": [VECTOR_FIELD]}
MAX_WINDOW = 10_000  # index.max_result_window and the k-NN plugin's largest k
MAX_INNER_HITS = 100  # index.max_inner_result_window's default


def as_list(value: Any) -> list:
    """A keyword field's value as a list: a field holds one value, several, or none."""
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]
