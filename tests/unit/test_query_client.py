"""NerOs without a cluster: the type-vector cache and the checks that run before any request."""

import numpy as np
import pytest

from ner_os.client import TYPE_VECTOR_CACHE_SIZE, NerOs
from ner_os.config import Settings
from ner_os.errors import NerOsError

pytestmark = pytest.mark.unit


class CountingEmbedder:
    dim = 4

    def __init__(self):
        self.calls = []

    def embed_type(self, description):
        self.calls.append(description)
        vector = np.zeros(self.dim, dtype=np.float32)
        vector[len(self.calls) % self.dim] = 1.0
        return vector


class NoCluster:
    """Any attribute access means a request was about to be sent."""

    def __getattr__(self, name):
        raise AssertionError(f"the cluster was used ({name}) before the input was checked")


def make(embedder=None):
    return NerOs(Settings.resolve(opensearch_url="http://127.0.0.1:1"), opensearch=NoCluster(),
                 embedder=embedder or CountingEmbedder())


def test_type_vectors_are_computed_once_per_description():
    embedder = CountingEmbedder()
    ner = make(embedder)
    first = ner.type_vector("dinosaur")
    assert ner.type_vector("  dinosaur ") is first
    ner.type_vector("river")
    assert embedder.calls == ["dinosaur", "river"]
    assert not first.flags.writeable
    ner.clear_type_vectors()
    ner.type_vector("dinosaur")
    assert embedder.calls == ["dinosaur", "river", "dinosaur"]


def test_the_cache_forgets_the_least_recently_used_description():
    embedder = CountingEmbedder()
    ner = make(embedder)
    for number in range(TYPE_VECTOR_CACHE_SIZE + 1):
        ner.type_vector(f"type {number}")
    ner.type_vector(f"type {TYPE_VECTOR_CACHE_SIZE}")
    assert len(embedder.calls) == TYPE_VECTOR_CACHE_SIZE + 1
    ner.type_vector("type 0")
    assert len(embedder.calls) == TYPE_VECTOR_CACHE_SIZE + 2


@pytest.mark.parametrize("kwargs, message", [
    ({"description": "   "}, "empty"),
    ({"description": "x" * 300}, "at most"),
    ({"description": "x", "size": 0}, "size"),
    ({"description": "x", "filters": {"mentions.types": "a"}}, "document fields only"),
])
def test_bad_queries_fail_before_the_model_or_the_cluster(kwargs, message):
    embedder = CountingEmbedder()
    with pytest.raises(NerOsError, match=message):
        make(embedder).search_type(**kwargs)
    assert embedder.calls == []


def test_unknown_fusion_is_refused():
    with pytest.raises(NerOsError, match="fusion"):
        NerOs(Settings.resolve(), fusion="both")


def test_settings_and_flags_combine():
    ner = NerOs(Settings.resolve(index="a"), index="b", opensearch=NoCluster())
    assert ner.settings.index == "b" and ner.index_name() == "b" and ner.index_name("c") == "c"
