"""Registered types: a type stored under a name, and every mention that fits it tagged with that name.

``ner-os types add "dinosaur" --min-score 0.8`` stores the description, its vector and the threshold
in a small registry index (``ner_os_types``, one record per document index and type name; its name
matches no ``<index>-*`` template pattern) and writes ``"dinosaur"`` into ``mentions.types`` of every
mention whose score is at least the threshold. The loader tags documents loaded later with the same
rule (:func:`tagger_for_index`), so that Dashboards users can filter and aggregate on
``mentions.types`` with no vector in sight.

Scores are k-NN scores of the ``cosinesimil`` space, ``(1 + cosine) / 2`` in [0, 1] — the scale of
``search_type``'s mention scores — computed exactly: by the k-NN plugin's ``knn_score`` script on
the cluster, and with numpy at load time.

Tags are written with scripted bulk updates whose script source is a constant: the type name and
the mention positions travel as script parameters, never inside a script or a query string.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from ner_os.errors import ClusterError, NerOsError
from ner_os.checks import check_description, check_fraction, check_vector
from ner_os.query.core import MAX_INNER_HITS, MENTIONS_PATH, VECTOR_FIELD

log = logging.getLogger(__name__)

TYPES_INDEX = "ner_os_types"
TYPES_FIELD = "mentions.types"
MAX_NAME_CHARS = 100
DEFAULT_MIN_SCORE = 0.8  # (1 + cosine) / 2 >= 0.8, i.e. cosine >= 0.6
SCAN_PAGE = 500
BULK_CHUNK = 500

# ctx._source.mentions[p].types gains params.type for each p in params.positions (no-op when present)
ADD_TYPE_SCRIPT = """
def mentions = ctx._source.mentions;
boolean changed = false;
for (def p : params.positions) {
  def mention = mentions[(int) p];
  def types = mention.types;
  if (types == null) { types = new ArrayList(); mention.types = types; }
  else if (!(types instanceof List)) { types = new ArrayList([types]); mention.types = types; }
  if (!types.contains(params.type)) { types.add(params.type); changed = true; }
}
if (!changed) { ctx.op = 'noop'; }
""".strip()

# params.type leaves every mention's types (no-op when absent)
REMOVE_TYPE_SCRIPT = """
boolean changed = false;
for (def mention : ctx._source.mentions) {
  def types = mention.types;
  if (types == null) { continue; }
  if (!(types instanceof List)) { types = new ArrayList([types]); mention.types = types; }
  if (types.removeIf(t -> t == params.type)) { changed = true; }
}
if (!changed) { ctx.op = 'noop'; }
""".strip()

Tagger = Callable[[np.ndarray], Sequence[Sequence[str]]]


@dataclass(frozen=True)
class RegisteredType:
    """A stored type: its name (the tag), the description it was embedded from, vector and threshold."""

    name: str
    description: str
    min_score: float
    vector: np.ndarray = field(repr=False, compare=False)
    encoder: Mapping[str, Any] = field(default_factory=dict)  # what produced the vector
    updated_at: str = ""

    def to_source(self, index: str) -> dict[str, Any]:
        return {
            "index": index,
            "name": self.name,
            "description": self.description,
            "min_score": self.min_score,
            "vector": [float(x) for x in self.vector],
            "dim": int(len(self.vector)),
            "encoder": dict(self.encoder),
            "updated_at": self.updated_at or now(),
        }

    def reembedded(self, vector: np.ndarray, encoder: Mapping[str, Any]) -> "RegisteredType":
        """The same type (name, description, threshold) with a vector from another model."""
        return dataclasses.replace(self, vector=np.asarray(check_vector(vector), dtype=np.float32),
                                   encoder=dict(encoder), updated_at=now())

    @classmethod
    def from_source(cls, source: Mapping[str, Any]) -> "RegisteredType":
        return cls(name=source["name"], description=source["description"], min_score=float(source["min_score"]),
                   vector=np.asarray(source["vector"], dtype=np.float32), encoder=source.get("encoder") or {},
                   updated_at=source.get("updated_at", ""))


@dataclass(frozen=True)
class TagReport:
    """What tagging or untagging one type changed."""

    name: str
    documents: int  # documents rewritten
    mentions: int  # mentions that (now) carry the tag, or lost it

    def describe(self, verb: str = "tagged") -> str:
        return f"{self.name!r}: {verb} {self.mentions:,} mentions in {self.documents:,} documents"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def record_id(index: str, name: str) -> str:
    # index names cannot hold ':', so this is unique per (index, name)
    return f"{index}:{name}"


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
        },
    },
}


def check_name(name: Any) -> str:
    """A type name: the tag written into ``mentions.types``."""
    if not isinstance(name, str) or not name.strip():
        raise NerOsError("a registered type needs a non-empty name")
    name = " ".join(name.split())
    if len(name) > MAX_NAME_CHARS:
        raise NerOsError(f"type name {name[:40]!r}… has {len(name)} characters; at most {MAX_NAME_CHARS}")
    return name


def check_min_score(min_score: Any) -> float:
    return check_fraction("min_score", min_score, " (k-NN score, (1 + cosine) / 2)", above_zero=True)


def new_type(description: str, vector: np.ndarray, *, name: str | None = None,
             min_score: float = DEFAULT_MIN_SCORE, encoder: Mapping[str, Any] | None = None) -> RegisteredType:
    description = check_description(description)
    return RegisteredType(name=check_name(name if name is not None else description), description=description,
                          min_score=check_min_score(min_score), vector=np.asarray(check_vector(vector), dtype=np.float32),
                          encoder=dict(encoder or {}), updated_at=now())


# ---------------------------------------------------------------------------------------------
# scoring, shared by the cluster-side tagging and the loader


def knn_scores(vectors: np.ndarray, type_vectors: np.ndarray) -> np.ndarray:
    """``[n_mentions, n_types]`` k-NN scores of the cosinesimil space: (1 + cosine) / 2."""
    vectors = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1)
    type_vectors = np.asarray(type_vectors, dtype=np.float32).reshape(len(type_vectors), -1)
    return (1.0 + _unit(vectors) @ _unit(type_vectors).T) / 2.0


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), np.float32(1e-12))


def make_tagger(types: Sequence[RegisteredType]) -> Tagger | None:
    """The loader hook: mention vectors ``[n, dim]`` -> the names of the types each mention fits."""
    if not types:
        return None
    names = [registered.name for registered in types]
    matrix = np.stack([registered.vector for registered in types])
    thresholds = np.asarray([registered.min_score for registered in types], dtype=np.float32)

    def tag(vectors: np.ndarray) -> list[list[str]]:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.size == 0:
            return [[] for _ in range(len(vectors))]
        if vectors.shape[1] != matrix.shape[1]:
            raise NerOsError(f"registered types hold {matrix.shape[1]}-d vectors but the mentions are "
                             f"{vectors.shape[1]}-d: run `ner-os types refresh` with the current model")
        fits = knn_scores(vectors, matrix) >= thresholds
        return [[names[j] for j in np.flatnonzero(row)] for row in fits]

    return tag


# ---------------------------------------------------------------------------------------------
# the types index


def read_types(client, index: str) -> list[RegisteredType]:
    """The types registered for ``index``, by name; [] when none ever was."""
    from opensearchpy.exceptions import NotFoundError

    try:
        response = client.search(index=TYPES_INDEX, body={"size": 1000, "query": {"term": {"index": index}},
                                                          "sort": [{"name": "asc"}]})
    except NotFoundError:
        return []
    return [RegisteredType.from_source(hit["_source"]) for hit in response["hits"]["hits"]]


def get_type(client, index: str, name: str) -> RegisteredType:
    from opensearchpy.exceptions import NotFoundError

    name = check_name(name)
    try:
        return RegisteredType.from_source(client.get(index=TYPES_INDEX, id=record_id(index, name))["_source"])
    except NotFoundError:
        known = ", ".join(repr(t.name) for t in read_types(client, index)) or "none"
        raise NerOsError(f"no type {name!r} is registered for index {index!r} (registered: {known})") from None


def tagger_for_index(client, index: str) -> Tagger | None:
    """The loader's tagger for ``index``: None when no type is registered."""
    return make_tagger(read_types(client, index))


def store_type(client, index: str, registered: RegisteredType) -> None:
    if not client.indices.exists(index=TYPES_INDEX):
        from opensearchpy.exceptions import RequestError

        try:
            client.indices.create(index=TYPES_INDEX, body=TYPES_INDEX_BODY)
        except RequestError as error:  # created by a concurrent caller in the meantime
            if "resource_already_exists" not in str(error):
                raise
    client.index(index=TYPES_INDEX, id=record_id(index, registered.name), body=registered.to_source(index),
                 refresh="wait_for")


def delete_type_record(client, index: str, name: str) -> None:
    client.delete(index=TYPES_INDEX, id=record_id(index, name), refresh="wait_for")


# ---------------------------------------------------------------------------------------------
# tagging on the cluster


def matching_mentions_query(vector: Sequence[float], min_score: float) -> dict:
    """Documents with at least one mention scoring >= min_score; ``inner_hits`` lists those mentions.

    Exact scoring (the k-NN ``knn_score`` script, brute force over the mentions): tagging must not
    depend on how the HNSW graph happened to be built. On 2.19 ``knn_score`` gives the same
    ``(1 + cosine) / 2`` as the approximate search for the cosinesimil space, up to float rounding
    (~1e-6; the integration tests check it).
    """
    return {
        "nested": {
            "path": MENTIONS_PATH,
            "score_mode": "max",
            "query": {
                "script_score": {
                    "query": {"match_all": {}},
                    "script": {"source": "knn_score", "lang": "knn",
                               "params": {"field": VECTOR_FIELD, "query_value": list(vector),
                                          "space_type": "cosinesimil"}},
                    "min_score": float(min_score),
                }
            },
            "inner_hits": {"size": MAX_INNER_HITS, "_source": False},
        }
    }


def tagged_mentions_query(name: str) -> dict:
    return {"nested": {"path": MENTIONS_PATH, "query": {"term": {TYPES_FIELD: name}}}}


def _scan(client, index: str, query: dict, source: Any = False) -> Iterator[dict]:
    from opensearchpy.helpers import scan

    yield from scan(client, index=index, query={"query": query, "_source": source}, size=SCAN_PAGE,
                    scroll="5m")


def matched_positions(hit: Mapping[str, Any]) -> tuple[list[int], bool]:
    """Nested offsets of the matching mentions, and whether inner_hits held them all."""
    inner = hit.get("inner_hits", {}).get(MENTIONS_PATH, {}).get("hits", {})
    positions = sorted(item["_nested"]["offset"] for item in inner.get("hits", []))
    total = inner.get("total", {}).get("value", len(positions))
    return positions, total <= len(positions)


def _positions_from_source(client, index: str, doc_id: str, registered: RegisteredType) -> list[int]:
    """For a document with more matching mentions than inner_hits returns: score its vectors here."""
    source = client.get(index=index, id=doc_id, _source_includes=[VECTOR_FIELD])["_source"]
    vectors = np.asarray([mention["vector"] for mention in source.get(MENTIONS_PATH, [])], dtype=np.float32)
    scores = knn_scores(vectors, registered.vector[None, :])[:, 0]
    return [int(i) for i in np.flatnonzero(scores >= registered.min_score)]


def script_action(index: str, doc_id: str, script: str, params: dict) -> dict:
    return {"_op_type": "update", "_index": index, "_id": doc_id, "retry_on_conflict": 3,
            "script": {"source": script, "lang": "painless", "params": params}}


def _apply(client, actions: Iterator[dict]) -> int:
    """Run scripted updates; the number of documents that changed. Any failure is one NerOsError."""
    from opensearchpy.helpers import streaming_bulk

    changed, failures = 0, []
    for ok, item in streaming_bulk(client, actions, chunk_size=BULK_CHUNK, raise_on_error=False,
                                   raise_on_exception=False, max_retries=3):
        result = item.get("update", {})
        if not ok:
            failures.append(f"{result.get('_id')}: {result.get('error')}")
        elif result.get("result") == "updated":
            changed += 1
    if failures:
        raise ClusterError(f"{len(failures)} documents could not be updated, first: {failures[0]}")
    return changed


def tag_type(client, index: str, registered: RegisteredType) -> TagReport:
    """Add the type's name to every mention of ``index`` scoring >= its threshold."""
    counted = {"mentions": 0}

    def actions():
        query = matching_mentions_query(registered.vector, registered.min_score)
        for hit in _scan(client, index, query):
            positions, complete = matched_positions(hit)
            if not complete:
                positions = _positions_from_source(client, index, hit["_id"], registered)
            counted["mentions"] += len(positions)
            yield script_action(index, hit["_id"], ADD_TYPE_SCRIPT, {"type": registered.name, "positions": positions})

    documents = _apply(client, actions())
    client.indices.refresh(index=index)
    return TagReport(registered.name, documents, counted["mentions"])


def untag_type(client, index: str, name: str) -> TagReport:
    """Remove ``name`` from every mention's types."""
    counted = {"mentions": 0}

    def actions():
        for hit in _scan(client, index, tagged_mentions_query(name), source=[TYPES_FIELD]):
            counted["mentions"] += sum(name in _listed(mention.get("types"))
                                       for mention in hit["_source"].get(MENTIONS_PATH, []))
            yield script_action(index, hit["_id"], REMOVE_TYPE_SCRIPT, {"type": name})

    documents = _apply(client, actions())
    client.indices.refresh(index=index)
    return TagReport(name, documents, counted["mentions"])


def _listed(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


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
