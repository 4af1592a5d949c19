"""The one on-disk vector cache: named float arrays kept per content, under one encoder's identity.

Layout: ``<cache_dir>/<kind>/<digest of the identity>/<digest of the content>/<name>.npy``, with
the identity written once as ``identity.json`` beside the entries and an optional ``meta.json``
per entry. The identity is what the vectors depend on besides the content (model, layer, numerics,
tokenizer); the content is what was encoded (the texts, and the spans read in them). Both are
fingerprinted by :func:`ner_os.digest.digest`, so a change to either one reads another entry.

Every array is written to a ``.partial.npy`` first and renamed, so a kill mid-write never leaves
a truncated file behind. Two uses:

- per-mention vectors of a dataset (training): one entry per list of texts and spans, one array
  per layer (``L<layer>``), so that a request for a new layer adds a file and one for cached layers
  reads only (:func:`ner_os.training.vectors.mention_vectors`);
- type vectors (the query path): one entry per type description, as the embedder reads it
  (:func:`ner_os.mentions.positions.description_text`), under the embedder's identity and numerics
  (:class:`TypeVectorCache`), so a description searched before costs no model load at all;
- token vectors of texts (the eval, ``bench/head.py``): one entry per slice of texts, written as
  soon as the slice is encoded (:meth:`VectorCache.write_encoded`, used by
  :meth:`ner_os.mentions.proxy.EncoderProxy.encode_all`), so an interrupted encode resumes with the
  slices it has not written. Each text's offsets are checked against a fresh tokenisation when read,
  so a tokenizer that changed never serves stale vectors.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ner_os.digest import digest
from ner_os.encoder import EncodedText
from ner_os.encoder.export import numerics_id
from ner_os.head import encoder_identity
from ner_os.mentions.embedder import vectors_identity
from ner_os.mentions.positions import description_text

log = logging.getLogger(__name__)

MENTION_VECTORS = "mention-vectors"  # kind: per-mention vectors of a dataset, one array per layer
TOKEN_VECTORS = "token-vectors"  # kind: token vectors of slices of texts
TYPE_VECTORS = "type-vectors"  # kind: the vector of one type description (the query path)
IDENTITY_FILE = "identity.json"
META_FILE = "meta.json"
_ENCODED = ("vectors", "offsets", "lengths")


class VectorCache:
    """Arrays under ``<root>/<kind>/<identity digest>/``; an entry per content, an ``.npy`` per name."""

    def __init__(self, root: str | Path, kind: str, identity: Mapping[str, Any]):
        self.identity = dict(identity)
        self.directory = Path(root) / kind / digest(self.identity)[:16]

    def entry(self, content: Any) -> Path:
        """The folder of ``content`` (any JSON-able value: texts, spans ...)."""
        return self.directory / digest(content)[:24]

    def has(self, entry: Path, name: str) -> bool:
        return (entry / f"{name}.npy").is_file()

    def read(self, entry: Path, names: Sequence[str]) -> dict[str, np.ndarray] | None:
        """The arrays ``names`` of an entry, or None unless every one of them is stored."""
        paths = {name: entry / f"{name}.npy" for name in names}
        if not all(path.is_file() for path in paths.values()):
            return None
        return {name: np.load(path) for name, path in paths.items()}

    def write(self, entry: Path, arrays: Mapping[str, np.ndarray]) -> Path:
        """Store ``arrays`` in an entry, each file atomically; the entry comes back."""
        entry.mkdir(parents=True, exist_ok=True)
        identity_file = self.directory / IDENTITY_FILE
        if not identity_file.is_file():
            _write_text_atomic(identity_file, json.dumps(self.identity, indent=2, sort_keys=True) + "\n")
        for name, array in arrays.items():
            _save_atomic(entry / f"{name}.npy", np.asarray(array))
        return entry

    def read_meta(self, entry: Path) -> dict | None:
        path = entry / META_FILE
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    def write_meta(self, entry: Path, meta: Mapping[str, Any]) -> None:
        entry.mkdir(parents=True, exist_ok=True)
        _write_text_atomic(entry / META_FILE, json.dumps(meta, indent=2) + "\n")

    # --- token vectors of texts (EncodedText), one entry per slice -------------------------------

    def read_encoded(self, texts: Sequence[str], tokenize: Callable[[str], Any] | None = None) -> list | None:
        """The stored :class:`EncodedText` of each of ``texts`` (in order), or None when absent or stale."""
        entry = self.entry(list(texts))
        stored = self.read(entry, _ENCODED)
        if stored is None:
            return None
        vectors, offsets, lengths = stored["vectors"], stored["offsets"], stored["lengths"]
        if len(lengths) != len(texts) or int(lengths.sum()) != len(vectors):
            log.warning("%s does not hold these texts; encoding them again", entry)
            return None
        out = []
        for text, end, length in zip(texts, np.cumsum(lengths), lengths):
            rows = slice(int(end - length), int(end))
            if tokenize is not None and not np.array_equal(np.asarray(tokenize(text)[1]), offsets[rows]):
                log.warning("the tokenizer changed since %s was written; encoding again", entry)
                return None
            out.append(EncodedText(vectors=vectors[rows], offsets=offsets[rows]))
        return out

    def write_encoded(self, texts: Sequence[str], encoded: Sequence) -> Path:
        """Store the encodings of ``texts`` (one slice); a slice with a file missing reads as absent."""
        arrays = {
            "vectors": np.concatenate([np.asarray(item.vectors, np.float32) for item in encoded]),
            "offsets": np.concatenate([np.asarray(item.offsets, np.int32).reshape(-1, 2) for item in encoded]),
            "lengths": np.asarray([len(item.offsets) for item in encoded], dtype=np.int64),
        }
        return self.write(self.entry(list(texts)), arrays)


def _save_atomic(path: Path, array: np.ndarray) -> None:
    partial = path.with_name(path.stem + ".partial.npy")
    np.save(partial, array)
    os.replace(partial, path)


def _write_text_atomic(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def token_vectors_identity(encoder, settings) -> dict[str, Any]:
    """What the token vectors of a text depend on: the model, layer and numerics, and the tokenizer."""
    return {**encoder_identity(encoder), "backend": settings.backend, "dtype": encoder_numerics(encoder, settings),
            "tokenizer": str(getattr(getattr(encoder, "tokenizer", None), "name_or_path", "")),
            "max_tokens": getattr(encoder, "max_tokens", None), "chunk_context": getattr(encoder, "chunk_context", None)}


def token_vector_cache(settings, encoder) -> VectorCache:
    """The token vectors ``encoder`` makes, kept under the settings' cache dir (``ner-os eval --vector-cache``)."""
    return VectorCache(settings.cache_dir, TOKEN_VECTORS, token_vectors_identity(encoder, settings))


class TypeVectorCache:
    """Type-description vectors on disk: ``<root>/type-vectors/<identity>/<description>/vector.npy``.

    ``identity`` is the embedder's (:meth:`ner_os.mentions.embedder.MentionEmbedder.identity`: profile,
    model, layer, d_v, head digest, dim) plus the numerics (backend, dtype); the content is the text
    the embedder reads for the description. A file that cannot be read, or holds another shape or a
    non-finite value, is ignored (and overwritten by the next :meth:`put`).
    """

    def __init__(self, root: str | Path, identity: Mapping[str, Any]):
        self.cache = VectorCache(root, TYPE_VECTORS, identity)
        self.dim = int(identity["dim"]) if identity.get("dim") is not None else None

    def entry(self, description: str) -> Path:
        return self.cache.entry(description_text(description)[0])

    def get(self, description: str) -> np.ndarray | None:
        entry = self.entry(description)
        try:
            stored = self.cache.read(entry, ["vector"])
        except (OSError, ValueError, EOFError) as error:  # a truncated or foreign file
            log.warning("ignoring the cached type vector in %s: %s", entry, error)
            return None
        if stored is None:
            return None
        vector = stored["vector"]
        if vector.dtype != np.float32 or vector.ndim != 1 or (self.dim is not None and len(vector) != self.dim) \
                or not np.isfinite(vector).all():
            log.warning("ignoring the cached type vector in %s: %s %s", entry, vector.dtype, vector.shape)
            return None
        return vector

    def put(self, description: str, vector: np.ndarray) -> None:
        try:
            self.cache.write(self.entry(description), {"vector": np.asarray(vector, dtype=np.float32)})
        except OSError as error:  # a full or read-only cache dir: the query still answers
            log.warning("cannot cache the type vector of %r: %s", description, error)


def type_vector_cache(settings, embedder) -> TypeVectorCache | None:
    """The type-vector cache of ``embedder`` under the settings' cache dir; None for an embedder
    without an identity (a stand-in)."""
    identity = vectors_identity(embedder)
    if identity is None:
        return None
    numerics = encoder_numerics(getattr(embedder, "encoder", None), settings)
    return TypeVectorCache(settings.cache_dir, {**identity, "backend": settings.backend, "dtype": numerics})


def encoder_numerics(encoder, settings) -> str:
    """The numerics ``encoder`` runs in where it says (an encoder may be built in others than the settings'),
    else the settings' documents' numerics; an int8 recipe's version included (vectors of another recipe differ)."""
    return numerics_id(getattr(encoder, "dtype", None) or settings.numerics)


def cached_type_vector(embedder, description: str, cache: TypeVectorCache | None) -> np.ndarray:
    """``embedder.embed_type(description)``, read from ``cache`` when it holds it, else computed and stored."""
    vector = cache.get(description) if cache is not None else None
    if vector is None:
        vector = np.asarray(embedder.embed_type(description), dtype=np.float32)
        if cache is not None:
            cache.put(description, vector)
    return vector
