"""Bulk writes without a cluster: failures reported per item, and what the loader retries."""

import pytest

from ner_os.store import bulk

pytestmark = pytest.mark.unit


def test_bulk_failures_carry_id_status_and_the_nested_reason():
    item = {"index": {"_index": "docs", "_id": "7", "status": 400, "error": {
        "type": "mapper_parsing_exception", "reason": "failed to parse",
        "caused_by": {"type": "illegal_argument_exception", "reason": "Vector dimension mismatch"}}}}
    failure = bulk._bulk_failure(item)
    assert (failure.doc_id, failure.index, failure.status) == ("7", "docs", 400)
    assert failure.reason == ("mapper_parsing_exception: failed to parse "
                              "(caused by illegal_argument_exception: Vector dimension mismatch)")


def test_bulk_failures_of_a_failed_request_keep_the_error_text():
    failure = bulk._bulk_failure({"create": {"_id": "1", "status": "N/A", "error": "ConnectionError(refused)"}})
    assert (failure.doc_id, failure.status, failure.reason) == ("1", "N/A", "ConnectionError(refused)")


def test_retryable_bulk_statuses():
    assert all(bulk.is_retryable(status) for status in (429, 500, 503, "N/A", None))
    assert not any(bulk.is_retryable(status) for status in (400, 404, 409))


def test_an_index_block_is_told_from_a_document_failure():
    assert bulk.is_index_block("cluster_block_exception: index [docs] blocked by: [FORBIDDEN/8/index write (api)]")
    assert not bulk.is_index_block("mapper_parsing_exception: failed to parse")
