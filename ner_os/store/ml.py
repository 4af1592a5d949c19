"""ML Commons: register, deploy and call the type-vector model; record it on the index; the neural search pipeline.

The REST sequence of ML Commons 2.19 for a local ONNX text-embedding model (docs/cluster-embedding.md):
``_register_meta`` (content hash and size of the zip, chunk count, model config), ``upload_chunk/<n>``
(raw bytes, at most 10 MB each, ``Content-Type: application/json``), ``_deploy`` and task polling,
``_predict/text_embedding``. A deployment is recorded in the document index's mapping ``_meta``
under ``ner_os_model``, and the index's default search pipeline ``<index>-neural`` holds a
``neural_query_enricher`` naming the model, so a ``neural`` query needs no ``model_id``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from opensearchpy import OpenSearch
from opensearchpy import exceptions as os_errors

from ner_os.errors import ClusterError
from ner_os.store.connection import call, cluster_plugins, reason

ML = "/_plugins/_ml"
CHUNK_BYTES = 10_000_000  # upload_chunk refuses bigger chunks
MODEL_META = "ner_os_model"  # key in the document index mapping's _meta
PIPELINE_SUFFIX = "neural"
DEPLOYED = "DEPLOYED"
DEPLOY_TIMEOUT_S = 900.0
ENRICHER = "neural_query_enricher"


def has_ml_commons(client: OpenSearch) -> bool:
    """True when a node runs ML Commons (``opensearch-ml``, or its class name on the local launcher)."""
    return any(name == "opensearch-ml" or ".ml.plugin." in name for name in cluster_plugins(client))


def require_ml_commons(client: OpenSearch) -> None:
    if not has_ml_commons(client):
        raise ClusterError("the cluster has no ML Commons plugin (opensearch-ml): it cannot embed descriptions "
                           "(start a local node with `ner-os opensearch start --ml-commons`)")


def _request(what: str, client: OpenSearch, method: str, path: str, body: Any = None, timeout: float = 120.0) -> dict:
    return call(what, client.transport.perform_request, method, path, body=body, params={"request_timeout": timeout})


# --- models ----------------------------------------------------------------------------------


def find_model(client: OpenSearch, content_hash: str) -> dict | None:
    """The registered model whose zip has this sha256 (deployed ones first): ``{"model_id", "model_state", ...}``."""
    body = {"size": 20, "query": {"bool": {"filter": [{"term": {"model_content_hash_value": content_hash}}],
                                           "must_not": [{"exists": {"field": "chunk_number"}}]}}}
    try:
        found = client.transport.perform_request("POST", f"{ML}/models/_search", body=body)
    except os_errors.NotFoundError:  # no model was ever registered: the index does not exist yet
        return None
    except os_errors.TransportError as error:
        if "index_not_found" in reason(error):
            return None
        raise ClusterError(f"searching ML Commons models failed: {reason(error)}") from None
    models = [dict(hit["_source"], model_id=hit["_id"]) for hit in found.get("hits", {}).get("hits", [])]
    models.sort(key=lambda model: model.get("model_state") != DEPLOYED)
    return models[0] if models else None


def get_model(client: OpenSearch, model_id: str) -> dict | None:
    """The model's record (``model_state``, ``name``, ...); None when there is no such model."""
    try:
        return client.transport.perform_request("GET", f"{ML}/models/{model_id}")
    except os_errors.NotFoundError:
        return None
    except os_errors.TransportError as error:
        raise ClusterError(f"reading ML Commons model {model_id} failed: {reason(error)}") from None


def chunks(path: str | Path, size: int = CHUNK_BYTES) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(size), b""):
            yield block


def register_model(client: OpenSearch, zip_path: str | Path, *, name: str, description: str, content_hash: str,
                   model_config: Mapping[str, Any], version: str = "1") -> str:
    """Register the zip (metadata, then its chunks) as a local ONNX text-embedding model; returns its id."""
    size = Path(zip_path).stat().st_size
    meta = {"name": name, "version": version, "description": description, "model_format": "ONNX",
            "function_name": "TEXT_EMBEDDING", "model_content_hash_value": content_hash,
            "model_content_size_in_bytes": size, "total_chunks": -(-size // CHUNK_BYTES),
            "model_config": dict(model_config)}
    model_id = _request("registering model metadata", client, "POST", f"{ML}/models/_register_meta", meta)["model_id"]
    for number, part in enumerate(chunks(zip_path)):
        _request(f"uploading chunk {number} of model {model_id}", client, "POST",
                 f"{ML}/models/{model_id}/upload_chunk/{number}", part)
    return model_id


def deploy_model(client: OpenSearch, model_id: str, timeout_s: float = DEPLOY_TIMEOUT_S) -> None:
    """Deploy the model and wait for the task; a ClusterError with each node's reason when it fails."""
    task = _request(f"deploying model {model_id}", client, "POST", f"{ML}/models/{model_id}/_deploy")
    deadline = time.monotonic() + timeout_s
    while True:
        state = _request("reading the deploy task", client, "GET", f"{ML}/tasks/{task['task_id']}")
        if state.get("state") == "COMPLETED":
            return
        if state.get("state") in ("FAILED", "COMPLETED_WITH_ERROR"):
            raise ClusterError(f"ML Commons could not deploy model {model_id}: {state.get('error')}")
        if time.monotonic() > deadline:
            raise ClusterError(f"deploying model {model_id} did not finish within {timeout_s:.0f} s "
                               f"(task {task['task_id']} is {state.get('state')})")
        time.sleep(0.5)


def predict(client: OpenSearch, model_id: str, texts: Sequence[str]) -> list[list[float]]:
    """The model's vector for each text (one ``_predict`` call; ML Commons runs them one by one)."""
    body = {"text_docs": list(texts), "return_number": True, "target_response": ["sentence_embedding"]}
    out = _request(f"embedding with model {model_id}", client, "POST", f"{ML}/_predict/text_embedding/{model_id}", body)
    return [result["output"][0]["data"] for result in out["inference_results"]]


# --- the index's record and search pipelines --------------------------------------------------


def index_model(client: OpenSearch, index: str) -> dict | None:
    """The deployment recorded on ``index`` (``{"model_id", "content_hash", "name", ...}``); None when none."""
    try:
        response = client.indices.get_mapping(index=index)
    except os_errors.NotFoundError:
        return None
    for mapping in response.values():
        recorded = mapping.get("mappings", {}).get("_meta", {}).get(MODEL_META)
        if recorded is not None:
            return dict(recorded)
    return None


def deployed_index_model(client: OpenSearch, index: str) -> str | None:
    """The id of the model recorded on ``index`` when ML Commons has it deployed; None otherwise
    (no record, no ML Commons, the model gone or undeployed)."""
    recorded = index_model(client, index)
    if not recorded or not recorded.get("model_id"):
        return None
    try:
        model = client.transport.perform_request("GET", f"{ML}/models/{recorded['model_id']}")
    except os_errors.TransportError:  # 404: no such model; 400: no ML Commons on this cluster
        return None
    return recorded["model_id"] if model.get("model_state") == DEPLOYED else None


def record_index_model(client: OpenSearch, index: str, record: Mapping[str, Any]) -> None:
    """Put ``record`` under ``_meta.ner_os_model`` of the index mapping, keeping the rest of ``_meta``."""
    response = call(f"reading the mapping of {index}", client.indices.get_mapping, index=index)
    meta = dict(next(iter(response.values())).get("mappings", {}).get("_meta", {}))
    meta[MODEL_META] = dict(record)
    call(f"recording the model on {index}", client.indices.put_mapping, index=index, body={"_meta": meta})


def neural_pipeline(index: str) -> str:
    return f"{index}-{PIPELINE_SUFFIX}"


def set_default_model(client: OpenSearch, index: str, model_id: str, hybrid_pipelines: Sequence[str] = ()) -> str:
    """``<index>-neural`` (a neural_query_enricher naming ``model_id``) as the index's default search
    pipeline; the enricher is added to each existing hybrid pipeline too. Returns the pipeline's name."""
    name = neural_pipeline(index)
    enricher = {ENRICHER: {"default_model_id": model_id,
                           "description": "ner-os: neural queries on mentions.vector need no model_id"}}
    _request(f"installing search pipeline {name}", client, "PUT", f"/_search/pipeline/{name}",
             {"request_processors": [enricher]})
    for other in hybrid_pipelines:
        try:
            body = client.transport.perform_request("GET", f"/_search/pipeline/{other}").get(other)
        except os_errors.NotFoundError:
            continue
        processors = [p for p in body.get("request_processors", []) if ENRICHER not in p]
        body["request_processors"] = [enricher, *processors]
        _request(f"adding the model to search pipeline {other}", client, "PUT", f"/_search/pipeline/{other}", body)
    call(f"setting the default search pipeline of {index}", client.indices.put_settings, index=index,
         body={"index.search.default_pipeline": name})
    return name
