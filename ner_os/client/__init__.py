"""The Python API: ``NerOs`` (cluster connection, encoder and head, type-vector cache) and the
process-wide :func:`search_type` built on it.

    from ner_os import NerOs
    ner = NerOs(opensearch_url="http://localhost:9200")
    for hit in ner.search_type("dinosaur", size=5):
        print(hit.score, hit.mentions[0].surface, hit.text)
"""

from ner_os.client.dimension import head_output_dimension
from ner_os.client.neros import EMBEDDINGS, FUSIONS, TYPE_VECTOR_CACHE_SIZE, InstalledTemplates, NerOs, check_embedding
from ner_os.client.shared import search_type, search_types, shared_client
from ner_os.client.async_client import AsyncNerOs
from ner_os.client.training import TrainedCorpus, TrainedHead, train_head, train_on_corpus

__all__ = ["AsyncNerOs", "search_types", "EMBEDDINGS", "FUSIONS", "TYPE_VECTOR_CACHE_SIZE", "InstalledTemplates", "NerOs", "TrainedHead",
           "check_embedding", "head_output_dimension", "search_type", "shared_client", "train_head",
           "TrainedCorpus", "train_on_corpus"]
