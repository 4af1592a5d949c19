"""The index a load writes to, over :mod:`ner_os.store`: connected, created or checked, written, refreshed."""

from __future__ import annotations

import logging
from typing import Iterable

from ner_os.config import Settings
from ner_os.errors import ConfigError
from ner_os.loader.records import DEFAULT_NESTED_LIMIT
from ner_os.mentions.embedder import vectors_identity
from ner_os.registered_types import Tagger
from ner_os.store import bulk, connection, schema, types_index

log = logging.getLogger(__name__)


class ClusterTarget:
    """The index being loaded: created from the templates when missing, checked, and written to."""

    def __init__(self, client, index: str):
        self.client, self.index = client, index
        self.uuid: str | None = None
        self.shards = 1
        self.nested_limit = DEFAULT_NESTED_LIMIT

    @classmethod
    def connect(cls, settings: Settings, client=None) -> "ClusterTarget":
        """A client for the settings' cluster (a local node is started when no URL is set), once it
        answers; an unreachable cluster is a ``ClusterError`` after ``settings.timeout_s``."""
        if client is None:
            client = connection.client_from_settings(settings)
        else:
            connection.wait_until_reachable(client, settings.opensearch_url or "the given client's cluster",
                                            settings.timeout_s)
        return cls(client, settings.index)

    def drop_index(self, embedder) -> None:
        """Delete the index. The types registered on it stay, re-embedded with ``embedder`` (their old
        vectors came from the model that filled it), so that the load tags its documents with them."""
        kept = types_index.read_types(self.client, self.index)
        schema.delete_index(self.client, self.index)
        vectors = embedder.embed_types([registered.description for registered in kept])
        for registered, vector in zip(kept, vectors):
            types_index.store_type(self.client, self.index, registered.reembedded(vector, vectors_identity(embedder)))
            log.info("index %s replaced: registered type %r re-embedded with the new model", self.index,
                     registered.name)

    def prepare_index(self, settings: Settings, dim: int, vectors: dict | None = None) -> None:
        """Create the index for ``dim``-d mention vectors when missing, recording ``vectors`` (what makes
        them); refuse one of another size, or one whose vectors another encoder or head made."""
        if schema.index_exists(self.client, self.index):
            schema.check_dimension(self.client, self.index, dim)
            if schema.index_vector_dimension(self.client, self.index) is None:
                raise ConfigError(f"index {self.index!r} has no mentions.vector field, so it was not made by "
                                  "ner-os: choose another --index")
            schema.check_vectors(self.client, self.index, vectors)
            merged = schema.index_settings(self.client, self.index)
            schema.check_shards(self.index, merged, settings)
            schema.add_vector_bytes(self.client, self.index)
        else:
            schema.install_templates(self.client, settings, dim)
            schema.create_index(self.client, self.index, dim, vectors, **schema.settings_params(settings))
            merged = schema.index_settings(self.client, self.index)
        self.uuid = merged.get("index.uuid")
        self.shards = int(merged.get("index.number_of_shards", 1))
        self.nested_limit = int(merged.get("index.mapping.nested_objects.limit", DEFAULT_NESTED_LIMIT))

    def shards_advice(self, mentions: int) -> str | None:
        """What to change when a load put more mentions on each of the index's shards than k-NN recall allows."""
        return schema.shards_advice(self.index, mentions, self.shards)

    def registered_type_tagger(self) -> Tagger | None:
        """Tags for the types registered on this index (``ner-os types add``); None when there are none."""
        return types_index.tagger_for_index(self.client, self.index)

    def write(self, actions: Iterable[dict]) -> dict[str, str]:
        """Index the actions; ``{_id: reason}`` for the documents OpenSearch refused for good (see
        :func:`ner_os.store.bulk.write_documents`: what is retried, and when the load stops)."""
        return bulk.write_documents(self.client, self.index, actions)

    def refresh(self) -> None:
        bulk.refresh(self.client, self.index)
