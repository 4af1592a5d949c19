"""The training stage: Few-NERD data, cached mention vectors, the head's training loop, dev retrieval.

``data`` (sentences, dev types, the split), ``vectors`` (per-mention value vectors through
:class:`ner_os.mentions.embedder.MentionEmbedder`, cached by :mod:`ner_os.mentions.cache`), ``fit``
(TrainConfig, train_head: torch, imported only when training runs), ``dev`` (exact dev retrieval),
``trainset`` (FewNerdTrainSet), ``run`` (load_train_set, train_on_fewnerd), ``corpus`` (train_on_corpus: a
labelled file of one's own), ``corpus_spans`` (the span detector on that file), ``card`` (its model card),
``spans`` (the span detector's training).
"""

from ner_os.training.data import (
    TEST_FILE, TRAIN_FILES, TYPE_NAMES_FILE, DataPlan, LabelledText, SentenceSplit, choose_dev_types,
    read_sentences, split_sentences,
)
from ner_os.training.dev import RetrievalTask, project, relevant_documents
from ner_os.training.fit import TrainConfig, TrainingData, TrainResult, confusable_pairs, ridge_map, train_head
from ner_os.training.run import encoder_factory, load_train_set, train_on_fewnerd
from ner_os.training.trainset import FewNerdTrainSet
from ner_os.training.vectors import (
    UNLABELLED, MentionVectors, description_texts, mention_phrases, mention_vector_cache, mention_vectors,
)

__all__ = [
    "TEST_FILE", "TRAIN_FILES", "TYPE_NAMES_FILE", "DataPlan", "LabelledText", "SentenceSplit", "choose_dev_types",
    "read_sentences", "split_sentences", "RetrievalTask", "project", "relevant_documents", "TrainConfig",
    "TrainingData", "TrainResult", "confusable_pairs", "ridge_map", "train_head", "encoder_factory",
    "load_train_set", "train_on_fewnerd", "FewNerdTrainSet", "UNLABELLED", "MentionVectors", "description_texts",
    "mention_phrases", "mention_vector_cache", "mention_vectors",
]
