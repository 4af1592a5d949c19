"""OpenSearch Dashboards saved objects for a ner-os index, rendered for its name.

The rules Dashboards applies when it reads them (tests/unit/test_query_dashboards.py checks each):
an index pattern's ``fields`` and ``sourceFilters`` are JSON *strings* (``JSON.parse``d; an array
there breaks the pattern with "Unexpected end of JSON input"); ``sourceFilters`` hides
``mentions.vector`` (Discover sends them as ``_source.excludes``: without it a 4-mention document
shows 64 KB of vectors); a saved search's ``searchSourceJSON`` is a JSON string whose
``indexRefName`` (and each filter's ``meta.indexRefName``) names one of its ``references``.

The neural saved search carries a custom filter (what "Edit as Query DSL" makes): the nested
``neural`` query on ``mentions.vector`` with the type in plain words. It needs the model deployed
(``ner-os model deploy``): the index's default search pipeline names the model.
"""

from __future__ import annotations

import json
from typing import Any

from ner_os.fields import MENTIONS_PATH, VECTOR_BYTES_FIELD, VECTOR_FIELD
from ner_os.query.bodies import nested_knn_query
from ner_os.query.model import KNN_CANDIDATES, NeuralText

INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"
COLUMNS = ["text", "mentions.surface", "mentions.types"]
PATTERN_VERSION = {"index-pattern": "7.6.0"}
SEARCH_VERSION = {"search": "7.9.3"}


def neural_filter_query(description: str, k: int = KNN_CANDIDATES) -> dict:
    """The query a Discover user pastes into "Edit as Query DSL": documents whose best mention is among
    the ``k`` nearest to the description (no inner_hits: a filter returns documents only)."""
    nested = nested_knn_query(NeuralText(description), k=k)["nested"]
    return {"nested": {key: value for key, value in nested.items() if key != "inner_hits"}}


def index_pattern(index: str) -> dict:
    return {"id": index, "type": "index-pattern",
            "attributes": {"title": index, "fields": "[]",
                           "sourceFilters": json.dumps([{"value": VECTOR_FIELD}, {"value": VECTOR_BYTES_FIELD}])},
            "references": [], "migrationVersion": PATTERN_VERSION}


def saved_search(index: str, suffix: str, title: str, description: str, query: str = "",
                 filters: list[dict] | None = None) -> dict:
    """A saved search on the index pattern ``index`` (DQL ``query``; ``filters`` each with a ``meta``)."""
    references = [{"name": INDEX_REF, "type": "index-pattern", "id": index}]
    source_filters = []
    for number, item in enumerate(filters or []):
        name = f"kibanaSavedObjectMeta.searchSourceJSON.filter[{number}].meta.index"
        references.append({"name": name, "type": "index-pattern", "id": index})
        source_filters.append({**item, "meta": {**item["meta"], "indexRefName": name}})
    source = {"query": {"query": query, "language": "kuery"}, "filter": source_filters, "highlightAll": True,
              "indexRefName": INDEX_REF}
    return {"id": f"{index}-{suffix}", "type": "search",
            "attributes": {"title": f"{index}: {title}", "description": description, "columns": list(COLUMNS),
                           "sort": [], "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(source)}},
            "references": references, "migrationVersion": SEARCH_VERSION}


def neural_filter(description: str) -> dict:
    """A Discover custom filter (as "Edit as Query DSL" saves it) holding :func:`neural_filter_query`."""
    query = neural_filter_query(description)
    return {"meta": {"type": "custom", "alias": f"type: {description}", "disabled": False, "negate": False,
                     "key": "query", "value": json.dumps(query)},
            "query": query, "$state": {"store": "appState"}}


def saved_objects(index: str, type_description: str = "dinosaur") -> list[dict[str, Any]]:
    """The index pattern and the saved searches for ``index``."""
    return [
        index_pattern(index),
        saved_search(index, "documents", "documents", f"Every document of the {index} index with its text and mentions"),
        saved_search(index, "registered-types", "mentions of registered types",
                     "Documents with at least one mention tagged by `ner-os types add`. Narrow to one type with "
                     f"the DQL {MENTIONS_PATH}:{{ types:\"dinosaur\" }} ({MENTIONS_PATH} is a nested field: DQL "
                     "needs the nested group syntax).", query=f"{MENTIONS_PATH}:{{ types:* }}"),
        saved_search(index, "type-search", f"mentions of a {type_description}",
                     "Documents mentioning an entity of a type in plain words: the filter is a neural query that "
                     "ML Commons embeds (ner-os model deploy). Edit the filter (Edit as Query DSL) and change "
                     "query_text to look for another type.", filters=[neural_filter(type_description)]),
    ]


def saved_objects_ndjson(index: str, type_description: str = "dinosaur") -> str:
    """:func:`saved_objects` as ndjson, one object a line, for Saved objects -> Import."""
    return "".join(json.dumps(item) + "\n" for item in saved_objects(index, type_description))
