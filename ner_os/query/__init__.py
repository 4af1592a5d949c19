"""Type queries: what to ask (model, filters, bodies), how to read the answers (results), and the
order of the requests (steps). No I/O here: :mod:`ner_os.store.search` sends the requests.

    model    TypeQuery, TypeResults, TypeHit, MentionMatch, NeuralText (words the cluster embeds), the query limits
    filters  filter_clause, parse_filter_args
    bodies   the k-NN, BM25, hybrid, page and ranking bodies; Dev Tools request lines
    results  parse_mentions, ranking, rrf_fuse
    steps    type_search_steps, dsl_request (the generator a client drives), drive
"""

from ner_os.fields import (DOC_ID_FIELD, MAX_INNER_HITS, MAX_WINDOW, MENTIONS_PATH, SOURCE_WITHOUT_VECTORS,
                           TEXT_FIELD, VECTOR_FIELD)
from ner_os.query.bodies import (bm25_query, bm25_search_body, hybrid_search_body, knn_clause, knn_search_body,
                                 nested_knn_query, page_body, ranking_body, search_request_line, template_params,
                                 template_request_line)
from ner_os.query.filters import filter_clause, parse_filter_args
from ner_os.query.model import (DEFAULT_DEPTH, MENTION_MARGIN, RRF_RANK_CONSTANT, MentionMatch, NeuralText, QueryVector,
                                TypeHit, TypeQuery, TypeResults)
from ner_os.query.results import hit_id, parse_mentions, ranked_hits, ranking, rrf_fuse, within_margin
from ner_os.query.steps import (MultiSearchRequest, SearchRequest, drive, dsl_request, hybrid_pipeline,
                                type_search_steps)

__all__ = [
    "DOC_ID_FIELD", "MAX_INNER_HITS", "MAX_WINDOW", "MENTIONS_PATH", "SOURCE_WITHOUT_VECTORS", "TEXT_FIELD",
    "VECTOR_FIELD", "DEFAULT_DEPTH", "MENTION_MARGIN", "RRF_RANK_CONSTANT",
    "MentionMatch", "NeuralText", "QueryVector", "TypeHit", "TypeQuery", "TypeResults", "SearchRequest", "MultiSearchRequest",
    "filter_clause", "parse_filter_args",
    "bm25_query", "bm25_search_body", "hybrid_search_body", "knn_clause", "knn_search_body", "nested_knn_query",
    "page_body", "ranking_body", "search_request_line", "template_params", "template_request_line",
    "hit_id", "parse_mentions", "ranked_hits", "ranking", "rrf_fuse", "within_margin",
    "drive", "dsl_request", "hybrid_pipeline", "type_search_steps",
]
