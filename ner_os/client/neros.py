"""``NerOs``: one object holding the cluster connection, the encoder and head, and a type-vector cache.

Everything is built on first use: a ``NerOs`` that only lists registered types never loads the
model, and one that only prints query bodies for a given vector never connects.

    from ner_os import NerOs
    ner = NerOs(opensearch_url="http://localhost:9200")
    for hit in ner.search_type("dinosaur", size=5):
        print(hit.score, hit.mentions[0].surface, hit.text)
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ner_os import query as q
from ner_os import registered_types as rt
from ner_os.checks import check_description, check_vector
from ner_os.config import Settings
from ner_os.errors import ClusterError, NerOsError
from ner_os.mentions.cache import cached_type_vector, type_vector_cache
from ner_os.mentions.embedder import MentionEmbedder, vectors_identity
from ner_os.store import ml, removal, schema, types_index
from ner_os.store import search as store
from ner_os.store.connection import client_from_settings, has_neural_search
from ner_os.client.dimension import head_output_dimension
from ner_os.client.index_facts import IndexFacts
from ner_os.client.cluster_vector import stored_type_vector
from ner_os.client.by_example import composed_vector, refine as refined_results
from ner_os.client.batch import search_types as batch_search_types
from ner_os.client.prepare import query_steps, vector_steps

log = logging.getLogger(__name__)

TYPE_VECTOR_CACHE_SIZE = 1024
FUSIONS = ("auto", "server", "client")
EMBEDDINGS = ("auto", "cluster", "local")


class NerOs:
    """The Python API of ner-os: type search, query bodies for Dev Tools, registered types.

    ``settings`` (or ``Settings.resolve(**flags)``) pick the cluster, the index and the model;
    ``opensearch`` (an ``opensearchpy.OpenSearch``) and ``embedder`` (a
    :class:`ner_os.mentions.embedder.MentionEmbedder`) replace what the settings would build. ``fusion``
    says where hybrid rankings are fused: ``auto`` (on the cluster when it has neural-search and
    the index's RRF pipeline), ``server`` or ``client``. ``embedding`` says where a description
    becomes its vector: ``cluster`` (ML Commons, the model ``ner-os model deploy`` recorded on the
    index: no model is loaded here), ``local`` (the embedder), ``auto`` (the cluster when the
    index's recorded model is deployed, else local).
    """

    def __init__(self, settings: Settings | None = None, *, opensearch=None, embedder=None, fusion: str = "auto",
                 embedding: str = "auto", **flags: Any):
        if fusion not in FUSIONS:
            raise NerOsError(f"fusion must be one of {', '.join(FUSIONS)}, got {fusion!r}")
        self.fusion = fusion
        self.embedding = check_embedding(embedding)
        self._cluster_models: dict[str, str | None] = {}
        if settings is None:
            settings = Settings.resolve(**flags)
        elif flags:
            settings = settings.replace(**flags)
        self.settings = settings
        self._opensearch = opensearch
        self._embedder = embedder
        self._type_vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._index_facts = IndexFacts(lambda: self.opensearch)
        self._checked_vectors: set[str] = set()
        self._server_hybrid: dict[str, bool] = {}
        self._neural_search: bool | None = None

    # --- what is built on first use ----------------------------------------------------------

    @property
    def opensearch(self):
        if self._opensearch is None:
            self._opensearch = client_from_settings(self.settings)
        return self._opensearch

    @property
    def embedder(self):
        if self._embedder is None:
            # in the query numerics (Settings.query_numerics: int8 on a CPU for the default profile), with
            # spinning threads: the client process encodes short descriptions with nothing else running
            self._embedder = MentionEmbedder.from_settings(self.settings.for_queries(), spin=True)
        return self._embedder

    def encoder_identity(self) -> dict[str, Any] | None:
        """What produced the vectors (``MentionEmbedder.identity``): stored with each registered type."""
        return vectors_identity(self.embedder)

    def check_index_vectors(self, index: str | None = None) -> None:
        """Refuse an index whose recorded vectors another encoder or head made (checked once per index)."""
        index = self.index_name(index)
        if index not in self._checked_vectors:
            schema.check_vectors(self.opensearch, index, self.encoder_identity())
            self._checked_vectors.add(index)

    def type_vector(self, description: str) -> np.ndarray:
        """The description's unit vector (float32 ``[dim]``), computed once per description."""
        description = check_description(description)
        cached = self._type_vectors.get(description)
        if cached is not None:
            self._type_vectors.move_to_end(description)
            return cached
        if q.is_expanded(description):  # "river in Africa | African river": the phrasings' mean direction
            vector = q.mean_direction([self.type_vector(part) for part in q.phrasings(description)])
        else:
            vector = cached_type_vector(self.embedder, description, self.type_vector_cache)
        vector.setflags(write=False)
        self._type_vectors[description] = vector
        if len(self._type_vectors) > TYPE_VECTOR_CACHE_SIZE:
            self._type_vectors.popitem(last=False)
        return vector

    @functools.cached_property
    def type_vector_cache(self):
        """The on-disk level below the in-memory one (:class:`ner_os.mentions.cache.TypeVectorCache`)."""
        return type_vector_cache(self.settings, self.embedder)

    def index_type_vector(self, description: str, index: str | None = None) -> list[float]:
        """The description's vector for querying ``index``: checked against the index's dimension and
        the model that filled it (a missing index fails before the model loads)."""
        dim = self.vector_dimension(index)
        vector = self.type_vector(description)
        self.check_index_vectors(index)
        return check_vector(vector, dim)

    def cluster_model(self, index: str | None = None, embedding: str | None = None) -> str | None:
        """The ML Commons model that embeds descriptions for ``index`` on the cluster; None: embed locally.

        ``embedding`` (default the client's): ``local`` -> None; ``cluster`` -> the model recorded on the
        index, an error when there is none or it is not deployed; ``auto`` -> that model when deployed.
        """
        index, embedding = self.index_name(index), check_embedding(embedding or self.embedding)
        if embedding == "local":
            return None
        if index not in self._cluster_models:
            self._cluster_models[index] = ml.deployed_index_model(self.opensearch, index)
        model_id = self._cluster_models[index]
        if model_id is None and embedding == "cluster":
            raise NerOsError(f"index {index!r} names no deployed ML Commons model: run `ner-os model deploy "
                             f"--index {index}` on a cluster with ML Commons, or embed locally (--embedding local)")
        return model_id

    def query_vector(self, description: str, index: str | None = None, embedding: str | None = None) -> q.QueryVector:
        """What a type query on ``index`` searches with: the words themselves when the cluster embeds them
        (:class:`ner_os.query.NeuralText`), else :meth:`index_type_vector`."""
        model_id = self.cluster_model(index, embedding)
        if model_id is None or q.is_expanded(description):  # the cluster embeds one phrasing
            return self.index_type_vector(description, index)
        self.vector_dimension(index)  # a missing or foreign index: the same one-line error as locally
        return q.NeuralText(check_description(description), model_id)

    def clear_type_vectors(self) -> None:
        """Forget the cached type vectors (the next query of each description encodes it again)."""
        self._type_vectors.clear()

    def index_name(self, index: str | None = None) -> str:
        return index or self.settings.index

    def vector_dimension(self, index: str | None = None) -> int:
        """The dimension of the index's mention vectors; a one-line error for a missing or foreign index."""
        return self._index_facts.dimension(self.index_name(index))

    def index_shards(self, index: str | None = None) -> int:
        """The primary shards a search of the index covers: the default k-NN depth is split over them."""
        return self._index_facts.shards(self.index_name(index))

    def neural_search(self) -> bool:
        if self._neural_search is None:
            self._neural_search = has_neural_search(self.opensearch)
        return self._neural_search

    def pipeline(self, index: str | None = None) -> str:
        return q.hybrid_pipeline(self.index_name(index))

    def server_hybrid(self, index: str | None = None) -> bool:
        """True when the cluster fuses BM25 and k-NN itself: neural-search and the index's RRF pipeline."""
        index = self.index_name(index)
        if self.fusion == "client":
            return False
        if index not in self._server_hybrid:
            available = self.neural_search() and store.pipeline_exists(self.opensearch, self.pipeline(index))
            if self.fusion == "server" and not available:
                raise NerOsError(f"server-side fusion needs the neural-search plugin and search pipeline "
                                 f"{self.pipeline(index)} (ner-os templates install)")
            if self.neural_search() and not available:
                log.warning("neural-search is installed but search pipeline %s is missing (run `ner-os templates "
                            "install`); fusing BM25 and k-NN on the client", self.pipeline(index))
            self._server_hybrid[index] = available
        return self._server_hybrid[index]

    # --- type search -------------------------------------------------------------------------

    def type_query(self, description: str, **options: Any) -> q.TypeQuery:
        return q.TypeQuery(description, **options)

    def search_type(self, description: str | None = None, *, examples: Sequence = (), more_like: Sequence = (),
                    less_like: Sequence = (), index: str | None = None, size: int = 10, k: int | None = None,
                    hybrid: bool = False, filters: Mapping[str, Any] | None = None, offset: int = 0,
                    min_score: float | None = None, mentions_per_hit: int = 3,
                    mention_margin: float | None = q.MENTION_MARGIN, embedding: str | None = None) -> q.TypeResults:
        """Documents that mention an entity of the described type, best first, with the matched mentions.

        ``examples`` (with or without a description): surfaces (``"Nile"``), hits, or mentions in the index
        (:class:`ner_os.query.MentionRef`); ``more_like`` / ``less_like``: hits (or mentions) marked right /
        wrong, which refine the type vector (docs/queries.md; :meth:`refine` takes hit numbers).

        ``k``: documents the k-NN search gathers per shard (default: 200 split over the index's shards, at
        least 100 each and ``offset + size``, ``TypeQuery.knn_k``); ``hybrid``:
        fuse with BM25 on ``text`` (RRF); ``filters``: ``{field: value | [values] | {"gte": …}}`` on
        document fields; ``min_score``: radial k-NN search, every mention scoring at least this;
        ``mention_margin``: a hit's mentions scoring less than its best minus this are left out (None: kept);
        ``embedding``: ``cluster``, ``local`` or ``auto`` (default: the client's, see :class:`NerOs`).
        """
        return self._drive(*query_steps(self, description, examples=examples, more_like=more_like,
                                        less_like=less_like, index=index, size=size, k=k, hybrid=hybrid,
                                        filters=filters, offset=offset, min_score=min_score,
                                        mentions_per_hit=mentions_per_hit, mention_margin=mention_margin,
                                        embedding=embedding))

    def search_types(self, queries: Sequence[Any], **options: Any) -> list[q.TypeResults]:
        """Several type queries over one ``_msearch`` a round (see :mod:`ner_os.client.batch`): each a
        description or a dict of :meth:`search_type` options, ``options`` applying to all; one result per
        query in order, a failed one with no hits and its ``error`` (a query that cannot be asked raises)."""
        return batch_search_types(self, queries, **options)

    def refine(self, results: q.TypeResults, right: Sequence = (), wrong: Sequence = (), **options: Any) -> q.TypeResults:
        """``results`` searched again, its type vector moved towards the hits marked ``right`` and away from
        those marked ``wrong`` (hit numbers as printed, or hits); ``options``: as :meth:`search_type`'s."""
        return refined_results(self, results, right, wrong, **options)

    def search_vector(self, vector: q.QueryVector, query: q.TypeQuery, *, index: str | None = None) -> q.TypeResults:
        """:meth:`search_type` for a vector already computed (or a :class:`ner_os.query.NeuralText`): the
        OpenSearch part alone."""
        return self._drive(*vector_steps(self, vector, query, index))

    def dsl(self, description: str, *, index: str | None = None, **options: Any) -> str:
        """The complete request for Dashboards Dev Tools (``GET <index>/_search…`` and its body)."""
        index = self.index_name(index)
        query = q.TypeQuery(description, shards=self.index_shards(index), **options)
        vector = self.query_vector(query.description, index)
        return q.dsl_request(vector, query, index=index, server_hybrid=query.hybrid and self.server_hybrid(index),
                             pipeline=self.pipeline(index))

    def template_request(self, description: str, *, index: str | None = None, **options: Any) -> str:
        """The stored search template (installed if needed) and the Dev Tools request that uses it."""
        index = self.index_name(index)
        query = q.TypeQuery(description, hybrid=False, shards=self.index_shards(index), **options)
        if query.min_score is not None or query.filters:
            raise NerOsError("the search template covers top-k k-NN queries: drop --min-score and --filter")
        vector = self.index_type_vector(query.description, index)
        template_id = store.install_search_template(self.opensearch, index)
        return q.template_request_line(index, template_id, vector, query)

    def _drive(self, steps, index: str) -> q.TypeResults:
        return q.drive(steps, lambda request: self._send(request, index))

    def _send(self, request, index: str):
        try:
            return store.send(self.opensearch, index, request)
        except store.MissingIndex:
            self.forget_index(index)
            raise

    def forget_index(self, index: str) -> None:
        """Forget what was learnt about an index found missing (a new one of that name is read afresh)."""
        self._index_facts.forget(index)

    # --- registered types --------------------------------------------------------------------

    def register_type(self, description: str, *, name: str | None = None, min_score: float | None = None,
                      threshold: Any = None, index: str | None = None) -> rt.TagReport:
        """Store the type and tag every mention of the index scoring >= ``min_score`` with its name.

        ``threshold`` instead: a rule relative to the index (``"p99.5"``, ``"z3"``: see
        :mod:`ner_os.query.thresholds`), placed on the index's mentions now; neither: :data:`ner_os.query.
        thresholds.DEFAULT_TAG_THRESHOLD` (a bare score on an index too small to place it)."""
        if min_score is not None and threshold is not None:
            raise NerOsError("give min_score (a bare k-NN score) or threshold (a rule), not both")
        index = self.index_name(index)
        description = check_description(description)
        vector, made_by = stored_type_vector(self, description, index)  # in the cluster when it embeds queries
        given = rt.check_min_score(min_score) if min_score is not None else threshold
        rule, score = q.drive(q.threshold_steps(vector, q.parse_threshold(given) if given is not None
                                                else q.DEFAULT_TAG_THRESHOLD, fallback=q.TAG_FALLBACK),
                              lambda request: self._send(request, index))
        registered = rt.new_type(description, np.asarray(vector, dtype=np.float32), name=name, min_score=score,
                                 encoder=made_by, threshold=rule.spec() if rule.relative else "")
        report = types_index.register(self.opensearch, index, registered)
        return dataclasses.replace(report, min_score=score, threshold=registered.threshold)

    # --- several types in one query, thresholds ----------------------------------------------

    def threshold_score(self, description: str, threshold: Any, *, index: str | None = None) -> float:
        """The k-NN score a threshold (``0.8``, ``"p99.5"``, ``"z3"``) comes to for ``description`` on ``index``."""
        index = self.index_name(index)
        vector = self.index_type_vector(description, index)
        steps = q.threshold_steps(vector, q.parse_threshold(threshold))
        return q.drive(steps, lambda request: self._send(request, index))[1]

    def search_combined(self, all_of: Sequence = (), any_of: Sequence = (), none_of: Sequence = (), *,
                        threshold: Any = None, index: str | None = None, size: int = 10,
                        filters: Mapping[str, Any] | None = None, approximate: bool = False,
                        mentions_per_clause: int = 3) -> q.CombinedResults:
        """Documents with a mention of every ``all_of`` type, of one ``any_of`` type at least, of no
        ``none_of`` type (see :mod:`ner_os.query.combined`). A type is a description, ``(description,
        threshold)`` or ``"description@threshold"``; ``threshold`` (``0.8``, ``"p99.5"``, ``"z3"``; default
        :data:`ner_os.query.DEFAULT_THRESHOLD`) applies to those without their own. ``approximate``: radial
        HNSW clauses instead of exact scoring."""
        query = q.CombinedQuery.of(all_of, any_of, none_of, threshold=threshold, size=size, filters=filters,
                                   approximate=approximate, mentions_per_clause=mentions_per_clause)
        index = self.index_name(index)
        if query.filters:
            schema.check_filter_fields(self.opensearch, index, query.filters)
        vectors = [composed_vector(self, item.description, item.examples, (), (), index) if item.examples
                   else self.index_type_vector(item.description, index) for item in query.clauses]
        return self._drive(q.combined_search_steps(vectors, query, index=index), index)

    def registered_types(self, index: str | None = None) -> list[rt.RegisteredType]:
        self.vector_dimension(index)  # a missing index is an error, not "no type registered"
        return types_index.read_types(self.opensearch, self.index_name(index))

    def remove_type(self, name: str, *, index: str | None = None) -> rt.TagReport:
        return types_index.unregister(self.opensearch, self.index_name(index), name)

    def refresh_types(self, names: Sequence[str] = (), *, index: str | None = None) -> list[rt.TagReport]:
        """Re-embed the types (all, or ``names``) with the current model and re-tag the index."""
        index = self.index_name(index)
        wanted = [types_index.get_type(self.opensearch, index, name) for name in names] if names else \
            self.registered_types(index)
        return [self.register_type(registered.description, name=registered.name, index=index,
                                   **({"threshold": registered.threshold} if registered.threshold
                                      else {"min_score": registered.min_score})) for registered in wanted]

    def tagger(self, index: str | None = None) -> rt.Tagger | None:
        """The loader's hook: tags new mentions with the index's registered types (None when none)."""
        return types_index.tagger_for_index(self.opensearch, self.index_name(index))

    # --- the index's templates -------------------------------------------------------------

    def install_templates(self, dimension: int | None = None) -> "InstalledTemplates":
        """Install (idempotently) the index templates for the index (``dimension``: the mention vector
        size, default the head's output size), the hybrid search pipelines when the cluster has
        neural-search, and the stored search template when it has lang-mustache."""
        names = schema.install_templates(self.opensearch, self.settings,
                                         dimension or head_output_dimension(self.settings))
        try:  # lang-mustache is a module in the official distribution, so _cat/plugins cannot tell
            return InstalledTemplates(names, search_template=store.install_search_template(self.opensearch,
                                                                                           self.settings.index))
        except ClusterError as error:
            return InstalledTemplates(names, search_template_error=str(error))

    def delete_index(self, index: str | None = None) -> removal.RemovedIndex:
        """Delete the index with what ner-os made for it (see :mod:`ner_os.store.removal`); a missing index is an error."""
        return removal.remove_index(self.opensearch, self.index_name(index))

    def close(self) -> None:
        if self._opensearch is not None:
            self._opensearch.close()
            self._opensearch = None

    def __enter__(self) -> "NerOs":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def check_embedding(embedding: str) -> str:
    if embedding not in EMBEDDINGS:
        raise NerOsError(f"embedding must be one of {', '.join(EMBEDDINGS)}, got {embedding!r}")
    return embedding


@dataclass(frozen=True)
class InstalledTemplates:
    """What :meth:`NerOs.install_templates` put up: the templates and pipelines, and the search
    template's id (or why the cluster refused it)."""

    names: schema.TemplateNames
    search_template: str | None = None
    search_template_error: str | None = None
