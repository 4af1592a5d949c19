"""``AsyncNerOs``: the client's type search with ``async``/``await``, over opensearch-py's ``AsyncOpenSearch``.

The same shape as :class:`ner_os.client.NerOs` (``search_type``, ``search_types``, the same options and
results) and the same code: a query is prepared by :mod:`ner_os.client.prepare` and its steps are the
ones the sync client drives, here driven by :func:`ner_os.query.drive_async`.

    import asyncio
    from ner_os import AsyncNerOs

    async def main():
        async with AsyncNerOs(opensearch_url="http://localhost:9200") as ner:
            dinosaurs, rivers = await asyncio.gather(ner.search_type("dinosaur"), ner.search_type("river"))

    asyncio.run(main())

Only the searches travel over ``AsyncOpenSearch``. What a client learns once per index (its mapping,
pipelines, deployed model) and a description's encoding run in a worker thread through the sync
:class:`NerOs` it holds (``sync``), one at a time, so the event loop never waits on them.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable, Sequence

from ner_os import query as q
from ner_os.client.batch import batch_results, prepare_batch
from ner_os.client.neros import NerOs
from ner_os.client.prepare import query_steps
from ner_os.config import Settings
from ner_os.store import async_connection as aio
from ner_os.store.search import MissingIndex


class AsyncNerOs:
    """:class:`NerOs` for asyncio. ``settings`` and ``flags``: as :class:`NerOs` (``embedder``, ``fusion``,
    ``embedding`` and the settings fields); ``opensearch``: an ``AsyncOpenSearch`` to use instead of one
    built from the settings; ``sync``: the :class:`NerOs` that prepares queries (built when not given)."""

    def __init__(self, settings: Settings | None = None, *, opensearch=None, sync: NerOs | None = None, **flags: Any):
        self.sync = sync if sync is not None else NerOs(settings, **flags)
        self._opensearch = opensearch
        self._preparing = threading.Lock()  # the sync client's caches are not meant for several threads at once

    @property
    def settings(self) -> Settings:
        return self.sync.settings

    @property
    def opensearch(self):
        if self._opensearch is None:
            self._opensearch = aio.async_client_from_settings(self.settings)
        return self._opensearch

    async def search_type(self, description: str | None = None, **options: Any) -> q.TypeResults:
        """:meth:`NerOs.search_type`, awaited (the same options)."""
        steps, index = await self._prepared(query_steps, description, **options)
        return await q.drive_async(steps, lambda request: self._send(request, index))

    async def search_types(self, queries: Sequence[Any], **options: Any) -> list[q.TypeResults]:
        """:meth:`NerOs.search_types`, awaited: one ``_msearch`` a round, one result per query in order."""
        steps, specs = await self._prepared(prepare_batch, queries, options)
        outcomes = await q.drive_async(steps, lambda batch: aio.send_batch(self.opensearch, batch.requests))
        return batch_results(self.sync, outcomes, specs)

    async def _prepared(self, prepare: Callable, *args: Any, **kwargs: Any):
        def locked():
            with self._preparing:
                return prepare(self.sync, *args, **kwargs)

        return await asyncio.to_thread(locked)

    async def _send(self, request: Any, index: str) -> Any:
        try:
            return await aio.send(self.opensearch, index, request)
        except MissingIndex:
            self.sync.forget_index(index)
            raise

    async def close(self) -> None:
        if self._opensearch is not None:
            await self._opensearch.close()
            self._opensearch = None
        self.sync.close()

    async def __aenter__(self) -> "AsyncNerOs":
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()
