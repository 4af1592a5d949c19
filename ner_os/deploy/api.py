"""``deploy_type_model``: the type encoder inside ML Commons, recorded on the index, the default of its queries.

Idempotent: the package (:mod:`ner_os.deploy.model`) is built once per export and head; a model
registered with the same zip sha256 is reused (deployed again only when it is not deployed).
Then the index's mapping ``_meta.ner_os_model`` records the model, and its default search
pipeline ``<index>-neural`` names it, so that ``{"neural": {"mentions.vector": {"query_text": ...}}}``
needs no ``model_id`` (ner_os.store.ml).
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass

from ner_os.deploy.model import TypeVectorPackage, ensure_package
from ner_os.errors import ConfigError
from ner_os.mentions.embedder import MentionEmbedder
from ner_os.store import ml, schema
from ner_os.store.connection import client_from_settings


@dataclass(frozen=True)
class DeployedModel:
    """What :func:`deploy_type_model` did: the model id, whether it was reused, where it was recorded."""

    model_id: str
    name: str
    content_hash: str
    dim: int
    reused: bool  # registered before (same zip sha256)
    redeployed: bool  # it was registered but not deployed
    index: str | None  # the index whose _meta records it (None: the index does not exist yet)
    pipeline: str | None  # the index's default search pipeline
    seconds: float


def deploy_type_model(settings, *, client=None, embedder: MentionEmbedder | None = None,
                      force_build: bool = False) -> DeployedModel:
    """Build (or reuse) the type-vector package, register and deploy it in ML Commons (or reuse the model
    with the same content hash), and make it the index's default for ``neural`` queries."""
    started = time.monotonic()
    client = client or client_from_settings(settings)
    ml.require_ml_commons(client)
    package = ensure_package(settings, embedder, force=force_build)
    index = settings.index if schema.index_exists(client, settings.index) else None
    if index is not None:
        _check_index(client, index, package)
    found = ml.find_model(client, package.sha256)
    reused, redeployed = found is not None, False
    if found is None:
        model_id = ml.register_model(client, package.zip_path, name=package.name, content_hash=package.sha256,
                                     description=_description(package), model_config=package.model_config())
        ml.deploy_model(client, model_id)
    else:
        model_id = found["model_id"]
        if found.get("model_state") != ml.DEPLOYED:
            ml.deploy_model(client, model_id)
            redeployed = True
    pipeline = None
    if index is not None:
        ml.record_index_model(client, index, model_record(model_id, package))
        pipeline = ml.set_default_model(client, index, model_id,
                                        [schema.pipeline_name(index, kind) for kind in schema.PIPELINE_KINDS])
    return DeployedModel(model_id=model_id, name=package.name, content_hash=package.sha256, dim=package.dim,
                         reused=reused, redeployed=redeployed, index=index, pipeline=pipeline,
                         seconds=time.monotonic() - started)


def deploy_after_load(settings, *, required: bool = False) -> DeployedModel | None:
    """What ``ner-os load`` runs after loading: :func:`deploy_type_model` when the cluster has ML Commons
    (one ``_cat/plugins`` call); None when it has not (a ClusterError instead with ``required``)."""
    client = client_from_settings(settings)
    if not required and not ml.has_ml_commons(client):
        return None
    return deploy_type_model(settings, client=client)


def model_record(model_id: str, package: TypeVectorPackage) -> dict:
    """What the index's ``_meta.ner_os_model`` holds."""
    return {"model_id": model_id, "name": package.name, "content_hash": package.sha256, "dim": package.dim,
            "vectors": package.vectors,
            "deployed": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def _check_index(client, index: str, package: TypeVectorPackage) -> None:
    schema.check_vectors(client, index, package.vectors)
    stored = schema.index_vector_dimension(client, index)
    if stored is not None and stored != package.dim:
        raise ConfigError(f"index {index!r} stores {stored}-d mention vectors but the model gives {package.dim}-d "
                          "vectors: deploy with the head the index was loaded with")


def _description(package: TypeVectorPackage) -> str:
    vectors = package.vectors
    return (f"ner-os type vectors: {vectors.get('profile')} layer {vectors.get('layer')} value vectors at the "
            f"last token, head {vectors.get('head') or 'none'}, {package.dim}-d unit vectors")
