"""The hand-made integration corpora: an embedder of type vectors from a table (no model behind it),
and the loading of documents whose mention vectors are given."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Mapping

import numpy as np
from ner_os.fields import vector_fields


class AxisEmbedder:
    """Embeds a description by looking it up in ``type_vectors`` (description -> vector)."""

    head = None

    def __init__(self, type_vectors: Mapping[str, np.ndarray]):
        self.type_vectors = dict(type_vectors)
        self.dim = len(next(iter(self.type_vectors.values())))
        self.encoder = SimpleNamespace(profile=SimpleNamespace(name="hand-made"), layer=0, d_v=self.dim)

    def embed_type(self, description: str) -> np.ndarray:
        return self.type_vectors[description]


def mention_source(text: str, mentions) -> dict:
    """A document's ``_source``: each ``(surface, vector)`` at its first place in ``text``."""
    out = []
    for surface, vector in mentions:
        start = text.index(surface)
        out.append({"start": start, "end": start + len(surface), "surface": surface, **vector_fields(vector)})
    return {"text": text, "mentions": out}


def index_documents(client, index: str, dim: int, documents) -> None:
    """The templates for ``dim``-d vectors, then ``(doc id, text, [(surface, vector)])`` documents, refreshed."""
    from ner_os.config import Settings
    from ner_os.store import bulk, schema

    schema.install_templates(client, Settings.resolve(index=index), dim)
    actions = [{"_index": index, "_id": doc_id, "_source": mention_source(text, mentions)}
               for doc_id, text, mentions in documents]
    assert bulk.bulk_index(client, actions, refresh=True).failures == []

