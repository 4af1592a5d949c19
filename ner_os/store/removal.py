"""Removing an index with everything ner-os made for it (``ner-os index delete``).

Named after the index ``<index>``: the index itself, the index template ``<index>``, the component
templates ``<index>-document`` and ``<index>-mentions``, the search pipelines ``<index>-minmax``,
``<index>-rrf`` and ``<index>-neural`` (ML Commons), the stored search template ``<index>-type-query``
and the index's registered-type records in ``ner_os_types``. A model deployed in ML Commons is kept:
one model may serve several indexes (see ``ner-os model deploy``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ner_os.errors import NerOsError
from ner_os.store.connection import call, ignore_missing
from ner_os.store.ml import neural_pipeline
from ner_os.store.schema import remove_templates
from ner_os.store.search import count, search_template_id
from ner_os.store.types_index import delete_type_records

FORBIDDEN_CHARACTERS = set('*?,"<>|/\\ #:')


@dataclass(frozen=True)
class RemovedIndex:
    index: str
    documents: int
    removed: tuple[str, ...]  # "index NAME", "index template NAME", "search pipeline NAME", ...
    type_records: int = 0


def check_index_name(index: str) -> str:
    """``index`` when it names one index (no wildcard, list or system name), else NerOsError."""
    if not index or index.startswith(("_", "-", ".")) or FORBIDDEN_CHARACTERS & set(index):
        raise NerOsError(f"{index!r} does not name one index (no wildcards, lists or names starting with _ - .)")
    return index


def missing_index(client, index: str) -> NerOsError | None:
    """Why ``index`` cannot be deleted as one index (absent, or an alias), else None."""
    found = client.indices.get(index=index, ignore_unavailable=True, allow_no_indices=True)
    if index in found:
        return None
    if found:
        return NerOsError(f"{index!r} is an alias of {', '.join(sorted(found))}, not an index: delete those by name")
    return NerOsError(f"no index {index!r} on the cluster")


def remove_index(client, index: str) -> RemovedIndex:
    """Delete ``index`` and the objects named after it; what there was to delete."""
    problem = missing_index(client, check_index_name(index))
    if problem is not None:
        raise problem
    documents = count(client, index)
    call(f"deleting index {index}", client.indices.delete, index=index)
    removed = [f"index {index}", *remove_templates(client, index, extra_pipelines=(neural_pipeline(index),))]
    template_id = search_template_id(index)
    if ignore_missing(client.delete_script, id=template_id):
        removed.append(f"stored search template {template_id}")
    return RemovedIndex(index=index, documents=documents, removed=tuple(removed),
                        type_records=delete_type_records(client, index))
