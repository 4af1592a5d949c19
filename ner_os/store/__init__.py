"""The store: the only code that talks to OpenSearch (importing it imports opensearchpy).

``connection`` (the client, reachability, plugins, error wording), ``schema`` (templates, search
pipelines, creating and checking the document index), ``bulk`` (bulk writes and their retry
policy), ``types_index`` (registered-type records, tagging and untagging), ``search`` (every read
request), ``local_node`` (the local single-node cluster).
"""

from ner_os.store.bulk import BulkFailure, BulkResult, bulk_index, refresh, write_documents
from ner_os.store.connection import (client_from_settings, cluster_plugins, has_knn, has_neural_search,
                                     require_knn, wait_until_reachable)
from ner_os.store.schema import (TemplateNames, check_dimension, check_vectors, create_index, delete_index,
                                 index_exists, index_vector_dimension, index_vectors, install_templates,
                                 pipeline_name, remove_templates)
from ner_os.store.types_index import (delete_type_record, get_type, read_types, register, store_type,
                                      tagger_for_index, unregister)

__all__ = [
    "BulkFailure", "BulkResult", "bulk_index", "refresh", "write_documents",
    "client_from_settings", "cluster_plugins", "has_knn", "has_neural_search", "require_knn", "wait_until_reachable",
    "TemplateNames", "check_dimension", "check_vectors", "create_index", "delete_index", "index_exists",
    "index_vector_dimension", "index_vectors", "install_templates", "pipeline_name", "remove_templates",
    "delete_type_record", "get_type", "read_types", "register", "store_type", "tagger_for_index", "unregister",
]
