"""Dev retrieval on cached vectors: rank documents for each type by their best mention, exactly.

A document is relevant to a type when it holds a gold mention of it; the type's query is its
description through the same encoder (and head), or, as a ceiling, the centroid of its mentions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from ner_os.evaluation.metrics import ExactRanker, RetrievalReport, evaluate as score_rankings
from ner_os.head import ProjectionHead, l2_normalise
from ner_os.training.vectors import MentionVectors

def project(head: ProjectionHead | None, raw: np.ndarray, role: str = "mention") -> np.ndarray:
    """Raw value vectors -> unit vectors: through ``head`` in ``role``, or L2-normalised when None."""
    return head.project(raw, role) if head is not None else l2_normalise(raw)


@dataclass
class RetrievalTask:
    """Rank documents for each query type by their best mention; relevant = holds a gold mention of it."""

    mentions: MentionVectors  # the mention pool searched (gold or detected spans); sentence_ids = documents
    relevant_docs: dict[str, np.ndarray]

    def evaluate(self, layer: int, query_vectors: Mapping[str, np.ndarray],
                 project: Callable[[np.ndarray], np.ndarray] | None = None) -> RetrievalReport:
        """Exact cosine search (:class:`ner_os.evaluation.metrics.ExactRanker`) -> a ``RetrievalReport``."""
        project = project or l2_normalise
        ranker = ExactRanker(project(self.mentions.vectors[layer]), [str(d) for d in self.mentions.sentence_ids])
        labels = sorted(query_vectors)
        rankings = ranker.rank_many(np.stack([query_vectors[label] for label in labels]), top_n=ranker.n_documents)
        relevance = {label: {str(d) for d in self.relevant_docs[label]} for label in labels}
        return score_rankings({label: ranking.doc_ids for label, ranking in zip(labels, rankings)}, relevance)


def relevant_documents(gold: MentionVectors, types: Iterable[str]) -> dict[str, np.ndarray]:
    names = gold.label_of()
    out = {}
    for label in types:
        rows = np.asarray([name == label for name in names], dtype=bool)
        out[label] = np.unique(gold.sentence_ids[rows])
    return out



def dev_tasks(mentions: MentionVectors, dev_sentences: np.ndarray, dev_types: Sequence[str]) -> dict[str, RetrievalTask]:
    """Dev retrieval over ``dev_sentences`` (indices into the texts of ``mentions``), for the dev types.

    ``dev_only``: the pool holds only dev-type mentions (like the gold-span test, where only
    unseen types are labelled); ``dev_all``: every gold mention of those sentences, train types
    included (like detected spans, where seen types sit among the candidates).
    """
    dev_rows = np.flatnonzero(np.isin(mentions.sentence_ids, dev_sentences))
    local = {int(s): i for i, s in enumerate(dev_sentences)}
    pool = mentions.subset(dev_rows)
    pool.sentence_ids = np.asarray([local[int(s)] for s in pool.sentence_ids], dtype=np.int64)
    relevant = relevant_documents(pool, dev_types)
    of_dev_type = np.flatnonzero(np.isin(np.asarray(pool.label_of(), dtype=object), dev_types))
    return {"dev_only": RetrievalTask(pool.subset(of_dev_type), relevant), "dev_all": RetrievalTask(pool, relevant)}


def dev_evaluator(tasks: Mapping[str, RetrievalTask], layer: int, dev_types: Sequence[str], raw_queries: np.ndarray,
                  centroid_queries: bool = False) -> Callable[[ProjectionHead | None], dict[str, float]]:
    """Dev retrieval for a head (None: raw vectors), queried by ``raw_queries`` (the dev types' descriptions).

    ``centroid_queries``: queried instead by the mean of each dev type's projected gold mentions
    -- not a query anyone could write, but the ceiling of placing descriptions in this space.
    ``tasks``: :func:`dev_tasks`; the score ``dev`` is the mean R-Precision over them.
    """
    dev_types = list(dev_types)
    gold = tasks["dev_only"].mentions
    gold_labels = np.asarray(gold.label_of(), dtype=object)

    def queries_for(head: ProjectionHead | None) -> dict[str, np.ndarray]:
        if not centroid_queries:
            return dict(zip(dev_types, project(head, raw_queries, "query")))
        vectors = project(head, gold.vectors[layer])
        return {label: l2_normalise(vectors[gold_labels == label].mean(axis=0)) for label in dev_types}

    def evaluate(head: ProjectionHead | None) -> dict[str, float]:
        queries = queries_for(head)
        scores = {name: task.evaluate(layer, queries, lambda x: project(head, x)).macro["r_precision"]
                  for name, task in tasks.items()}
        scores["dev"] = float(np.mean(list(scores.values())))
        return scores

    return evaluate
