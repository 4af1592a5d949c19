"""Type vectors made of examples and feedback, for :class:`ner_os.client.NerOs` (``search_type(examples=...,
more_like=..., less_like=...)`` and ``refine``): the rules live in :mod:`ner_os.query.examples` and
:mod:`ner_os.query.feedback`, the stored vectors come through the client's own request path.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ner_os import query as q
from ner_os.errors import NerOsError


def stored_vectors(ner, refs: Sequence[q.MentionRef], index: str) -> list[np.ndarray]:
    """The stored vectors of mentions in ``index`` (one request; none when ``refs`` is empty)."""
    if not refs:
        return []
    ner.vector_dimension(index)  # a missing index: the usual one-line error
    return q.drive(q.mention_vector_steps(refs), lambda request: ner._send(request, index))


def composed_vector(ner, description: str | None, examples: Sequence[Any], more_like: Sequence[Any],
                    less_like: Sequence[Any], index: str) -> np.ndarray:
    """The type vector of a description and/or examples (:func:`ner_os.query.combine`), refined by the hits
    marked right (``more_like``) and wrong (``less_like``) (:func:`ner_os.query.rocchio`)."""
    surfaces, mentions = q.split_examples(examples)
    right, wrong = [q.mention_ref(hit) for hit in more_like], [q.mention_ref(hit) for hit in less_like]
    q.check_marks(right, wrong)
    if description is None and not surfaces and not mentions and right:
        surfaces, mentions, right = [], right, []  # only hits marked right: they are the examples
    if description is None and not surfaces and not mentions:
        raise NerOsError("a type query needs a description or examples (e.g. --like Nile)")
    stored = stored_vectors(ner, mentions + right + wrong, index)
    example_vectors = [np.asarray(ner.index_type_vector(surface, index), np.float32) for surface in surfaces]
    example_vectors += stored[:len(mentions)]
    described = None if description is None else np.asarray(ner.index_type_vector(description, index), np.float32)
    vector = q.combine(described, example_vectors)
    marked = stored[len(mentions):]
    return q.rocchio(vector, marked[:len(right)], marked[len(right):]) if marked else vector


def refine(ner, results: q.TypeResults, right: Sequence[Any], wrong: Sequence[Any], **options: Any) -> q.TypeResults:
    """``results`` searched again with its type vector refined by the hits marked right and wrong
    (hit numbers as printed, or the hits themselves); ``options``: :class:`ner_os.query.TypeQuery` fields."""
    if results.vector is None:
        raise NerOsError("this result holds no type vector (the cluster embedded the words): search with "
                         "embedding='local' to refine it")
    if options.get("hybrid"):
        raise NerOsError("hybrid search reads a description's words: it does not go with feedback")
    q.check_marks(right, wrong)
    if not right and not wrong:
        raise NerOsError("mark at least one hit right or wrong to refine a result")
    right_refs = [q.mention_ref(hit) for hit in q.marked_hits(results, right)]
    wrong_refs = [q.mention_ref(hit) for hit in q.marked_hits(results, wrong)]
    stored = stored_vectors(ner, right_refs + wrong_refs, results.index)
    vector = q.rocchio(np.asarray(results.vector, np.float32), stored[:len(right_refs)], stored[len(right_refs):])
    return ner.search_vector(vector, q.TypeQuery(results.description, **options), index=results.index)
