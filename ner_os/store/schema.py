"""The document index's schema: templates, search pipelines, creating the index and checking what it holds.

Templates live as JSON in ``index_templates/`` with ``{{placeholders}}``; the vector dimension is
always the caller's (the head's output size), never a constant in a file. All objects are named
after the index (``settings.index``): component templates ``<index>-document`` and
``<index>-mentions``, the index template ``<index>`` for ``<index>`` and ``<index>-*``, and, when the
neural-search plugin is present, the search pipelines ``<index>-minmax`` and ``<index>-rrf`` for the
server-side ``hybrid`` query; rewritten, they keep the ``neural_query_enricher`` of a model that
``ner-os model deploy`` recorded on the index (:mod:`ner_os.store.ml`).
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from opensearchpy import OpenSearch
from opensearchpy import exceptions as os_errors

from ner_os.config import Settings
from ner_os.errors import ClusterError, ConfigError
from ner_os.fields import MENTIONS_PATH, VECTOR_BYTES_FIELD
from ner_os.resources import templates_dir
from ner_os.store import ml
from ner_os.store.connection import call, has_neural_search, ignore_missing, reason, require_knn

COMPONENT_SUFFIXES = ("document", "mentions")
PIPELINE_KINDS = ("minmax", "rrf")
VECTORS_META = "ner_os_vectors"  # key in the document index mapping's _meta
DEFAULT_PARAMS: dict[str, Any] = {
    "hnsw_m": 16,
    "hnsw_ef_construction": 128,
    "nested_objects_limit": 50_000,  # OpenSearch's default 10,000 mentions per document is low for long texts
    "shards": 1,
    "rrf_rank_constant": 60,
}
MAX_SHARDS = 1024  # OpenSearch's own limit per index
# Past about this many mentions on one shard, its HNSW graph loses k-NN recall at the default k (recall@10
# 0.906 at a million on one shard, 0.977 on two of 500k: docs/benchmarks.md, "Two shards at 1M").
MENTIONS_PER_SHARD = 500_000
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


@dataclass(frozen=True)
class TemplateNames:
    index_template: str
    component_templates: tuple[str, ...]
    search_pipelines: dict[str, str] = field(default_factory=dict)  # kind -> name; empty without neural-search


def pipeline_name(index: str, kind: str) -> str:
    """The search pipeline for ``hybrid`` queries on ``index``: kind ``minmax`` or ``rrf``."""
    if kind not in PIPELINE_KINDS:
        raise ConfigError(f"unknown search pipeline kind {kind!r}; known: {', '.join(PIPELINE_KINDS)}")
    return f"{index}-{kind}"


def render_template(filename: str, **values: Any) -> dict:
    """``index_templates/<filename>`` (see :mod:`ner_os.resources`) with each ``{{name}}`` replaced by ``values[name]``.

    A string that is exactly one placeholder takes the value's own JSON type (the dimension stays an
    integer); a placeholder inside a longer string is replaced by its text.
    """
    path = templates_dir() / filename
    if not path.is_file():
        raise ConfigError(f"index template file {path} is missing: reinstall ner-os")
    return _substitute(json.loads(path.read_text()), values, path)


def _substitute(node: Any, values: Mapping[str, Any], path: Path) -> Any:
    if isinstance(node, dict):
        return {key: _substitute(value, values, path) for key, value in node.items()}
    if isinstance(node, list):
        return [_substitute(item, values, path) for item in node]
    if not isinstance(node, str):
        return node
    for name in PLACEHOLDER.findall(node):
        if name not in values:
            raise ConfigError(f"{path}: no value for placeholder {{{{{name}}}}}")
    whole = PLACEHOLDER.fullmatch(node)
    if whole:
        return values[whole.group(1)]
    return PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), node)


def template_values(index: str, dim: int, **params: Any) -> dict[str, Any]:
    if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
        raise ConfigError(f"vector dimension must be a positive integer, got {dim!r}")
    unknown = set(params) - set(DEFAULT_PARAMS)
    if unknown:
        raise ConfigError(f"unknown template parameter(s): {', '.join(sorted(unknown))}")
    # composable templates with overlapping patterns need distinct priorities: the longer (more
    # specific) index name wins, so "ner-os" and "ner-os-books" can live in one cluster
    return {**DEFAULT_PARAMS, **params, "index": index, "dimension": dim, "priority": 100 + len(index)}


def index_body(index: str, dim: int, **params: Any) -> dict:
    """Settings and mappings of a document index, the same as the templates give it."""
    values = template_values(index, dim, **params)
    body: dict = {"settings": {}, "mappings": {}}
    for suffix in COMPONENT_SUFFIXES:
        _merge(body, render_template(f"component_template.{suffix}.json", **values)["template"])
    _merge(body, render_template("index_template.json", **values)["template"])
    return body


def _merge(target: dict, extra: Mapping) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def settings_params(settings: Settings) -> dict[str, Any]:
    """The template parameters ``settings`` set (``index_shards``, where given), checked."""
    shards = settings.index_shards
    if shards is None:
        return {}
    if not isinstance(shards, int) or isinstance(shards, bool) or not 1 <= shards <= MAX_SHARDS:
        raise ConfigError(f"index_shards (--index-shards, NER_OS_INDEX_SHARDS) must be an integer from 1 to "
                          f"{MAX_SHARDS}, got {shards!r}")
    return {"shards": shards}


def shards_advice(index: str, mentions: int, shards: int) -> str | None:
    """A line for a load that put more than :data:`MENTIONS_PER_SHARD` mentions a shard into ``index``."""
    if mentions <= MENTIONS_PER_SHARD * shards:
        return None
    wanted = -(-mentions // MENTIONS_PER_SHARD)
    return (f"{mentions:,} mentions on {shards} primary shard(s) of {index!r}: k-NN recall falls past about "
            f"{MENTIONS_PER_SHARD:,} mentions a shard; rebuild with --index-shards {wanted} --replace-index "
            "(docs/cluster.md, Shards)")


def check_shards(index: str, flat_settings: Mapping[str, Any], settings: Settings) -> None:
    """Refuse ``settings.index_shards`` when given and the existing ``index`` (its :func:`index_settings`) has
    another number of shards (a shard count is fixed when an index is made)."""
    wanted = settings_params(settings).get("shards")
    found = flat_settings.get("index.number_of_shards")
    if wanted is not None and found is not None and int(found) != wanted:
        raise ConfigError(f"index {index!r} has {found} primary shard(s), not {wanted} (--index-shards): a shard "
                          f"count is fixed when the index is made; rebuild it with --replace-index")


def install_templates(client: OpenSearch, settings: Settings, dim: int, **params: Any) -> TemplateNames:
    """Install (or overwrite: idempotent) the templates for ``settings.index``, and the hybrid search
    pipelines when the cluster has neural-search. Refuses when the index exists with another dimension.
    ``params`` override the settings' own (:func:`settings_params`)."""
    index = settings.index
    require_knn(client)
    if client.indices.exists(index=index):
        check_dimension(client, index, dim)
    values = template_values(index, dim, **{**settings_params(settings), **params})
    components = tuple(f"{index}-{suffix}" for suffix in COMPONENT_SUFFIXES)
    for suffix, name in zip(COMPONENT_SUFFIXES, components):
        body = render_template(f"component_template.{suffix}.json", **values)
        call(f"installing component template {name}", client.cluster.put_component_template, name=name, body=body)
    body = render_template("index_template.json", **values)
    call(f"installing index template {index}", client.indices.put_index_template, name=index, body=body)
    pipelines = {}
    if has_neural_search(client):
        for kind in PIPELINE_KINDS:
            name = pipeline_name(index, kind)
            body = render_template(f"search_pipeline.{kind}.json", **values)
            call(f"installing search pipeline {name}", client.transport.perform_request,
                 "PUT", f"/_search/pipeline/{name}", body=body)
            pipelines[kind] = name
        _keep_default_model(client, index, tuple(pipelines.values()))
    return TemplateNames(index_template=index, component_templates=components, search_pipelines=pipelines)


def _keep_default_model(client: OpenSearch, index: str, hybrid_pipelines: tuple[str, ...]) -> None:
    """The hybrid pipelines just rewritten get back the ``neural_query_enricher`` of the model that
    ``ner-os model deploy`` recorded on the index (``_meta.ner_os_model``), as deploying set them."""
    recorded = ml.index_model(client, index)
    if recorded and recorded.get("model_id"):
        ml.set_default_model(client, index, recorded["model_id"], hybrid_pipelines)


def remove_templates(client: OpenSearch, index: str, extra_pipelines: tuple[str, ...] = ()) -> list[str]:
    """Delete the index template, component templates and search pipelines named after ``index`` (and
    the ``extra_pipelines``); what there was to delete, as "index template NAME" and so on."""
    removed = []
    if ignore_missing(client.indices.delete_index_template, name=index):
        removed.append(f"index template {index}")
    for name in (f"{index}-{suffix}" for suffix in COMPONENT_SUFFIXES):
        if ignore_missing(client.cluster.delete_component_template, name=name):
            removed.append(f"component template {name}")
    for name in (*(pipeline_name(index, kind) for kind in PIPELINE_KINDS), *extra_pipelines):
        if ignore_missing(client.transport.perform_request, "DELETE", f"/_search/pipeline/{name}"):
            removed.append(f"search pipeline {name}")
    return removed


def create_index(client: OpenSearch, name: str, dim: int, vectors: Mapping[str, Any] | None = None,
                 **params: Any) -> bool:
    """Create the document index ``name`` for ``dim``-d mention vectors; False when it already exists
    (with that dimension: another one raises ``ConfigError``). ``vectors``: what makes them (see
    ``MentionEmbedder.identity``), kept in the mapping's ``_meta`` so that loads and queries made
    with another encoder or head are refused."""
    require_knn(client)
    if client.indices.exists(index=name):
        check_dimension(client, name, dim)
        return False
    body = index_body(name, dim, **params)
    if vectors is not None:
        body["mappings"].setdefault("_meta", {})[VECTORS_META] = dict(vectors)
    try:
        client.indices.create(index=name, body=body)
    except os_errors.RequestError as error:
        if error.error == "resource_already_exists_exception":  # created concurrently
            check_dimension(client, name, dim)
            return False
        raise ClusterError(f"creating index {name} failed: {reason(error)}") from None
    return True


def add_vector_bytes(client: OpenSearch, name: str) -> None:
    """Map ``mentions.vector_bytes`` as ``binary`` on an index made before it existed (idempotent):
    unmapped, the first document holding it would map the base64 text as a searchable string."""
    for mappings in _mappings(client, name):
        if "vector_bytes" not in mappings.get("properties", {}).get(MENTIONS_PATH, {}).get("properties", {}):
            call(f"adding {VECTOR_BYTES_FIELD} to index {name}", client.indices.put_mapping, index=name,
                 body={"properties": {MENTIONS_PATH: {"type": "nested", "properties": {"vector_bytes": {"type": "binary"}}}}})
            return


def _mappings(client: OpenSearch, name: str) -> list[dict]:
    """The ``mappings`` of each index ``name`` resolves to; [] when there is none."""
    try:
        response = client.indices.get_mapping(index=name)
    except os_errors.NotFoundError:
        return []
    return [index_mapping.get("mappings", {}) for index_mapping in response.values()]


def _vector_dimension(mappings: Mapping[str, Any]) -> int | None:
    vector = mappings.get("properties", {}).get("mentions", {}).get("properties", {}).get("vector", {})
    return int(vector["dimension"]) if "dimension" in vector else None


def _first_dimension(mappings: Iterable[Mapping[str, Any]]) -> int | None:
    return next((dim for dim in map(_vector_dimension, mappings) if dim is not None), None)


def index_vector_dimension(client: OpenSearch, name: str) -> int | None:
    """The dimension of ``mentions.vector`` in index ``name``; None when the index or field is absent."""
    return _first_dimension(_mappings(client, name))


def search_facts(client: OpenSearch, name: str) -> tuple[int | None, int]:
    """What a query needs to know of ``name`` (an index, alias or pattern), in one request: the dimension of
    its mention vectors (None when no index or no such field) and the primary shards a search of it covers
    (1 when none resolves)."""
    try:
        found = client.indices.get(index=name, flat_settings=True)
    except os_errors.NotFoundError:
        return None, 1
    shards = sum(int(each.get("settings", {}).get("index.number_of_shards", 1)) for each in found.values())
    return _first_dimension(each.get("mappings", {}) for each in found.values()), max(1, shards)


METADATA_FIELD = "metadata"  # where a loaded line's own fields are stored


def index_fields(client: OpenSearch, name: str) -> set[str]:
    """Every field path the mapping of index ``name`` holds (``text``, ``metadata.lang``, its multi-fields
    such as ``metadata.lang.raw``); empty when the index is absent."""
    paths: set[str] = set()

    def walk(properties: Mapping[str, Any], prefix: str) -> None:
        for field_name, spec in properties.items():
            path = prefix + field_name
            if "properties" in spec:
                walk(spec["properties"], path + ".")
                continue
            paths.add(path)
            paths.update(f"{path}.{sub}" for sub in spec.get("fields", {}))

    for mappings in _mappings(client, name):
        walk(mappings.get("properties", {}), "")
    return paths


def check_filter_fields(client: OpenSearch, name: str, filters: Mapping[str, Any] | None) -> None:
    """Refuse a filter on a field index ``name`` does not have: it would match nothing, and the empty
    result would seem to say that no document mentions the type. Names the field and the ones there are."""
    known = index_fields(client, name) if filters else set()
    for field_name in sorted(set(filters or {}) - known) if known else ():
        metadata = sorted(path for path in known if path.startswith(METADATA_FIELD + "."))
        if f"{METADATA_FIELD}.{field_name}" in known:
            hint = f"a line's own fields are stored under {METADATA_FIELD}.*: filter on {METADATA_FIELD}.{field_name}"
        elif metadata:
            hint = f"the lines' own fields are under {METADATA_FIELD}.*: {', '.join(metadata[:12])}"
            hint += ", …" if len(metadata) > 12 else ""
        else:
            hint = f"its documents have no field of their own (those are stored under {METADATA_FIELD}.*)"
        raise ConfigError(f"filter on {field_name!r}: index {name!r} has no field {field_name!r}; {hint}")


def index_vectors(client: OpenSearch, name: str) -> dict | None:
    """What made the index's mention vectors (``create_index``'s ``vectors``); None when not recorded."""
    for mappings in _mappings(client, name):
        recorded = mappings.get("_meta", {}).get(VECTORS_META)
        if recorded is not None:
            return dict(recorded)
    return None


def check_vectors(client: OpenSearch, name: str, vectors: Mapping[str, Any] | None) -> None:
    """Raise ``ConfigError`` when index ``name`` records vectors made by another encoder or head."""
    recorded = index_vectors(client, name) if vectors is not None else None
    if recorded is None or recorded == dict(vectors):
        return
    differing = sorted(key for key in set(recorded) | set(vectors) if recorded.get(key) != vectors.get(key))
    said = "; ".join(f"{key} {recorded.get(key)!r} in the index, {vectors.get(key)!r} now" for key in differing)
    raise ConfigError(f"index {name!r} was filled by another model ({said}): its vectors and these do not "
                      "compare; use the head and model it was loaded with, another --index, or reload into a "
                      "new one (ner-os load --replace-index)")


def check_dimension(client: OpenSearch, name: str, dim: int) -> None:
    """Raise ``ConfigError`` when index ``name`` holds mention vectors of another dimension than ``dim``."""
    stored = index_vector_dimension(client, name)
    if stored is not None and stored != dim:
        raise ConfigError(f"index {name!r} stores {stored}-d mention vectors but the head gives {dim}-d vectors; "
                          "use the head it was loaded with, another --index, or reload into a new one "
                          "(ner-os load --replace-index)")


# --- the index itself -------------------------------------------------------------------------


def index_exists(client: OpenSearch, name: str) -> bool:
    return bool(client.indices.exists(index=name))


def delete_index(client: OpenSearch, name: str) -> None:
    """Delete index ``name``; nothing when there is none."""
    client.indices.delete(index=name, ignore_unavailable=True)


def create_plain_index(client: OpenSearch, name: str, body: Mapping[str, Any]) -> None:
    """Create index ``name`` from an explicit body (settings and mappings), not from the templates."""
    call(f"creating index {name}", client.indices.create, index=name, body=dict(body))


def index_settings(client: OpenSearch, name: str) -> dict[str, Any]:
    """The flat settings of index ``name``, defaults included (``index.uuid``, ``index.mapping...``)."""
    flat = client.indices.get_settings(index=name, include_defaults=True, flat_settings=True)
    values = next(iter(flat.values()))
    return {**values.get("defaults", {}), **values.get("settings", {})}
