"""The evaluation stage: retrieval quality of ner-os against BM25 and a sentence embedder.

``readers`` (BIO/CoNLL files, the name map), ``metrics`` (R-Precision, MAP, exact ranking, span
scores), ``baselines`` (BM25 and MiniLM bodies), ``plan`` (systems and span sources), ``corpus``
(documents and types), ``session`` (the indexes and rankings of one eval), ``results``,
``report`` (markdown, JSON, chart), ``run`` (:func:`ner_os.evaluation.run.evaluate`, imported from
there: it brings the loader and the OpenSearch client with it).
"""

from ner_os.evaluation.corpus import EvalDocument, EvalType, eval_types, loader_records, ranking_depth, read_corpus
from ner_os.evaluation.metrics import ExactRanker, RetrievalReport, span_scores
from ner_os.evaluation.plan import DEFAULT_SYSTEMS, SPAN_SOURCES, SYSTEMS, RunSpec, parse_choices, plan_runs
from ner_os.evaluation.readers import TYPE_NAMES_FILE, GoldMention, Sentence, read_bio, read_type_names
from ner_os.evaluation.results import EvalResult, RunResult

__all__ = [
    "EvalDocument", "EvalType", "eval_types", "loader_records", "ranking_depth", "read_corpus", "ExactRanker",
    "RetrievalReport", "span_scores", "DEFAULT_SYSTEMS", "SPAN_SOURCES", "SYSTEMS", "RunSpec", "parse_choices",
    "plan_runs", "TYPE_NAMES_FILE", "GoldMention", "Sentence", "read_bio", "read_type_names", "EvalResult",
    "RunResult",
]
