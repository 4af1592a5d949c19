"""Every read request ner-os makes: search, msearch, a batch of several queries' requests, count, scan, the stored search template, pipeline checks.

What to ask lives in :mod:`ner_os.query` (bodies and request steps); this module only sends it.
Errors come back as one-line :class:`ner_os.errors.NerOsError` messages: :class:`MissingIndex` for
an index that does not exist, :class:`ner_os.errors.ClusterError` for anything else the cluster refuses.
"""

from __future__ import annotations

import json
from typing import Any, Iterator, Mapping, Sequence

from opensearchpy import exceptions as os_errors
from opensearchpy.helpers import scan as _scroll

from ner_os.errors import ClusterError, NerOsError
from ner_os.resources import templates_dir
from ner_os.store.connection import reason

SCAN_PAGE = 500  # hits per scroll page
SCAN_KEEP_ALIVE = "5m"
SEARCH_TEMPLATE = ("search_templates", "type_query.json")  # under the templates directory


class MissingIndex(NerOsError):
    """The index searched does not exist."""

    def __init__(self, index: str):
        super().__init__(f"index {index!r} does not exist (any more)")
        self.index = index


def _failed(index: str, error: Any) -> ClusterError:
    """``error``: a TransportError or the error object of an msearch response."""
    return ClusterError(f"search on {index!r} failed: {reason(error)}")


def search(client, index: str, body: Mapping[str, Any], **params: Any) -> dict:
    """``_search`` on ``index`` (``params``: URL parameters such as ``search_pipeline``)."""
    try:
        return client.search(index=index, body=body, **params)
    except os_errors.NotFoundError:
        raise MissingIndex(index) from None
    except os_errors.TransportError as error:
        raise _failed(index, error) from None


def msearch(client, index: str, bodies: Sequence[Mapping[str, Any]]) -> list[dict]:
    """``_msearch``: one search per body on ``index``, the responses in the same order."""
    try:
        responses = client.msearch(body=msearch_lines([(index, body) for body in bodies]))["responses"]
    except os_errors.TransportError as error:
        raise _transport_error(index, error) from None
    for response in responses:
        if "error" in response:
            raise response_error(index, response)
    return responses


def _transport_error(index: str, error: Any) -> NerOsError:
    return MissingIndex(index) if isinstance(error, os_errors.NotFoundError) else _failed(index, error)


def response_error(index: str, response: Mapping[str, Any]) -> NerOsError | None:
    """The error of one ``_msearch`` response (None when it succeeded)."""
    if "error" not in response:
        return None
    return MissingIndex(index) if response.get("status") == 404 else _failed(index, response["error"])


def msearch_lines(searches: Sequence[tuple[str, Mapping[str, Any]]]) -> list[Mapping[str, Any]]:
    """The ``_msearch`` body of (index, search body) pairs: a header line then the body, for each."""
    lines: list[Mapping[str, Any]] = []
    for index, body in searches:
        lines += [{"index": index}, body]
    return lines


def send(client, index: str, request: Any) -> Any:
    """One request of the query layer's steps (ner_os.query.steps): a multi-search when it carries
    ``bodies``, else a search with its ``body`` and ``params``."""
    bodies = getattr(request, "bodies", None)
    if bodies is not None:
        return msearch(client, index, bodies)
    return search(client, index, request.body, **request.params)


def send_batch(client, requests: Sequence[tuple[str, Any]]) -> list[Any]:
    """The requests of several queries' steps at once (``(index, request)`` pairs, see :func:`send`): every
    request without URL parameters in one ``_msearch``; one that has some (a hybrid query's
    ``search_pipeline``, which ``_msearch`` does not take on OpenSearch 2.19) by itself. Per request, in
    order: its answer, or the :class:`ner_os.errors.NerOsError` of its failure (a missing index, a
    refused query); a failure of the whole ``_msearch`` (the cluster unreachable) raises."""
    plan = BatchPlan(requests)
    singles = {}
    for number in plan.singles:
        index, request = requests[number]
        try:
            singles[number] = search(client, index, request.body, **request.params)
        except NerOsError as error:
            singles[number] = error
    responses = []
    if plan.searches:
        try:
            responses = client.msearch(body=msearch_lines(plan.searches))["responses"]
        except os_errors.TransportError as error:
            raise _failed(", ".join(sorted({index for index, _ in plan.searches})), error) from None
    return plan.answers(responses, singles)


class BatchPlan:
    """How :func:`send_batch` (and its async twin) sends a batch: which bodies go in the ``_msearch``,
    whose they are, which requests go alone; then each request's answer from the responses."""

    def __init__(self, requests: Sequence[tuple[str, Any]]):
        self.requests = list(requests)
        self.searches: list[tuple[str, Mapping[str, Any]]] = []
        self.owners: list[int] = []  # per msearch body: the request it belongs to
        self.singles: list[int] = []
        for number, (index, request) in enumerate(self.requests):
            bodies = getattr(request, "bodies", None)
            if bodies is None and request.params:
                self.singles.append(number)
                continue
            for body in (bodies if bodies is not None else [request.body]):
                self.searches.append((index, body))
                self.owners.append(number)

    def answers(self, responses: Sequence[Mapping[str, Any]], singles: Mapping[int, Any]) -> list[Any]:
        gathered: dict[int, list] = {number: [] for number in set(self.owners)}
        for number, response in zip(self.owners, responses, strict=True):
            gathered[number].append(response_error(self.requests[number][0], response) or response)
        answers = []
        for number, (_, request) in enumerate(self.requests):
            if number in singles:
                answers.append(singles[number])
                continue
            parts = gathered[number]
            failed = next((part for part in parts if isinstance(part, NerOsError)), None)
            answers.append(failed or (parts if getattr(request, "bodies", None) is not None else parts[0]))
        return answers


def count(client, index: str, query: Mapping[str, Any] | None = None) -> int:
    """Documents of ``index`` (matching ``query`` when given)."""
    try:
        response = client.count(index=index, body={"query": query} if query is not None else None)
    except os_errors.NotFoundError:
        raise MissingIndex(index) from None
    except os_errors.TransportError as error:
        raise _failed(index, error) from None
    return int(response["count"])


def scan(client, index: str, query: Mapping[str, Any], source: Any = False, *,
         page: int = SCAN_PAGE) -> Iterator[dict]:
    """Every hit of ``query`` (a query clause) on ``index``, by scroll; ``source``: ``_source`` to return."""
    yield from _scroll(client, index=index, query={"query": query, "_source": source}, size=page,
                       scroll=SCAN_KEEP_ALIVE)


def pipeline_exists(client, name: str) -> bool:
    """Whether the search pipeline ``name`` exists."""
    return bool(client.search_pipeline.get(id=name, ignore=404))


# --- the stored search template (Dev Tools sends only the vector) ---------------------------


def search_template_id(index: str) -> str:
    return f"{index}-type-query"


def search_template_script() -> dict:
    """The stored script body (``{"script": {"lang": "mustache", "source": ...}}``)."""
    path = templates_dir().joinpath(*SEARCH_TEMPLATE)
    if not path.is_file():
        raise NerOsError(f"search template file {path} is missing: reinstall ner-os")
    return {"script": json.loads(path.read_text())["script"]}


def install_search_template(client, index: str) -> str:
    """Store the type-query template as ``<index>-type-query`` (idempotent); its id."""
    template_id = search_template_id(index)
    try:
        client.put_script(id=template_id, body=search_template_script())
    except os_errors.TransportError as error:
        hint = " (the cluster lacks the lang-mustache module)" if "mustache" in str(error) else ""
        raise ClusterError(f"storing search template {template_id} failed{hint}: {error}") from None
    return template_id
