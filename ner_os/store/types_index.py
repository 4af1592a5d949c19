"""The registered types on the cluster: their records in the ``ner_os_types`` index, and the scripted
bulk updates that tag (and untag) the mentions of a document index with a type's name.

The model (what a type is, how a mention's score is computed, the query that finds the mentions a
type fits) is :mod:`ner_os.registered_types`; this module only reads, writes and updates.
Tags are written with scripted bulk updates whose script source is a constant: the type name and
the mention positions travel as script parameters, never inside a script or a query string. A
script that changes a document also gives its mentions back the ``vector`` their stored source leaves
out (:data:`ner_os.fields.RESTORE_VECTORS_SCRIPT`): an update re-indexes that source.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
from opensearchpy import exceptions as os_errors

from ner_os.errors import ClusterError, NerOsError
from ner_os.fields import MENTIONS_PATH, RESTORE_VECTORS_SCRIPT, VECTOR_BYTES_FIELD, VECTOR_FIELD, as_list, stored_vector
from ner_os.registered_types import (
    TYPES_FIELD,
    RegisteredType,
    TagReport,
    Tagger,
    check_name,
    knn_scores,
    make_tagger,
    matched_positions,
    matching_mentions_query,
    tagged_mentions_query,
)
from ner_os.store.bulk import bulk_index, refresh
from ner_os.store.search import MissingIndex, scan, search

TYPES_INDEX = "ner_os_types"
BULK_CHUNK = 500

TYPES_INDEX_BODY = {
    "settings": {"index": {"number_of_shards": 1, "auto_expand_replicas": "0-1"}},
    "mappings": {
        "dynamic": "strict",
        "properties": {
            "index": {"type": "keyword"},
            "name": {"type": "keyword"},
            "description": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 512}}},
            "min_score": {"type": "float"},
            # kept for refresh and for the loader, never searched
            "vector": {"type": "float", "index": False, "doc_values": False},
            "dim": {"type": "integer"},
            "encoder": {"type": "object", "enabled": False},
            "updated_at": {"type": "date"},
            "threshold": {"type": "keyword"},
        },
    },
}


def _changing_script(body: str) -> str:
    """``body`` (which sets ``changed``), then the stored vectors restored when the document changes, and a
    no-op otherwise: only a changed document is re-indexed, so only it needs the decoded vectors."""
    return f"{body}\nif (changed) {{\n{RESTORE_VECTORS_SCRIPT}\n}} else {{ ctx.op = 'noop'; }}"


# ctx._source.mentions[p].types gains params.type for each p in params.positions (no-op when present)
ADD_TYPE_SCRIPT = _changing_script("""
def mentions = ctx._source.mentions;
boolean changed = false;
for (def p : params.positions) {
  def mention = mentions[(int) p];
  def types = mention.types;
  if (types == null) { types = new ArrayList(); mention.types = types; }
  else if (!(types instanceof List)) { types = new ArrayList([types]); mention.types = types; }
  if (!types.contains(params.type)) { types.add(params.type); changed = true; }
}
""".strip())

# params.type leaves every mention's types (no-op when absent)
REMOVE_TYPE_SCRIPT = _changing_script("""
boolean changed = false;
for (def mention : ctx._source.mentions) {
  def types = mention.types;
  if (types == null) { continue; }
  if (!(types instanceof List)) { types = new ArrayList([types]); mention.types = types; }
  if (types.removeIf(t -> t == params.type)) { changed = true; }
}
""".strip())


def record_id(index: str, name: str) -> str:
    # index names cannot hold ':', so this is unique per (index, name)
    return f"{index}:{name}"


# --- the records --------------------------------------------------------------------------------


def read_types(client, index: str) -> list[RegisteredType]:
    """The types registered for ``index``, by name; [] when none ever was."""
    try:
        response = search(client, TYPES_INDEX, {"size": 1000, "query": {"term": {"index": index}},
                                                "sort": [{"name": "asc"}]})
    except MissingIndex:
        return []
    return [RegisteredType.from_source(hit["_source"]) for hit in response["hits"]["hits"]]


def get_type(client, index: str, name: str) -> RegisteredType:
    name = check_name(name)
    try:
        return RegisteredType.from_source(client.get(index=TYPES_INDEX, id=record_id(index, name))["_source"])
    except os_errors.NotFoundError:
        known = ", ".join(repr(t.name) for t in read_types(client, index)) or "none"
        raise NerOsError(f"no type {name!r} is registered for index {index!r} (registered: {known})") from None


def tagger_for_index(client, index: str) -> Tagger | None:
    """The loader's tagger for ``index``: None when no type is registered."""
    return make_tagger(read_types(client, index))


def store_type(client, index: str, registered: RegisteredType) -> None:
    if not client.indices.exists(index=TYPES_INDEX):
        try:
            client.indices.create(index=TYPES_INDEX, body=TYPES_INDEX_BODY)
        except os_errors.RequestError as error:  # created by a concurrent caller in the meantime
            if "resource_already_exists" not in str(error):
                raise
    elif registered.threshold:  # a registry made before relative thresholds: its strict mapping gains the field
        client.indices.put_mapping(index=TYPES_INDEX, body={"properties": {"threshold": {"type": "keyword"}}})
    client.index(index=TYPES_INDEX, id=record_id(index, registered.name), body=registered.to_source(index),
                 refresh="wait_for")


def delete_type_record(client, index: str, name: str) -> None:
    client.delete(index=TYPES_INDEX, id=record_id(index, name), refresh="wait_for")


def delete_type_records(client, index: str) -> int:
    """Delete the records of every type registered for ``index``; how many there were."""
    if not client.indices.exists(index=TYPES_INDEX):
        return 0
    response = client.delete_by_query(index=TYPES_INDEX, body={"query": {"term": {"index": index}}},
                                      refresh=True, conflicts="proceed")
    return int(response.get("deleted", 0))


# --- tagging on the cluster ---------------------------------------------------------------------


def _positions_from_source(client, index: str, doc_id: str, registered: RegisteredType) -> list[int]:
    """For a document with more matching mentions than inner_hits returns: score its vectors here."""
    source = client.get(index=index, id=doc_id, _source_includes=[VECTOR_BYTES_FIELD, VECTOR_FIELD])["_source"]
    vectors = np.stack([stored_vector(mention) for mention in source.get(MENTIONS_PATH, [])])
    scores = knn_scores(vectors, registered.vector[None, :])[:, 0]
    return [int(i) for i in np.flatnonzero(scores >= registered.min_score)]


def script_action(index: str, doc_id: str, script: str, params: dict) -> dict:
    return {"_op_type": "update", "_index": index, "_id": doc_id, "retry_on_conflict": 3,
            "script": {"source": script, "lang": "painless", "params": params}}


def _apply(client, actions: Iterable[dict]) -> int:
    """Run scripted updates; the number of documents that changed. Any failure is one ClusterError."""
    result = bulk_index(client, actions, chunk_size=BULK_CHUNK, max_retries=3)
    if result.failures:
        first = result.failures[0]
        raise ClusterError(f"{len(result.failures)} documents could not be updated, first: "
                           f"{first.doc_id}: {first.reason}")
    return result.updated


def tag_type(client, index: str, registered: RegisteredType) -> TagReport:
    """Add the type's name to every mention of ``index`` scoring >= its threshold."""
    counted = {"mentions": 0}

    def actions():
        query = matching_mentions_query(registered.vector, registered.min_score)
        for hit in scan(client, index, query):
            positions, complete = matched_positions(hit)
            if not complete:
                positions = _positions_from_source(client, index, hit["_id"], registered)
            counted["mentions"] += len(positions)
            yield script_action(index, hit["_id"], ADD_TYPE_SCRIPT, {"type": registered.name, "positions": positions})

    documents = _apply(client, actions())
    refresh(client, index)
    return TagReport(registered.name, documents, counted["mentions"])


def untag_type(client, index: str, name: str) -> TagReport:
    """Remove ``name`` from every mention's types."""
    counted = {"mentions": 0}

    def actions():
        for hit in scan(client, index, tagged_mentions_query(name), source=[TYPES_FIELD]):
            counted["mentions"] += sum(name in as_list(mention.get("types"))
                                       for mention in hit["_source"].get(MENTIONS_PATH, []))
            yield script_action(index, hit["_id"], REMOVE_TYPE_SCRIPT, {"type": name})

    documents = _apply(client, actions())
    refresh(client, index)
    return TagReport(name, documents, counted["mentions"])


def register(client, index: str, registered: RegisteredType) -> TagReport:
    """Store the type (replacing one of the same name) and tag the index's mentions with it."""
    store_type(client, index, registered)
    untag_type(client, index, registered.name)  # a re-registered type may have a new vector or threshold
    return tag_type(client, index, registered)


def unregister(client, index: str, name: str) -> TagReport:
    registered = get_type(client, index, name)
    report = untag_type(client, index, registered.name)
    delete_type_record(client, index, registered.name)
    return report
