"""Type queries: what to ask (model, filters, bodies), how to read the answers (results), and the
order of the requests (steps). No I/O here: :mod:`ner_os.store.search` sends the requests.

    model    TypeQuery, TypeResults, TypeHit, MentionMatch, NeuralText (words the cluster embeds), the query limits
    filters  filter_clause, parse_filter_args
    bodies   the k-NN, BM25, hybrid, page and ranking bodies; Dev Tools request lines
    results  parse_mentions, ranking, rrf_fuse
    steps    type_search_steps, dsl_request (the generator a client drives), drive, drive_async, batch_steps
    combined CombinedQuery, CombinedResults: all_of / any_of / none_of in one bool query
    thresholds Threshold, parse_threshold: bare or relative (percentile, sigma) score thresholds
    expansion phrasings, mean_direction: "river in Africa | African river", one type said several ways
    examples  MentionRef, parse_example, combine: a type given by examples (query by example)
    feedback  rocchio, marked_hits: hits marked right or wrong refine the type vector
"""

from ner_os.fields import (DOC_ID_FIELD, MAX_INNER_HITS, MAX_WINDOW, MENTIONS_PATH, SOURCE_WITHOUT_VECTORS,
                           TEXT_FIELD, VECTOR_FIELD)
from ner_os.query.bodies import (bm25_query, bm25_search_body, hybrid_search_body, knn_clause, knn_search_body,
                                 nested_knn_query, page_body, ranking_body, search_request_line, template_params,
                                 template_request_line)
from ner_os.query.filters import filter_clause, parse_filter_args
from ner_os.query.model import (DEFAULT_DEPTH, KNN_CANDIDATES, MENTION_MARGIN, RANK_KINDS, RRF_RANK_CONSTANT, SCORE_SCALE, MentionMatch, NeuralText, QueryVector,
                                TypeHit, TypeQuery, TypeResults)
from ner_os.query.results import hit_id, parse_mentions, ranked_hits, ranking, rrf_fuse, within_margin
from ner_os.query.steps import (BatchRequest, MultiSearchRequest, SearchRequest, Steps, batch_steps, drive, drive_async,
                                dsl_request, hybrid_pipeline, type_search_steps, with_vector)
from ner_os.query.combined import (CombinedHit, CombinedQuery, CombinedResults, TypeClause, brute_force_ids,
                                   combined_body, combined_search_steps)
from ner_os.query.thresholds import (DEFAULT_TAG_THRESHOLD, DEFAULT_THRESHOLD, TAG_FALLBACK, Threshold, parse_threshold,
                                     threshold_steps)
from ner_os.query.expansion import EXPANSION_SEPARATOR, is_expanded, mean_direction, phrasings
from ner_os.query.examples import (DESCRIPTION_WEIGHT, HitRef, MentionRef, combine, mention_ref, mention_vector_steps,
                                   parse_example, parse_hit_numbers, query_label, split_examples)
from ner_os.query.feedback import RIGHT_WEIGHT, WRONG_WEIGHT, check_marks, marked_hits, rocchio

__all__ = [
    "DOC_ID_FIELD", "MAX_INNER_HITS", "MAX_WINDOW", "MENTIONS_PATH", "SOURCE_WITHOUT_VECTORS", "TEXT_FIELD",
    "VECTOR_FIELD", "DEFAULT_DEPTH", "KNN_CANDIDATES", "MENTION_MARGIN", "RRF_RANK_CONSTANT",
    "MentionMatch", "NeuralText", "QueryVector", "TypeHit", "TypeQuery", "TypeResults", "SearchRequest", "MultiSearchRequest",
    "filter_clause", "parse_filter_args",
    "bm25_query", "bm25_search_body", "hybrid_search_body", "knn_clause", "knn_search_body", "nested_knn_query",
    "page_body", "ranking_body", "search_request_line", "template_params", "template_request_line",
    "hit_id", "parse_mentions", "ranked_hits", "ranking", "rrf_fuse", "within_margin",
    "drive", "dsl_request", "hybrid_pipeline", "type_search_steps",
    "BatchRequest", "Steps", "batch_steps", "drive_async", "with_vector", "RANK_KINDS", "SCORE_SCALE",
    "CombinedHit", "CombinedQuery", "CombinedResults", "TypeClause", "brute_force_ids", "combined_body",
    "combined_search_steps", "EXPANSION_SEPARATOR", "is_expanded", "mean_direction", "phrasings",
    "DEFAULT_TAG_THRESHOLD", "DEFAULT_THRESHOLD", "TAG_FALLBACK", "Threshold", "parse_threshold", "threshold_steps",
    "DESCRIPTION_WEIGHT", "HitRef", "MentionRef", "combine", "mention_ref", "mention_vector_steps", "parse_example",
    "parse_hit_numbers", "query_label", "split_examples", "RIGHT_WEIGHT", "WRONG_WEIGHT", "check_marks", "marked_hits",
    "rocchio",
]
