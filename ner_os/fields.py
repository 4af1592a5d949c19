"""The document index's field names and the server limits every stage shares (DESIGN §3).

A ner-os document holds ``text``, a ``doc_id`` keyword copy of its ``_id``, and a nested
``mentions`` array whose items carry ``surface``, ``start``, ``end``, ``vector``, ``vector_bytes``
and ``types``.

A mention's vector is sent twice: ``vector`` (the float list the k-NN field indexes) and
``vector_bytes`` (the same float32 values, little-endian, base64). The stored ``_source`` keeps only
the bytes (the mapping excludes ``vector``): every hit a query returns has its source read and
filtered, and the float lists made that source several times larger (issue #17). Whatever reads a
stored vector back uses :func:`stored_vector`; a scripted update rebuilds ``vector`` from the bytes
(:data:`RESTORE_VECTORS_SCRIPT`) or the document would lose its k-NN vectors.
"""

from __future__ import annotations

import base64
from typing import Any, Mapping

import numpy as np

MENTIONS_PATH = "mentions"
DOC_ID_FIELD = "doc_id"  # a keyword copy of _id that ner-os load writes into every document
VECTOR_FIELD = "mentions.vector"
VECTOR_BYTES_FIELD = "mentions.vector_bytes"
TEXT_FIELD = "text"
SOURCE_WITHOUT_VECTORS = {"excludes": [VECTOR_FIELD, VECTOR_BYTES_FIELD]}
MAX_WINDOW = 10_000  # index.max_result_window and the k-NN plugin's largest k
MAX_INNER_HITS = 100  # index.max_inner_result_window's default


def as_list(value: Any) -> list:
    """A keyword field's value as a list: a field holds one value, several, or none."""
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def vector_fields(vector: Any) -> dict[str, Any]:
    """A mention's ``vector`` and ``vector_bytes`` for the document sent to the index."""
    values = np.asarray(vector, dtype="<f4")
    return {"vector": values.tolist(), "vector_bytes": base64.b64encode(values.tobytes()).decode("ascii")}


def stored_vector(mention: Mapping[str, Any]) -> np.ndarray | None:
    """The vector of a mention as its stored ``_source`` holds it (float32): from ``vector_bytes``, or
    from ``vector`` in an index written before the bytes existed; None when it holds neither."""
    encoded = mention.get("vector_bytes")
    if encoded:
        return np.frombuffer(base64.b64decode(encoded), dtype="<f4").astype(np.float32)
    if mention.get("vector"):
        return np.asarray(mention["vector"], dtype=np.float32)
    return None


# Painless, run first by every scripted update of a document: each mention whose source lacks
# ``vector`` gets it back from ``vector_bytes`` (an update re-indexes the stored source, which has no
# ``vector``). The byte arithmetic is spelt out in ints: Painless rejects ``byte & int``.
RESTORE_VECTORS_SCRIPT = """
for (def mention : (ctx._source.mentions instanceof List ? ctx._source.mentions : [])) {
  if (mention.vector == null && mention.vector_bytes != null) {
    byte[] bytes = Base64.getDecoder().decode((String) mention.vector_bytes);
    List values = new ArrayList();
    for (int i = 0; i < bytes.length; i += 4) {
      int b0 = ((int) bytes[i]) & 255; int b1 = ((int) bytes[i + 1]) & 255;
      int b2 = ((int) bytes[i + 2]) & 255; int b3 = ((int) bytes[i + 3]) & 255;
      values.add(Float.intBitsToFloat(b0 | (b1 << 8) | (b2 << 16) | (b3 << 24)));
    }
    mention.vector = values;
  }
}
""".strip()
