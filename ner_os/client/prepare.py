"""A type query made ready to send: checked, its vector computed, its request steps and index.

:class:`ner_os.client.NerOs` drives what :func:`query_steps` returns with the sync client,
:class:`ner_os.client.AsyncNerOs` with ``AsyncOpenSearch``, and ``search_types`` several of them side
by side over one ``_msearch`` a round (:func:`ner_os.query.batch_steps`): one preparation for all three.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np

from ner_os import query as q
from ner_os.checks import check_vector
from ner_os.client.by_example import composed_vector
from ner_os.errors import NerOsError
from ner_os.store import schema


def query_steps(ner, description: str | None = None, *, examples: Sequence = (), more_like: Sequence = (),
                less_like: Sequence = (), index: str | None = None, size: int = 10, k: int | None = None,
                hybrid: bool = False, filters: Mapping[str, Any] | None = None, offset: int = 0,
                min_score: float | None = None, mentions_per_hit: int = 3,
                mention_margin: float | None = q.MENTION_MARGIN, embedding: str | None = None) -> tuple[q.Steps, str]:
    """:meth:`ner_os.client.NerOs.search_type`'s query (the same options) as its steps and index, not yet sent."""
    composed = description is None or bool(examples or more_like or less_like)
    if composed and hybrid:
        raise NerOsError("hybrid search reads a description's words: it does not go with examples or feedback")
    query = q.TypeQuery(q.query_label(description, examples) if composed else description, size=size,
                        offset=offset, k=k, hybrid=hybrid, min_score=min_score, filters=filters,
                        mentions_per_hit=mentions_per_hit, mention_margin=mention_margin)
    if query.filters:  # a field the index lacks is named before the description is encoded
        schema.check_filter_fields(ner.opensearch, ner.index_name(index), query.filters)
    vector = (composed_vector(ner, description, examples, more_like, less_like, ner.index_name(index))
              if composed else ner.query_vector(query.description, index, embedding))
    return vector_steps(ner, vector, query, index)


def vector_steps(ner, vector: q.QueryVector, query: q.TypeQuery, index: str | None = None) -> tuple[q.Steps, str]:
    """The steps of ``query`` searched with ``vector`` (or a :class:`ner_os.query.NeuralText`) on ``index``;
    their results carry the vector (what feedback refines)."""
    index = ner.index_name(index)
    if not isinstance(vector, q.NeuralText):
        vector = check_vector(vector, ner.vector_dimension(index))
    query = dataclasses.replace(query, shards=ner.index_shards(index))  # the default k is split over them
    steps = q.type_search_steps(vector, query, index=index, server_hybrid=query.hybrid and ner.server_hybrid(index),
                                pipeline=ner.pipeline(index))
    return (steps if isinstance(vector, q.NeuralText) else q.with_vector(steps, np.asarray(vector))), index
