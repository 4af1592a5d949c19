"""One client per distinct settings, kept for the process: what :func:`ner_os.search_type` uses."""

from __future__ import annotations

import functools
from typing import Any, Mapping, Sequence

from ner_os import query as q
from ner_os.client.neros import NerOs
from ner_os.config import Settings


@functools.lru_cache(maxsize=4)
def _shared(settings: Settings) -> NerOs:
    return NerOs(settings)


def shared_client(**flags: Any) -> NerOs:
    """One ``NerOs`` per distinct settings, kept for the process (what :func:`ner_os.search_type` uses)."""
    return _shared(Settings.resolve(**flags))


def search_type(description: str | None = None, *, examples: Sequence = (), more_like: Sequence = (),
                less_like: Sequence = (), index: str | None = None, size: int = 10, k: int | None = None,
                hybrid: bool = False, filters: Mapping[str, Any] | None = None, offset: int = 0,
                min_score: float | None = None, mentions_per_hit: int = 3,
                mention_margin: float | None = q.MENTION_MARGIN, embedding: str | None = None,
                **settings: Any) -> q.TypeResults:
    """Documents that mention an entity of the described type, best first.

    ``settings`` are :class:`ner_os.config.Settings` fields (``opensearch_url``, ``profile``,
    ``head``…). The client behind it (connection, encoder, head, cached type vectors) is built once
    per distinct settings and reused; hold a :class:`NerOs` yourself for more control. ``embedding``:
    ``cluster`` | ``local`` | ``auto`` (the default: the cluster when the index's model is deployed).
    ``examples``, ``more_like``, ``less_like``: query by example and feedback (:meth:`NerOs.search_type`).
    """
    return shared_client(**settings).search_type(
        description, examples=examples, more_like=more_like, less_like=less_like, index=index, size=size, k=k,
        hybrid=hybrid, filters=filters, offset=offset,
        min_score=min_score, mentions_per_hit=mentions_per_hit, mention_margin=mention_margin, embedding=embedding)


def search_types(queries: Sequence[Any], **options: Any) -> list[q.TypeResults]:
    """Several type queries over one ``_msearch`` (:meth:`NerOs.search_types`) with the process's shared client.

    ``options``: :meth:`NerOs.search_type` options (``size``, ``index``, ``filters``…), applied to every
    query, and :class:`ner_os.config.Settings` fields (``opensearch_url``…), as :func:`search_type` takes them."""
    from ner_os.client.batch import QUERY_OPTIONS

    query_options = {key: value for key, value in options.items() if key in QUERY_OPTIONS}
    settings = {key: value for key, value in options.items() if key not in QUERY_OPTIONS}
    return shared_client(**settings).search_types(queries, **query_options)
