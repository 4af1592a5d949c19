"""Hostile input and interrupted loads against the real node (issue #18, defects 1, 4 and 5): an input
that is no file creates nothing, a truncated gzip loads what it holds and resumes once restored, and
the checkpoint keeps up with what OpenSearch acknowledged, so that a resume re-encodes none of it.
Every test ends by counting the documents lost and duplicated."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import pytest
from opensearchpy.helpers import scan

from ner_os.config import Settings
from ner_os.errors import BrokenInputError, ConfigError
from ner_os.loader import api as loader_api
from ner_os.loader import load
from ner_os.loader.batches import WINDOW_BUDGETS
from ner_os.loader.writer import BulkWriter
from ner_os.mentions.embedder import MentionEmbedder
from ner_os.spans import NoDetector
from tiny_load import tiny_embedder, tiny_lines

pytestmark = pytest.mark.integration

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))

class CountingEmbedder(MentionEmbedder):
    """The tiny model's embedder, noting every text it encodes (shared by the loader's copies of it)."""

    def __init__(self, inner: MentionEmbedder):
        super().__init__(inner.encoder, inner.head)
        self.encoded: list[str] = []

    def embed(self, texts, spans, role="mention"):
        self.encoded.extend(texts)
        return super().embed(texts, spans, role)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_embedder(tmp_path_factory)


def corpus(count: int) -> list[str]:
    return tiny_lines(count)


def settings_for(url, index, data_dir, **options) -> Settings:
    return Settings.resolve(env={}, opensearch_url=url, index=index, data_dir=str(data_dir), **options)


def run(path, url, index, data_dir, embedder, batch_tokens=64):
    return load(path, settings_for(url, index, data_dir, batch_tokens=batch_tokens), embedder=embedder,
                detector=NoDetector(), progress=False)


def lost_and_duplicated(client, index, lines: list[str]) -> tuple[int, int]:
    """(documents of ``lines`` missing or not whole, documents stored more than once or not from ``lines``)."""
    client.indices.refresh(index=index)
    stored = [(hit["_id"], hit["_source"]) for hit in scan(client, index=index, query={"query": {"match_all": {}}})]
    expected = {json.loads(line)["id"]: json.loads(line) for line in lines}
    whole = set()
    for doc_id, source in stored:
        record = expected.get(doc_id)
        if record and source["text"] == record["text"] and \
                [(m["start"], m["end"], m["surface"]) for m in source["mentions"]] == \
                [(m["start"], m["end"], record["text"][m["start"]:m["end"]]) for m in record["mentions"]]:
            whole.add(doc_id)
    return len(set(expected) - whole), len(stored) - len(whole)


# --- defect 5: nothing is made for an input that is no file ----------------------------------------


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_an_input_that_is_no_file_creates_no_index_and_loads_no_model(client, opensearch_url, fresh_index,
                                                                      tmp_path, monkeypatch, kind):
    built = []
    monkeypatch.setattr(MentionEmbedder, "from_settings", classmethod(lambda cls, *a, **k: built.append(a)))
    monkeypatch.setattr(loader_api, "default_detector", lambda *a, **k: built.append("detector"))
    path = tmp_path / "corpus.jsonl"
    if kind == "directory":
        path.mkdir()
    with pytest.raises(ConfigError, match="is a directory" if kind == "directory" else "no such file"):
        load(path, settings_for(opensearch_url, fresh_index, tmp_path / "data"), progress=False)
    assert built == []
    assert not client.indices.exists(index=fresh_index)
    assert not client.indices.exists_index_template(name=fresh_index)


# --- defect 1: a truncated gzip, then the whole file --------------------------------------------


def test_a_truncated_gzip_loads_its_whole_lines_and_a_rerun_on_the_restored_file_completes(
        client, opensearch_url, fresh_index, tiny, tmp_path):
    lines = corpus(300)
    whole = gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0)
    path = tmp_path / "corpus.jsonl.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(BrokenInputError) as raised:
        run(path, opensearch_url, fresh_index, tmp_path, tiny)
    loaded = raised.value.summary.documents
    assert 0 < loaded < len(lines)
    assert lost_and_duplicated(client, fresh_index, lines[:loaded]) == (0, 0)
    assert client.count(index=fresh_index)["count"] == loaded  # nothing of the cut-off line
    path.write_bytes(whole)  # restored
    resumed = run(path, opensearch_url, fresh_index, tmp_path, tiny)
    assert resumed.resumed_after_line == loaded and resumed.run_documents == len(lines) - loaded
    assert lost_and_duplicated(client, fresh_index, lines) == (0, 0)


# --- defect 4: the checkpoint keeps up with what OpenSearch acknowledged ---------------------------


class Stopped(Exception):
    """The load stopped right after an acknowledged write, as a kill at that moment would leave it."""


def test_a_resume_re_encodes_nothing_that_opensearch_acknowledged(client, opensearch_url, fresh_index, tiny,
                                                                  tmp_path, monkeypatch):
    lines = corpus(300)
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(lines) + "\n")
    batch_tokens, stop_after = 64, 120
    acknowledged: list[str] = []
    real_write = BulkWriter.write

    def write_then_stop(self, batch):
        real_write(self, batch)  # written, acknowledged, settled, checkpoint saved
        acknowledged.extend(document.text for document in batch.documents)
        if len(acknowledged) >= stop_after:
            raise Stopped()

    monkeypatch.setattr(BulkWriter, "write", write_then_stop)
    first = CountingEmbedder(tiny)
    with pytest.raises(Stopped):
        run(path, opensearch_url, fresh_index, tmp_path, first, batch_tokens)
    monkeypatch.setattr(BulkWriter, "write", real_write)
    client.indices.refresh(index=fresh_index)
    assert client.count(index=fresh_index)["count"] == len(acknowledged) >= stop_after

    second = CountingEmbedder(tiny)
    resumed = run(path, opensearch_url, fresh_index, tmp_path, second, batch_tokens)
    again = [text for text in second.encoded if text in set(first.encoded)]
    redone = set(again) & set(acknowledged)
    assert not redone, (f"the resume re-encoded {len(redone)} of the {len(acknowledged)} documents OpenSearch had "
                        f"acknowledged ({len(second.encoded)} encoded in all)")
    tokens = sum(len(tiny.encoder.tokenize(text)[0]) + 1 for text in again)
    assert tokens <= WINDOW_BUDGETS * batch_tokens  # at most one sort window's worth
    assert resumed.documents == len(lines) and resumed.run_documents == len(lines) - len(acknowledged)
    assert lost_and_duplicated(client, fresh_index, lines) == (0, 0)
