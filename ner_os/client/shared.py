"""One client per distinct settings, kept for the process: what :func:`ner_os.search_type` uses."""

from __future__ import annotations

import functools
from typing import Any, Mapping

from ner_os import query as q
from ner_os.client.neros import NerOs
from ner_os.config import Settings


@functools.lru_cache(maxsize=4)
def _shared(settings: Settings) -> NerOs:
    return NerOs(settings)


def shared_client(**flags: Any) -> NerOs:
    """One ``NerOs`` per distinct settings, kept for the process (what :func:`ner_os.search_type` uses)."""
    return _shared(Settings.resolve(**flags))


def search_type(description: str, *, index: str | None = None, size: int = 10, k: int | None = None,
                hybrid: bool = False, filters: Mapping[str, Any] | None = None, offset: int = 0,
                min_score: float | None = None, mentions_per_hit: int = 3,
                mention_margin: float | None = q.MENTION_MARGIN, embedding: str | None = None,
                **settings: Any) -> q.TypeResults:
    """Documents that mention an entity of the described type, best first.

    ``settings`` are :class:`ner_os.config.Settings` fields (``opensearch_url``, ``profile``,
    ``head``…). The client behind it (connection, encoder, head, cached type vectors) is built once
    per distinct settings and reused; hold a :class:`NerOs` yourself for more control. ``embedding``:
    ``cluster`` | ``local`` | ``auto`` (the default: the cluster when the index's model is deployed).
    """
    return shared_client(**settings).search_type(
        description, index=index, size=size, k=k, hybrid=hybrid, filters=filters, offset=offset,
        min_score=min_score, mentions_per_hit=mentions_per_hit, mention_margin=mention_margin, embedding=embedding)
