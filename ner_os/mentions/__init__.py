"""The mentions stage: character spans -> unit vectors, through the encoder and the head.

``positions`` (span -> its last sub-word token; how a description is read), ``embedder``
(MentionEmbedder, embedder_for, embed_type, vectors_identity), ``cache`` (VectorCache: the one
on-disk vector cache), ``proxy`` (EncoderProxy: the one encoder proxy, timing and/or remembering).
"""

from ner_os.mentions.cache import VectorCache
from ner_os.mentions.embedder import MentionEmbedder, embed_type, embedder_for, vectors_identity
from ner_os.mentions.positions import description_text, last_token_indices, span_bounds
from ner_os.mentions.proxy import EncoderProxy

__all__ = [
    "MentionEmbedder",
    "embedder_for",
    "embed_type",
    "vectors_identity",
    "description_text",
    "last_token_indices",
    "span_bounds",
    "VectorCache",
    "EncoderProxy",
]
