"""The type-vector cache: in memory (NerOs), then on disk under the embedder's identity (TypeVectorCache)."""

from __future__ import annotations

import numpy as np
import pytest

from ner_os.client import NerOs
from ner_os.config import Settings
from ner_os.encoder.export import INT8_RECIPE
from ner_os.mentions.cache import TypeVectorCache, cached_type_vector, type_vector_cache

pytestmark = pytest.mark.unit

DIM = 4


class CountingEmbedder:
    """Stands in for a MentionEmbedder: a vector per description, counting the descriptions it embedded."""

    def __init__(self, head: str = "h1", dim: int = DIM):
        self.head, self.dim, self.embedded = head, dim, []

    def identity(self):
        return {"profile": "p", "model": "m", "layer": 1, "d_v": self.dim, "head": self.head, "dim": self.dim}

    def embed_type(self, description):
        self.embedded.append(description)
        vector = np.arange(1, self.dim + 1, dtype=np.float32) ** (1 + len(description.strip()) % 3)
        vector = vector[::-1] if self.head == "h2" else vector
        return vector / np.linalg.norm(vector)


def client(tmp_path, embedder, **flags):
    return NerOs(Settings.resolve(cache_dir=str(tmp_path), opensearch_url="http://127.0.0.1:9", **flags),
                 embedder=embedder)


def test_a_new_client_reads_the_vector_from_disk(tmp_path):
    first = CountingEmbedder()
    want = client(tmp_path, first).type_vector("dinosaur")
    assert first.embedded == ["dinosaur"]
    second = CountingEmbedder()
    ner = client(tmp_path, second)
    got = ner.type_vector("dinosaur")
    assert second.embedded == [] and np.array_equal(got, want) and got.dtype == np.float32
    ner.type_vector("dinosaur")  # the in-memory level answers
    assert ner.type_vector_cache.get("dinosaur") is not None
    # read as embed_type reads it: the stripped words after one space
    assert np.array_equal(client(tmp_path, second).type_vector("  dinosaur "), want) and second.embedded == []


def test_another_identity_or_numerics_misses(tmp_path):
    client(tmp_path, CountingEmbedder()).type_vector("river")
    other_head = CountingEmbedder(head="h2")
    vector = client(tmp_path, other_head).type_vector("river")
    assert other_head.embedded == ["river"]
    assert not np.array_equal(vector, client(tmp_path, CountingEmbedder()).type_vector("river"))
    other_dtype = CountingEmbedder()
    client(tmp_path, other_dtype, dtype="fp16").type_vector("river")
    assert other_dtype.embedded == ["river"]


def test_the_encoders_own_numerics_key_the_cache_whatever_the_settings_say(tmp_path):
    """A client's embedder reads descriptions in the query numerics (int8 by default on a CPU) while the
    settings' ``dtype`` is the documents': the key is what the encoder computed in, an int8 recipe's version
    included."""

    class Encoder:
        def __init__(self, dtype):
            self.dtype = dtype

    def embedder(dtype):
        made = CountingEmbedder()
        made.encoder = Encoder(dtype)
        return made

    settings = Settings.resolve(cache_dir=str(tmp_path), dtype="fp32")
    assert type_vector_cache(settings, embedder("int8")).cache.identity["dtype"] == f"int8:{INT8_RECIPE['version']}"
    client(tmp_path, embedder("int8")).type_vector("river")
    fp32 = embedder("fp32")
    client(tmp_path, fp32).type_vector("river")
    assert fp32.embedded == ["river"]
    again = embedder("int8")
    client(tmp_path, again, dtype="fp16").type_vector("river")
    assert again.embedded == []


@pytest.mark.parametrize("damage", [b"", b"\x93NUMPY garbage", "wrong shape", "not finite", "float64"])
def test_a_damaged_file_is_ignored_and_rewritten(tmp_path, damage):
    embedder = CountingEmbedder()
    want = client(tmp_path, embedder).type_vector("lake")
    cache = type_vector_cache(Settings.resolve(cache_dir=str(tmp_path)), embedder)
    path = cache.entry("lake") / "vector.npy"
    if isinstance(damage, bytes):
        path.write_bytes(damage)
    else:
        bad = {"wrong shape": np.ones(DIM + 1, np.float32), "not finite": np.full(DIM, np.nan, np.float32),
               "float64": np.ones(DIM, np.float64)}[damage]
        np.save(path, bad)
    fresh = CountingEmbedder()
    assert np.array_equal(client(tmp_path, fresh).type_vector("lake"), want) and fresh.embedded == ["lake"]
    assert np.array_equal(np.load(path), want)  # rewritten


def test_no_identity_no_disk_cache(tmp_path):
    class Anonymous:
        dim = DIM

        def embed_type(self, description):
            return np.ones(DIM, np.float32) / 2

    assert type_vector_cache(Settings.resolve(cache_dir=str(tmp_path)), Anonymous()) is None
    assert client(tmp_path, Anonymous()).type_vector("x").shape == (DIM,)
    assert not (tmp_path / "type-vectors").exists()


def test_an_unwritable_cache_still_answers(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    cache = TypeVectorCache(blocked, CountingEmbedder().identity())
    embedder = CountingEmbedder()
    assert cached_type_vector(embedder, "sea", cache).shape == (DIM,) and embedder.embedded == ["sea"]
    assert cache.get("sea") is None
