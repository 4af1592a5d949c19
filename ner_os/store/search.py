"""Every read request ner-os makes: search, msearch, count, scan, the stored search template, pipeline checks.

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
    lines: list[Mapping[str, Any]] = []
    for body in bodies:
        lines += [{"index": index}, body]
    try:
        responses = client.msearch(body=lines)["responses"]
    except os_errors.NotFoundError:
        raise MissingIndex(index) from None
    except os_errors.TransportError as error:
        raise _failed(index, error) from None
    for response in responses:
        if "error" in response:
            if response.get("status") == 404:
                raise MissingIndex(index)
            raise _failed(index, response["error"])
    return responses


def send(client, index: str, request: Any) -> Any:
    """One request of the query layer's steps (ner_os.query.steps): a multi-search when it carries
    ``bodies``, else a search with its ``body`` and ``params``."""
    bodies = getattr(request, "bodies", None)
    if bodies is not None:
        return msearch(client, index, bodies)
    return search(client, index, request.body, **request.params)


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
