"""Mentions to vectors: character span -> its last sub-word token -> value vector -> head -> unit vector.

The encoder is causal, so the value vector at a mention's last token has seen the left context and
the whole mention (DESIGN §1). A type description goes through the same path, the whole string
being one span.
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

from ner_os.config import Settings
from ner_os.encoder import Encoder
from ner_os.errors import NerOsError
from ner_os.head import ProjectionHead, encoder_identity, head_for, l2_normalise
from ner_os.mentions.positions import description_text, last_token_indices


class MentionEmbedder:
    """Unit vectors for mentions and type descriptions, from one encoder and an optional head.

    ``head=None`` gives the raw value vectors, L2-normalised.
    """

    def __init__(self, encoder, head: ProjectionHead | None = None):
        if head is not None:
            head.check_compatible(encoder)
        self.encoder = encoder
        self.head = head

    @classmethod
    def from_settings(cls, settings, encoder=None, *, spin: bool = False) -> "MentionEmbedder":
        """The encoder of the settings and the head they select (see :func:`ner_os.head.head_for`);
        ``spin``: a new encoder's ONNX threads busy-wait between operators (see :meth:`Encoder.load`)."""
        if encoder is None:
            encoder = Encoder.from_settings(settings, spin=spin)
        return cls(encoder, head_for(settings, encoder))

    @property
    def dim(self) -> int:
        return self.head.out_dim if self.head is not None else int(self.encoder.d_v)

    def identity(self) -> dict:
        """What makes its vectors comparable with another embedder's: encoder, layer, head, dimension."""
        return {**encoder_identity(self.encoder), "head": self.head.digest if self.head is not None else None,
                "dim": int(self.dim)}

    def embed(self, texts: Sequence[str], spans: Sequence[Sequence], role: str = "mention") -> list[np.ndarray]:
        """One float32 ``[n_spans_i, dim]`` array of unit vectors per text, rows in span order.

        ``role`` tells the head what was read: ``mention`` (spans in their texts) or ``query``
        (a type description alone, see :meth:`embed_types`).
        """
        if len(texts) != len(spans):
            raise NerOsError(f"got {len(texts)} texts but {len(spans)} span lists")
        wanted = [i for i, text_spans in enumerate(spans) if len(text_spans)]
        encoded = dict(zip(wanted, self.encoder.encode([texts[i] for i in wanted]))) if wanted else {}
        return self.embed_encoded(texts, [encoded.get(i) for i in range(len(texts))], spans, role)

    def embed_encoded(self, texts: Sequence[str], encoded: Sequence, spans: Sequence[Sequence],
                      role: str = "mention") -> list[np.ndarray]:
        """:meth:`embed` for texts already encoded (``encoded[i]``: what ``encoder.encode`` returned for
        ``texts[i]``, with ``vectors`` and ``offsets``; None where the text has no span): no model pass.
        The loader encodes a batch once, detects spans from the vectors and embeds them from the same ones."""
        if not len(texts) == len(spans) == len(encoded):
            raise NerOsError(f"got {len(texts)} texts, {len(encoded)} encoded texts and {len(spans)} span lists")
        empty = np.zeros((0, self.dim), dtype=np.float32)
        wanted = [i for i, text_spans in enumerate(spans) if len(text_spans)]
        out = [empty] * len(texts)
        if not wanted:
            return out
        raw_rows = []
        for i in wanted:
            rows = last_token_indices(np.asarray(encoded[i].offsets), spans[i], texts[i])
            raw_rows.append(np.asarray(encoded[i].vectors)[rows])
        counts = [len(rows) for rows in raw_rows]
        projected = self.project(np.concatenate(raw_rows), role)
        for i, part in zip(wanted, np.split(projected, np.cumsum(counts)[:-1])):
            out[i] = part
        return out

    def raw_layers(self, texts: Sequence[str], spans: Sequence[Sequence], layers: Sequence[int]
                   ) -> list[dict[int, np.ndarray]]:
        """Raw value vectors of several layers from one encoder pass (``encoder.encode_layers``), no head:
        per text ``{layer: float32 [n_spans_i, d_v]}`` at each span's last token, rows in span order."""
        if len(texts) != len(spans):
            raise NerOsError(f"got {len(texts)} texts but {len(spans)} span lists")
        layers = [int(layer) for layer in layers]
        out = []
        for text, text_spans, item in zip(texts, spans, self.encoder.encode_layers(list(texts), layers=layers)):
            rows = last_token_indices(np.asarray(item.offsets), text_spans, text)
            out.append({layer: np.asarray(item[layer], dtype=np.float32)[rows] for layer in layers})
        return out

    def embed_type(self, description: str) -> np.ndarray:
        """The description's vector (float32 ``[dim]``): no template, the whole string one span (:func:`description_text`)."""
        return self.embed_types([description])[0]

    def embed_types(self, descriptions: Sequence[str]) -> np.ndarray:
        """float32 ``[n, dim]``: :meth:`embed_type` for several descriptions in one encoder call."""
        if not descriptions:
            return np.zeros((0, self.dim), dtype=np.float32)
        texts, spans = zip(*(description_text(description) for description in descriptions))
        return np.concatenate(self.embed(list(texts), [[span] for span in spans], role="query"))

    def project(self, raw: np.ndarray, role: str = "mention") -> np.ndarray:
        """Raw value vectors -> unit vectors in this embedder's space (``role``: see :meth:`embed`)."""
        return self.head.project(raw, role) if self.head is not None else l2_normalise(raw)


@functools.lru_cache(maxsize=4)
def embedder_for(settings) -> MentionEmbedder:
    """One embedder per settings, kept: loading the encoder is the slow part."""
    return MentionEmbedder.from_settings(settings)


def embed_type(description: str, settings=None, **flags) -> np.ndarray:
    """The unit vector of a plain-words type description, as searched against mention vectors.

    ``embed_type("dinosaur")`` uses the default profile, layer and head; ``settings`` (a
    :class:`ner_os.config.Settings`) or keyword flags (``profile=``, ``layer=``, ``head=``, ...)
    choose others, as the CLI flags do. It is read in the query numerics (``Settings.query_numerics``),
    as :class:`ner_os.client.NerOs` reads it.
    """
    settings = settings.replace(**flags) if settings is not None else Settings.resolve(**flags)
    return embedder_for(settings.for_queries()).embed_type(description)


def vectors_identity(embedder) -> dict | None:
    """``embedder.identity()`` for a :class:`MentionEmbedder`; None for a stand-in that has none."""
    identity = getattr(embedder, "identity", None)
    return identity() if callable(identity) else None
