"""Bulk writes: ``streaming_bulk`` bounded by count and bytes, failures reported per item, and the
retry policy of the loader's writes (429, 5xx and lost connections retried with backoff)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from opensearchpy import OpenSearch
from opensearchpy.helpers import streaming_bulk

from ner_os.errors import ClusterError

BULK_MAX_DOCS = 500  # a bulk request holds at most this many documents ...
BULK_MAX_BYTES = 10 * 1024 * 1024  # ... and this many bytes
BULK_ATTEMPTS = 6  # for 5xx and lost connections (streaming_bulk retries 429s itself)
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 30.0


@dataclass(frozen=True)
class BulkFailure:
    doc_id: str | None
    index: str | None
    status: int | str | None  # HTTP status of the item, or "N/A" when the whole request failed
    reason: str


@dataclass
class BulkResult:
    indexed: int = 0  # items acknowledged
    updated: int = 0  # of which the document changed ("updated"; a no-op update is not counted)
    failures: list[BulkFailure] = field(default_factory=list)


def bulk_index(
    client: OpenSearch,
    actions: Iterable[Mapping[str, Any]],
    *,
    chunk_size: int = 200,
    max_chunk_bytes: int = 10 * 1024 * 1024,
    max_retries: int = 5,
    initial_backoff_s: float = 2.0,
    max_backoff_s: float = 60.0,
    refresh: bool | str = False,
) -> BulkResult:
    """Write ``actions`` (bulk action dicts: ``_index``, ``_id``, ``_source`` / ``_op_type``) with
    ``streaming_bulk``, which retries items rejected with 429; every other failure is returned, one
    ``BulkFailure`` per item, never raised. Requests are bounded both in count and in bytes."""
    result = BulkResult()
    for ok, item in streaming_bulk(
        client,
        actions,
        chunk_size=chunk_size,
        max_chunk_bytes=max_chunk_bytes,
        max_retries=max_retries,
        initial_backoff=initial_backoff_s,
        max_backoff=max_backoff_s,
        raise_on_error=False,
        raise_on_exception=False,
        yield_ok=True,
        refresh=refresh,
    ):
        if ok:
            result.indexed += 1
            result.updated += next(iter(item.values()), {}).get("result") == "updated"
        else:
            result.failures.append(_bulk_failure(item))
    return result


def _bulk_failure(item: Mapping[str, Any]) -> BulkFailure:
    (details,) = item.values()  # {"index": {...}} / {"create": {...}}
    error = details.get("error")
    if isinstance(error, Mapping):
        reason = f"{error.get('type', 'error')}: {error.get('reason', '')}"
        caused_by = error.get("caused_by")
        if isinstance(caused_by, Mapping) and caused_by.get("reason"):
            reason += f" (caused by {caused_by.get('type')}: {caused_by['reason']})"
    else:
        reason = str(error)
    return BulkFailure(doc_id=details.get("_id"), index=details.get("_index"), status=details.get("status"),
                       reason=reason)


def write_documents(client: OpenSearch, index: str, actions: Iterable[dict]) -> dict[str, str]:
    """Index the actions; ``{_id: reason}`` for the documents OpenSearch refused for good. 429s are
    retried by ``streaming_bulk``; 5xx and lost connections here, with exponential backoff; when
    they persist, or when the index refuses every write (a block), a ``ClusterError`` stops the caller."""
    pending = list(actions)
    refused: dict[str, str] = {}
    for attempt in range(BULK_ATTEMPTS):
        if attempt:
            time.sleep(min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (attempt - 1)))
        by_id = {action["_id"]: action for action in pending}
        retry: list[dict] = []
        result = bulk_index(client, pending, chunk_size=BULK_MAX_DOCS, max_chunk_bytes=BULK_MAX_BYTES)
        for failure in result.failures:
            if failure.doc_id not in by_id:  # never take a write for done without knowing which it was
                raise ClusterError(f"a bulk write to {index!r} failed for an unknown document: "
                                   f"{failure.status} {failure.reason}")
            if is_index_block(failure.reason):  # the index, not the document: stop before rejecting them all
                raise ClusterError(f"index {index!r} refuses writes ({failure.status} {failure.reason}); "
                                   "free disk space or lift the block (index.blocks.*), then run the load "
                                   "again to resume")
            if is_access_refusal(failure):  # the user, not the document: rejecting them all would skip them
                raise ClusterError(f"OpenSearch refused writes to {index!r} ({failure.status} {failure.reason}); "
                                   "the user's role must grant them (see docs/secured-cluster.md), then run "
                                   "the load again to resume")
            if is_retryable(failure.status):
                retry.append(by_id[failure.doc_id])
            else:
                refused[str(failure.doc_id)] = failure.reason
        if not retry:
            return refused
        last = result.failures[-1]
        pending = retry
    raise ClusterError(f"OpenSearch kept failing {len(pending)} writes to {index!r} after {BULK_ATTEMPTS} "
                       f"attempts (last: {last.status} {last.reason}); run the load again to resume")


def is_index_block(reason: str) -> bool:
    """A write refused because of an index or cluster block (read-only, the disk flood-stage watermark)."""
    return "cluster_block_exception" in reason


def is_access_refusal(failure: BulkFailure) -> bool:
    """A write refused for want of authentication or permission (the security plugin's 401 / 403)."""
    return failure.status == 401 or (failure.status == 403 and "security_exception" in failure.reason)


def is_retryable(status) -> bool:
    """429, 5xx, or no HTTP status at all (the connection failed)."""
    return not isinstance(status, int) or status == 429 or status >= 500


def refresh(client: OpenSearch, index: str) -> None:
    """Make what was written to ``index`` searchable."""
    client.indices.refresh(index=index)
