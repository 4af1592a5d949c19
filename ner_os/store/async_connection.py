"""The async twin of the query path's I/O: an ``AsyncOpenSearch`` client from the settings, and ``send`` /
``send_batch`` for query steps, over the same request plan and error wording as :mod:`ner_os.store.search`.

``AsyncOpenSearch`` needs aiohttp (a dependency of ner-os). Only the requests of type queries travel
here; what a client learns once per index (mapping, pipelines, the deployed model) goes through the
sync client (see :class:`ner_os.client.AsyncNerOs`).
"""

from __future__ import annotations

from typing import Any, Sequence

from ner_os.config import Settings
from ner_os.errors import NerOsError
from ner_os.store.connection import check_credentials, client_options
from ner_os.store.node.lifecycle import ensure_cluster_url
from ner_os.store.search import BatchPlan, _failed, _transport_error, msearch_lines


def async_client_from_settings(settings: Settings):
    """An ``opensearchpy.AsyncOpenSearch`` for the configured cluster (the same credentials and TLS as the sync one)."""
    from opensearchpy import AsyncOpenSearch

    check_credentials(settings)
    return AsyncOpenSearch(**client_options(settings, ensure_cluster_url(settings)))


async def search(client, index: str, body: Any, **params: Any) -> dict:
    from opensearchpy import exceptions as os_errors

    try:
        return await client.search(index=index, body=body, **params)
    except os_errors.TransportError as error:
        raise _transport_error(index, error) from None


async def msearch(client, index: str, bodies: Sequence[Any]) -> list[dict]:
    """``_msearch`` of ``bodies`` on ``index``; the first failed search raises."""
    (answer,) = await send_batch(client, [(index, _Bodies(tuple(bodies)))])
    if isinstance(answer, NerOsError):
        raise answer
    return answer


async def send(client, index: str, request: Any) -> Any:
    """:func:`ner_os.store.search.send`, awaited."""
    bodies = getattr(request, "bodies", None)
    if bodies is not None:
        return await msearch(client, index, bodies)
    return await search(client, index, request.body, **request.params)


async def send_batch(client, requests: Sequence[tuple[str, Any]]) -> list[Any]:
    """:func:`ner_os.store.search.send_batch`, awaited: per request its answer or its error."""
    from opensearchpy import exceptions as os_errors

    plan = BatchPlan(requests)
    singles = {}
    for number in plan.singles:
        index, request = requests[number]
        try:
            singles[number] = await search(client, index, request.body, **request.params)
        except NerOsError as error:
            singles[number] = error
    responses = []
    if plan.searches:
        try:
            responses = (await client.msearch(body=msearch_lines(plan.searches)))["responses"]
        except os_errors.TransportError as error:
            raise _failed(", ".join(sorted({index for index, _ in plan.searches})), error) from None
    return plan.answers(responses, singles)


class _Bodies:
    """A multi-search request as :class:`ner_os.store.search.BatchPlan` reads one (``bodies``)."""

    def __init__(self, bodies: tuple):
        self.bodies = bodies
