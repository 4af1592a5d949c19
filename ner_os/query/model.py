"""What a type query asks for and what it returns: :class:`TypeQuery` and :class:`TypeResults`.

A type query finds the documents whose mentions lie nearest to the type description's vector
(DESIGN §4). That alone is the default: hybrid mode (``hybrid=True``) adds BM25 on ``text`` and
fuses the two rankings by reciprocal rank fusion, which on held-out corpora ruined some types
(issue #15: musical instrument 0.786 -> 0.071); its BM25 side is kept safe by :data:`BM25_ANALYZER`,
:data:`BM25_MINIMUM_SHOULD_MATCH` and :data:`BM25_WEIGHT`. :mod:`ner_os.query.bodies` builds the requests, :mod:`ner_os.query.steps` orders them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence, Union

from ner_os.checks import check_description, check_fraction
from ner_os.errors import NerOsError
from ner_os.fields import MAX_INNER_HITS, MAX_WINDOW, TEXT_FIELD
from ner_os.query.filters import filter_clause

# Every hit's ``score``, in every mode: its best mention's k-NN score, (1 + cosine) / 2 in [0, 1] as
# OpenSearch reports it for the cosinesimil space (the scale of --min-score and the thresholds). The
# ranking's own score (RRF in hybrid mode) is ``rank_score``, labelled by ``TypeResults.rank_kind``.
SCORE_SCALE = "k-NN score of the best mention, (1 + cosine) / 2"
RANK_KINDS = {"knn": "the best mention's k-NN score", "rrf": "reciprocal rank fusion of k-NN and BM25 (RRF)"}
RRF_RANK_CONSTANT = 60  # the rank_constant ner_os.store gives the RRF search pipeline, used by client-side fusion too
# The BM25 side of hybrid search: the description is analysed without English stopwords ("river in
# Africa" must not match every "in"), and every remaining word must match ("sports team" does not
# put "backend team" first). BM25_WEIGHT is its ranking's weight in client-side RRF: 1, as the
# server's RRF pipeline fuses (server and client fusion must rank alike); below 1 it would need the
# pipeline's weighted RRF too.
BM25_ANALYZER = "stop"
BM25_MINIMUM_SHOULD_MATCH = "100%"
BM25_WEIGHT = 1.0
DEFAULT_DEPTH = 100  # documents each ranking contributes before fusion
# The nested k-NN search's k when the query sets none. k is per shard (lucene walks each shard's HNSW
# graphs with a candidate list that long), so the candidates are split over the index's shards, at
# least KNN_PER_SHARD each. bench/scale.py at 1M mentions, 253 queries, recall@10 against exact search
# and p50 in the default mode: one shard 0.843 at k 100, 0.906 at 200 (29.6, 29.1 ms); two shards of
# 500k at k 100 each 0.981 (29.3 ms), at 200 each 0.991 (38.3 ms).
KNN_CANDIDATES = 200
KNN_PER_SHARD = 100
# a hit keeps the mentions scoring at least its best one's score minus this: chosen on held-out train
# types by bench/highlight.py (F1 of the kept mentions being of the query's type: 0.72 keeping all
# three -> 0.83; on the test types' detected spans 0.75 -> 0.76, precision 0.60 -> 0.68)
MENTION_MARGIN = 0.1


@dataclass(frozen=True)
class NeuralText:
    """A description the cluster turns into the type vector itself (ML Commons, docs/cluster-embedding.md).

    Passed where a vector goes (:mod:`ner_os.query.bodies`, :func:`ner_os.query.steps.type_search_steps`),
    it makes each ``knn`` clause a ``neural`` one with ``query_text``. ``model_id`` None: the index's
    default search pipeline (its ``neural_query_enricher``) names the model.
    """

    text: str
    model_id: str | None = None

    def spec(self) -> dict[str, Any]:
        return {"query_text": self.text, **({"model_id": self.model_id} if self.model_id else {})}


QueryVector = Union[Sequence[float], NeuralText]  # what a type query searches with


@dataclass(frozen=True)
class MentionMatch:
    """One mention of a hit document and how well it fits the type (k-NN score, higher is closer)."""

    surface: str
    start: int
    end: int
    score: float
    position: int  # index of the mention in the document's ``mentions`` array
    types: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"surface": self.surface, "start": self.start, "end": self.end, "score": self.score,
                "position": self.position, "types": list(self.types)}


@dataclass(frozen=True)
class TypeHit:
    """A document that mentions an entity of the type, with its matched mentions best first."""

    id: str
    score: float  # on the one scale of every mode: SCORE_SCALE
    source: dict[str, Any]
    mentions: tuple[MentionMatch, ...]
    rank_score: float | None = None  # what the ranking sorted by (TypeResults.rank_kind); None: the score

    @property
    def text(self) -> str:
        return str(self.source.get(TEXT_FIELD, ""))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "score": self.score, "rank_score": self.score if self.rank_score is None
                else self.rank_score, "source": self.source, "mentions": [mention.to_dict() for mention in self.mentions]}


@dataclass(frozen=True)
class TypeResults:
    """One page of a type query."""

    description: str
    index: str
    mode: str  # knn | radial | hybrid-server | hybrid-client
    offset: int
    hits: tuple[TypeHit, ...]
    took_ms: float = 0.0  # the cluster's own time (sum of the requests' ``took``)
    # the type vector searched with (None when the cluster embedded the words): what feedback refines
    vector: Any = field(default=None, repr=False, compare=False)
    total: int | None = None  # documents matching, as OpenSearch counts them (None: not counted)
    total_relation: str = "eq"  # "eq": exactly ``total``; "gte": at least ``total``
    error: str | None = None  # why the query failed (search_types reports a failed query here, hits empty)

    @property
    def rank_kind(self) -> str:
        """What ``rank_score`` is: ``knn`` (the best mention's k-NN score, the same as ``score``) or ``rrf``
        (hybrid: the reciprocal rank fusion of the k-NN and BM25 rankings)."""
        return "rrf" if self.mode.startswith("hybrid") else "knn"

    def __iter__(self):
        return iter(self.hits)

    def __len__(self) -> int:
        return len(self.hits)

    def __getitem__(self, item):
        return self.hits[item]

    @property
    def ids(self) -> list[str]:
        return [hit.id for hit in self.hits]


@dataclass(frozen=True)
class TypeQuery:
    """A checked type query: what to look for and which page of results to return.

    ``min_score`` switches to radial search: every mention scoring at least that much (k-NN score,
    ``(1 + cosine) / 2`` for the ``cosinesimil`` space) comes back, k-NN only (no BM25).
    ``mention_margin``: of a hit's best ``mentions_per_hit`` mentions, those scoring less than the best
    one minus this are left out (most documents also mention entities of other types); None keeps
    them. Radial search ignores it: its ``min_score`` already says which mentions match.
    """

    description: str
    size: int = 10
    offset: int = 0
    k: int | None = None
    hybrid: bool = False
    min_score: float | None = None
    filters: Mapping[str, Any] | None = None
    mentions_per_hit: int = 3
    mention_margin: float | None = MENTION_MARGIN
    shards: int = 1  # primary shards the query searches (the client reads them from the index): see knn_k

    def __post_init__(self):
        object.__setattr__(self, "description", check_description(self.description))
        for name, low in (("size", 1), ("offset", 0), ("mentions_per_hit", 1), ("shards", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise NerOsError(f"{name} must be an integer >= {low}, got {value!r}")
        if self.offset + self.size > MAX_WINDOW:
            raise NerOsError(f"offset + size must be at most {MAX_WINDOW}, got {self.offset + self.size}")
        if self.k is not None and (isinstance(self.k, bool) or not isinstance(self.k, int)
                                   or not 1 <= self.k <= MAX_WINDOW):
            raise NerOsError(f"k must be an integer in [1, {MAX_WINDOW}], got {self.k!r}")
        if self.min_score is not None:
            object.__setattr__(self, "min_score", check_fraction("min_score", self.min_score, " (k-NN score)"))
            object.__setattr__(self, "hybrid", False)
        if self.mention_margin is not None:
            object.__setattr__(self, "mention_margin", check_fraction("mention_margin", self.mention_margin, " or None"))
        if self.mentions_per_hit > MAX_INNER_HITS:
            raise NerOsError(f"mentions_per_hit must be at most {MAX_INNER_HITS}, got {self.mentions_per_hit}")
        object.__setattr__(self, "filters", dict(self.filters) if self.filters else None)
        filter_clause(self.filters)  # checked now, so that a bad filter fails before any request

    @property
    def window(self) -> int:
        """How many ranked documents the page needs: everything up to its end."""
        return self.offset + self.size

    @property
    def depth(self) -> int:
        """Documents per ranking before fusion (the k-NN search asks for ``knn_k``, at least this).

        It stays the same from page to page (until the page runs past it), so that paging never
        reshuffles the fused ranking (neural-search pagination_depth).
        """
        return min(MAX_WINDOW, max(self.k or DEFAULT_DEPTH, self.window))

    @property
    def knn_k(self) -> int:
        """The nested k-NN search's ``k`` (per shard): ``k`` where set, else ``KNN_CANDIDATES`` split over the
        shards (at least ``KNN_PER_SHARD``); and at least the page's window, which one shard may hold whole."""
        split = max(-(-KNN_CANDIDATES // self.shards), KNN_PER_SHARD)
        return min(MAX_WINDOW, max(self.k or split, self.window))

    @property
    def mention_limit(self) -> int:
        """Mentions returned per document: radial search returns every one above the threshold."""
        return MAX_INNER_HITS if self.min_score is not None else self.mentions_per_hit

    @property
    def kept_margin(self) -> float | None:
        """The margin applied to a hit's mentions: none in radial search."""
        return None if self.min_score is not None else self.mention_margin

    @property
    def mode(self) -> str:
        if self.min_score is not None:
            return "radial"
        return "hybrid" if self.hybrid else "knn"
