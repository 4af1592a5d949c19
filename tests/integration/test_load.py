"""The loader against a real OpenSearch node, a fresh index per test.

The loader mechanics run with a tiny random-initialised model loaded through the real Encoder code
(the encoder tests' builder); one test at the end loads real sentences with the real default model.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from opensearchpy import OpenSearch
from opensearchpy.helpers import scan

from ner_os.store import schema
from ner_os.client import NerOs
from ner_os.config import Settings
from ner_os.errors import ConfigError
from ner_os.fields import stored_vector
from ner_os.loader import load
from ner_os.loader.target import ClusterTarget
from ner_os.spans import Span, SpanDetector

pytestmark = pytest.mark.integration

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_encoder_tiny import tiny_model_dir  # noqa: E402  (the tiny random models of the encoder tests)

TINY_LAYER = 2
FEWNERD_TEST = Path(__file__).resolve().parents[3] / "shared" / "data" / "fewnerd-inter" / "inter_test.txt"
WORDS = ("Ada Lovelace met Charles Babbage in London while the Nile flows north through Egypt and "
         "Tyrannosaurus rex roamed Montana").split()


class CapitalisedWords(SpanDetector):
    """Every capitalised word is a mention: deterministic and fast, for the loader's mechanics."""

    name = "capitalised-words"

    def detect(self, texts):
        found = []
        for text in texts:
            spans, start = [], 0
            for word in text.split(" "):
                if word[:1].isupper():
                    spans.append(Span(start, start + len(word)))
                start += len(word) + 1
            found.append(spans)
        return found


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    return tiny_model_dir("llama", tmp_path_factory)


@pytest.fixture(scope="module")
def embedder(tiny_model, tmp_path_factory):
    from ner_os.encoder import Encoder
    from ner_os.mentions.embedder import MentionEmbedder

    encoder = Encoder.load("custom", model=tiny_model, layer=TINY_LAYER, backend="torch",
                           cache_dir=tmp_path_factory.getbasetemp())
    return MentionEmbedder(encoder, None)


@pytest.fixture
def second_index(client, fresh_index):
    """Another fresh index, for comparing two ways of loading the same corpus."""
    name = f"{fresh_index}-b"
    yield name
    client.indices.delete(index=name, ignore_unavailable=True)
    schema.remove_templates(client, name)


def corpus_lines(count: int, seed: int = 0) -> list[str]:
    """Documents of varied length; every third gives its mentions, the others leave them to the detector."""
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(count):
        words = list(rng.choice(WORDS, size=int(rng.integers(2, 9))))
        text = " ".join(words) + f" number {i}."
        record = {"id": f"doc-{i}", "text": text, "source": "test", "n": i}
        if i % 3 == 0:
            record["mentions"] = [{"start": 0, "end": len(words[0])}]
        lines.append(json.dumps(record))
    return lines


def write_corpus(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run(path, url, index, data_dir, embedder, index_shards=None, **options):
    settings = Settings.resolve(opensearch_url=url, index=index, data_dir=str(data_dir), index_shards=index_shards)
    options.setdefault("detector", CapitalisedWords())
    options.setdefault("batch_tokens", 512)
    return load(path, settings.replace(batch_tokens=options.pop("batch_tokens")), embedder=embedder,
                progress=False, **options)


@contextlib.contextmanager
def recorded_paths(client):
    """The paths of the requests ``client`` sends inside the block (its real transport, only watched)."""
    paths, send = [], client.transport.perform_request

    def watched(method, url, *args, **kwargs):
        paths.append(url)
        return send(method, url, *args, **kwargs)

    client.transport.perform_request = watched
    try:
        yield paths
    finally:
        client.transport.perform_request = send


def snapshot(client, index) -> dict[str, dict]:
    """Every document by id: text, metadata, and its mentions (offsets, surface, and ``vector`` read
    back from the stored bytes: the stored source leaves the float list out)."""
    client.indices.refresh(index=index)
    documents = {hit["_id"]: hit["_source"] for hit in scan(client, index=index, query={"query": {"match_all": {}}})}
    for source in documents.values():
        for mention in source["mentions"]:
            assert "vector" not in mention
            mention["vector"] = stored_vector(mention).tolist()
    return documents


def assert_same_index(left: dict, right: dict) -> None:
    assert left.keys() == right.keys()
    for doc_id, source in left.items():
        other = right[doc_id]
        assert {k: v for k, v in source.items() if k != "mentions"} == \
            {k: v for k, v in other.items() if k != "mentions"}
        assert [(m["start"], m["end"], m["surface"]) for m in source["mentions"]] == \
            [(m["start"], m["end"], m["surface"]) for m in other["mentions"]]
        for mine, theirs in zip(source["mentions"], other["mentions"]):
            # batches differ between the runs: padding changes the float sums in the last bits only
            np.testing.assert_allclose(mine["vector"], theirs["vector"], atol=1e-4)


def expected_mentions(lines: list[str]) -> int:
    detector = CapitalisedWords()
    total = 0
    for text in lines:
        record = json.loads(text)
        total += len(record["mentions"]) if "mentions" in record else len(detector.detect([record["text"]])[0])
    return total


def test_valid_lines_become_documents_and_spans_become_mentions(
        client, opensearch_url, fresh_index, embedder, tmp_path):
    lines = corpus_lines(60)
    summary = run(write_corpus(tmp_path / "corpus.jsonl", lines), opensearch_url, fresh_index, tmp_path, embedder)
    stored = snapshot(client, fresh_index)
    assert len(stored) == summary.documents == 60 and summary.rejected == 0
    assert sum(len(source["mentions"]) for source in stored.values()) == summary.mentions == expected_mentions(lines)
    source = stored["doc-7"]
    record = json.loads(lines[7])
    assert source["text"] == record["text"] and source["doc_id"] == "doc-7"
    assert source["metadata"] == {"source": "test", "n": 7}
    for mention in source["mentions"]:
        assert mention["surface"] == record["text"][mention["start"]:mention["end"]]
        assert len(mention["vector"]) == embedder.dim
        assert abs(np.linalg.norm(mention["vector"]) - 1) < 1e-4
    assert stored["doc-0"]["mentions"][0]["start"] == 0  # given offsets are kept as given
    nested = client.search(index=fresh_index, body={"size": 0, "query": {"nested": {
        "path": "mentions", "query": {"term": {"mentions.surface.keyword": "Egypt"}}}}})
    assert nested["hits"]["total"]["value"] == sum(
        any(m["surface"] == "Egypt" for m in s["mentions"]) for s in stored.values())


def test_a_long_document_is_chunked_for_the_model_and_stays_one_document(
        client, opensearch_url, fresh_index, embedder, tmp_path):
    words = [WORDS[i % len(WORDS)] for i in range(400)]  # thousands of tokens: several encoder windows
    text = " ".join(words)
    assert len(embedder.encoder.tokenize(text)[0]) > 4 * embedder.encoder.max_tokens
    line = json.dumps({"id": "long", "text": text})
    summary = run(write_corpus(tmp_path / "long.jsonl", [line]), opensearch_url, fresh_index, tmp_path, embedder)
    stored = snapshot(client, fresh_index)
    assert list(stored) == ["long"] and summary.documents == 1
    mentions = stored["long"]["mentions"]
    assert len(mentions) == summary.mentions == expected_mentions([line]) > 100
    assert mentions[-1]["end"] == len(text) and mentions[-1]["surface"] == words[-1]
    assert all(abs(np.linalg.norm(m["vector"]) - 1) < 1e-4 for m in mentions)


def test_loading_the_same_file_again_changes_nothing(client, opensearch_url, fresh_index, embedder, tmp_path):
    path = write_corpus(tmp_path / "corpus.jsonl", corpus_lines(40))
    run(path, opensearch_url, fresh_index, tmp_path, embedder)
    first = snapshot(client, fresh_index)
    again = run(path, opensearch_url, fresh_index, tmp_path, embedder, resume=False)
    assert again.run_documents == 40
    assert_same_index(snapshot(client, fresh_index), first)
    resumed = run(path, opensearch_url, fresh_index, tmp_path, embedder)  # the checkpoint says: all done
    assert resumed.run_documents == 0 and resumed.documents == 40 and resumed.resumed_after_line == 40
    assert client.count(index=fresh_index)["count"] == 40


def test_a_changed_document_replaces_its_old_mentions(client, opensearch_url, fresh_index, embedder, tmp_path):
    lines = corpus_lines(12)
    path = write_corpus(tmp_path / "corpus.jsonl", lines)
    run(path, opensearch_url, fresh_index, tmp_path, embedder)
    lines[5] = json.dumps({"id": "doc-5", "text": "Only Paris now", "mentions": [{"start": 5, "end": 10}]})
    write_corpus(path, lines)
    summary = run(path, opensearch_url, fresh_index, tmp_path, embedder)  # input changed: the checkpoint no longer fits
    assert summary.resumed_after_line == 0
    stored = snapshot(client, fresh_index)
    assert len(stored) == 12
    assert [(m["start"], m["end"], m["surface"]) for m in stored["doc-5"]["mentions"]] == [(5, 10, "Paris")]
    assert stored["doc-5"]["metadata"] == {}


class FailingAfter(OpenSearch):
    """The real client, made to stop the load at the first bulk request once ``documents`` were written."""

    def __init__(self, url, documents):
        super().__init__(hosts=[url])
        self.left = documents

    def bulk(self, body, *args, **kwargs):
        if self.left <= 0:
            raise KeyboardInterrupt("killed mid-load")
        self.left -= body.count("\n") // 2  # an action line and a document line each
        return super().bulk(*args, body=body, **kwargs)


def test_load_records_writes_the_documents_load_writes_from_the_same_records_as_jsonl(
        client, opensearch_url, fresh_index, second_index, embedder, tmp_path):
    from ner_os.loader import load_records

    lines = corpus_lines(40, seed=3)
    lines[11] = json.dumps({"text": ""})
    records = [json.loads(line) for line in lines]
    from_file = run(write_corpus(tmp_path / "corpus.jsonl", lines), opensearch_url, fresh_index, tmp_path / "a",
                    embedder)
    settings = Settings.resolve(opensearch_url=opensearch_url, index=second_index, data_dir=str(tmp_path / "b"),
                                batch_tokens=512)
    options = dict(embedder=embedder, detector=CapitalisedWords(), progress=False, rejects=tmp_path / "r.jsonl")
    from_records = load_records(records, settings, **options)
    assert (from_records.documents, from_records.mentions, from_records.rejected) == \
        (from_file.documents, from_file.mentions, 1)
    assert_same_index(snapshot(client, second_index), snapshot(client, fresh_index))
    assert json.loads((tmp_path / "r.jsonl").read_text())["record"] == 12
    again = load_records(records, settings, **options)  # a list can be read again: resumed, nothing left
    assert again.resumed_after_line == 40 and again.run_documents == 0 and again.documents == from_file.documents
    once = load_records(iter(records), settings, **options)  # a generator cannot: loaded again, same ids
    assert once.resumed_after_line == 0 and once.run_documents == from_file.documents
    assert_same_index(snapshot(client, second_index), snapshot(client, fresh_index))


def test_a_load_interrupted_midway_resumes_to_exactly_the_uninterrupted_index(
        client, opensearch_url, fresh_index, second_index, embedder, tmp_path):
    lines = corpus_lines(120)
    lines[30] = "{not json"
    lines[77] = json.dumps({"text": ""})
    path = write_corpus(tmp_path / "corpus.jsonl", lines)
    whole = run(path, opensearch_url, fresh_index, tmp_path / "a", embedder)
    with pytest.raises(KeyboardInterrupt):
        run(path, opensearch_url, second_index, tmp_path / "b", embedder, client=FailingAfter(opensearch_url, 60))
    client.indices.refresh(index=second_index)
    partial = client.count(index=second_index)["count"]
    assert 0 < partial < 118
    resumed = run(path, opensearch_url, second_index, tmp_path / "b", embedder)
    assert resumed.resumed_after_line > 0 and resumed.run_documents < 118
    assert (resumed.documents, resumed.mentions, resumed.rejected) == (whole.documents, whole.mentions, 2)
    assert_same_index(snapshot(client, second_index), snapshot(client, fresh_index))
    rejects = [json.loads(text)["line"] for text in (tmp_path / "corpus.rejects.jsonl").read_text().splitlines()]
    assert rejects == [31, 78]


def test_a_killed_cli_load_resumes_to_exactly_the_uninterrupted_index(
        client, opensearch_url, fresh_index, second_index, embedder, tiny_model, tmp_path):
    path = write_corpus(tmp_path / "corpus.jsonl", corpus_lines(300, seed=1))
    data_dir = tmp_path / "data"
    command = [sys.executable, "-c", "from ner_os.cli import main; main()", "load", str(path),
               "--url", opensearch_url, "--index", second_index, "--profile", "custom", "--model", tiny_model,
               "--layer", str(TINY_LAYER), "--backend", "torch",
               "--head", "none", "--batch-tokens", "128", "--no-progress"]
    environment = {**os.environ, "NER_OS_DATA_DIR": str(data_dir), "NER_OS_CACHE_DIR": str(tmp_path / "cache")}
    checkpoints = data_dir / "checkpoints" / second_index
    process = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and process.poll() is None:
            marks = [json.loads(p.read_text())["mark"]["line"] for p in checkpoints.glob("*.json")] \
                if checkpoints.is_dir() else []
            if marks and marks[0] > 0:
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
    finally:
        if process.poll() is None:
            process.kill()
        output = process.communicate()[0].decode()
    assert process.returncode == -signal.SIGKILL, f"the load ended before it could be killed:\n{output}"
    resumed = subprocess.run(command, env=environment, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resumed after line" in resumed.stdout
    # the same corpus in one uninterrupted run, with the same model and detector, in-process
    from ner_os.spans import detector_from_name

    run(path, opensearch_url, fresh_index, tmp_path / "whole", embedder, detector=detector_from_name("spacy"))
    assert_same_index(snapshot(client, second_index), snapshot(client, fresh_index))


def test_two_shards_together_equal_one_run(client, opensearch_url, fresh_index, second_index, embedder, tmp_path):
    lines = corpus_lines(50)
    lines[9] = "[1, 2]"
    path = write_corpus(tmp_path / "corpus.jsonl", lines)
    run(path, opensearch_url, fresh_index, tmp_path, embedder)
    halves = [run(path, opensearch_url, second_index, tmp_path, embedder, shard=(i, 2)) for i in range(2)]
    assert [half.documents for half in halves] == [25, 24] and [half.rejected for half in halves] == [0, 1]
    assert_same_index(snapshot(client, second_index), snapshot(client, fresh_index))
    assert (tmp_path / "corpus.rejects.shard-1-of-2.jsonl").is_file()


def test_a_malformed_corpus_rejects_exactly_the_bad_lines_and_loads_all_others(
        client, opensearch_url, fresh_index, embedder, tmp_path):
    schema.install_templates(client, Settings.resolve(index=fresh_index), embedder.dim)
    schema.create_index(client, fresh_index, embedder.dim, nested_objects_limit=4)
    client.indices.put_mapping(index=fresh_index, body={"properties": {"metadata": {"properties": {
        "year": {"type": "integer"}}}}})
    valid = iter(corpus_lines(12))
    many = "A B C D E"
    bad_lines = [
        (b"{not json", "invalid JSON"),
        (json.dumps({"id": "x1"}).encode(), "missing field `text`"),
        (json.dumps({"text": "   "}).encode(), "`text` is empty"),
        (json.dumps({"text": ["a"]}).encode(), "`text` must be a string"),
        (json.dumps({"text": "Paris", "mentions": [{"start": 2, "end": 40}]}).encode(), "outside the text"),
        (json.dumps({"text": "Paris France", "mentions": [{"start": 0, "end": 5}, {"start": 3, "end": 8}]}).encode(),
         "overlap"),
        (b'{"text": "Caf\xe9 society"}', "invalid UTF-8"),
        (json.dumps({"text": "Big " + "x" * 3000}).encode(), "longer than the 2000-byte limit"),
        (json.dumps({"text": many, "mentions": [{"start": i, "end": i + 1} for i in range(0, 9, 2)]}).encode(),
         "over the index's nested-object limit of 4"),
        (json.dumps({"text": many}).encode(), "5 mentions detected, over the index's nested-object limit of 4"),
        (json.dumps({"id": "typed", "text": "Rome", "year": "not a year"}).encode(), "OpenSearch refused the document"),
    ]
    raw_lines, expected, good = [], [], []
    for bad, reason in bad_lines:
        good_line = next(valid)
        raw_lines += [good_line.encode(), bad]
        good.append(json.loads(good_line)["id"])
        expected.append((len(raw_lines), reason))
    path = tmp_path / "messy.jsonl"
    path.write_bytes(b"\n".join(raw_lines) + b"\n")
    summary = run(path, opensearch_url, fresh_index, tmp_path, embedder, max_line_bytes=2000)
    rejects = [json.loads(text) for text in (tmp_path / "messy.rejects.jsonl").read_text().splitlines()]
    assert sorted((entry["line"] for entry in rejects)) == [line for line, _ in expected]
    by_line = {entry["line"]: entry for entry in rejects}
    for line, reason in expected:
        assert reason in by_line[line]["reason"], (line, by_line[line])
    refused = by_line[expected[-1][0]]
    assert refused["id"] == "typed" and "mapper_parsing_exception" in refused["reason"]
    assert summary.rejected == len(bad_lines) and summary.documents == len(good)
    assert sorted(snapshot(client, fresh_index)) == sorted(good)


def test_an_index_of_another_dimension_is_refused(client, opensearch_url, fresh_index, embedder, tmp_path):
    schema.install_templates(client, Settings.resolve(index=fresh_index), embedder.dim + 1)
    schema.create_index(client, fresh_index, embedder.dim + 1)
    with pytest.raises(ConfigError, match=f"{embedder.dim + 1}-d"):
        run(write_corpus(tmp_path / "c.jsonl", corpus_lines(2)), opensearch_url, fresh_index, tmp_path, embedder)


def test_replace_index_reloads_an_index_the_old_head_filled(client, opensearch_url, fresh_index, embedder, tmp_path):
    from ner_os import registered_types as rt
    from ner_os.store import types_index

    old_dim = embedder.dim + 1
    schema.install_templates(client, Settings.resolve(index=fresh_index), old_dim)
    schema.create_index(client, fresh_index, old_dim)
    types_index.store_type(client, fresh_index, rt.new_type("river", np.ones(old_dim, dtype=np.float32),
                                                           name="water", min_score=0.05))
    corpus = write_corpus(tmp_path / "c.jsonl", corpus_lines(6))

    summary = run(corpus, opensearch_url, fresh_index, tmp_path, embedder, replace_index=True)

    documents = snapshot(client, fresh_index)
    assert summary.documents == 6 and len(documents) == 6
    assert schema.index_vector_dimension(client, fresh_index) == embedder.dim
    (kept,) = types_index.read_types(client, fresh_index)  # kept, re-embedded with the new model
    assert (kept.name, kept.description, kept.min_score) == ("water", "river", 0.05)
    np.testing.assert_allclose(kept.vector, embedder.embed_type("river"), atol=1e-6)
    assert kept.encoder == embedder.identity()
    # and it tagged the documents just loaded: (1 + cosine) / 2 >= 0.05 holds for nearly every mention
    scores = [rt.knn_scores(np.asarray([m["vector"]]), kept.vector[None])[0, 0]
              for source in documents.values() for m in source["mentions"]]
    tagged = ["water" in m.get("types", []) for source in documents.values() for m in source["mentions"]]
    assert tagged == [score >= 0.05 for score in scores] and any(tagged)


def test_an_index_filled_by_another_head_of_the_same_size_is_refused(
        client, opensearch_url, fresh_index, embedder, tmp_path):
    from ner_os.head import ProjectionHead
    from ner_os.mentions.embedder import MentionEmbedder

    def with_head(seed):
        rng = np.random.default_rng(seed)
        d_v = embedder.dim
        weights = {"hidden.weight": rng.normal(size=(8, d_v)), "hidden.bias": rng.normal(size=8),
                   "output.weight": rng.normal(size=(6, 8)), "output.bias": rng.normal(size=6)}
        return MentionEmbedder(embedder.encoder, ProjectionHead(weights, {"encoder": {}}))

    first, second = with_head(0), with_head(1)
    corpus = write_corpus(tmp_path / "c.jsonl", corpus_lines(3))
    run(corpus, opensearch_url, fresh_index, tmp_path, first)
    assert schema.index_vectors(client, fresh_index) == first.identity()

    with pytest.raises(ConfigError, match="filled by another model.*head"):
        run(corpus, opensearch_url, fresh_index, tmp_path, second)
    settings = Settings.resolve(opensearch_url=opensearch_url, index=fresh_index)
    assert NerOs(settings, opensearch=client, embedder=first).search_type("river", hybrid=False)
    with pytest.raises(ConfigError, match="filled by another model"):
        NerOs(settings, opensearch=client, embedder=second).search_type("river", hybrid=False)
    run(corpus, opensearch_url, fresh_index, tmp_path, second, replace_index=True)
    assert schema.index_vectors(client, fresh_index) == second.identity()


def test_an_index_of_several_shards_finds_what_one_shard_finds(
        client, opensearch_url, fresh_index, second_index, embedder, tmp_path):
    corpus = write_corpus(tmp_path / "c.jsonl", corpus_lines(40))
    run(corpus, opensearch_url, fresh_index, tmp_path, embedder)
    run(corpus, opensearch_url, second_index, tmp_path, embedder, index_shards=3)
    assert schema.index_settings(client, second_index)["index.number_of_shards"] == "3"
    one_shard = snapshot(client, fresh_index)
    assert_same_index(one_shard, snapshot(client, second_index))

    def top(index):
        settings = Settings.resolve(opensearch_url=opensearch_url, index=index)
        found = NerOs(settings, opensearch=client, embedder=embedder).search_type("river", hybrid=False, size=40)
        return sorted((hit.id, round(hit.score, 5)) for hit in found.hits)  # sorted: ties break by shard

    three = NerOs(Settings.resolve(opensearch_url=opensearch_url, index=second_index), opensearch=client,
                  embedder=embedder)
    with recorded_paths(client) as paths:
        assert three.index_shards() == 3 and three.vector_dimension() == embedder.dim
    assert paths == [f"/{second_index}"]  # dimension and shards in one GET <index>, read once
    assert '"k": 100' in three.dsl("river")  # the default 200 candidates split over 3 shards, 100 at least

    with_mentions = sum(1 for source in one_shard.values() if source["mentions"])
    assert top(second_index) == top(fresh_index) and len(top(fresh_index)) == with_mentions  # none lost


def test_another_shard_count_for_an_existing_index_is_refused_and_replace_index_applies_it(
        client, opensearch_url, fresh_index, embedder, tmp_path):
    corpus = write_corpus(tmp_path / "c.jsonl", corpus_lines(4))
    assert run(corpus, opensearch_url, fresh_index, tmp_path, embedder, index_shards=2).advice is None
    run(corpus, opensearch_url, fresh_index, tmp_path, embedder)  # not given: the index keeps its own
    target = ClusterTarget(client, fresh_index)
    target.prepare_index(Settings.resolve(index=fresh_index), embedder.dim, embedder.identity())
    assert target.shards == 2 and "--index-shards 3" in target.shards_advice(1_000_001)
    with pytest.raises(ConfigError, match="has 2 primary shard.*not 3.*--replace-index"):
        run(corpus, opensearch_url, fresh_index, tmp_path, embedder, index_shards=3)
    run(corpus, opensearch_url, fresh_index, tmp_path, embedder, index_shards=3, replace_index=True)
    assert schema.index_settings(client, fresh_index)["index.number_of_shards"] == "3"
    assert len(snapshot(client, fresh_index)) == 4


def test_replace_index_is_refused_per_shard_and_in_a_dry_run(opensearch_url, fresh_index, embedder, tmp_path):
    corpus = write_corpus(tmp_path / "c.jsonl", corpus_lines(2))
    for options in ({"shard": (0, 2)}, {"dry_run": True}):
        with pytest.raises(ConfigError, match="--replace-index"):
            run(corpus, opensearch_url, fresh_index, tmp_path, embedder, replace_index=True, **options)


def test_the_tagger_fills_mention_types(client, opensearch_url, fresh_index, embedder, tmp_path):
    def tag_by_sign(vectors):
        return [["positive"] if vector[0] > 0 else [] for vector in vectors]

    run(write_corpus(tmp_path / "c.jsonl", corpus_lines(20)), opensearch_url, fresh_index, tmp_path, embedder,
        tagger=tag_by_sign)
    mentions = [m for source in snapshot(client, fresh_index).values() for m in source["mentions"]]
    assert mentions and all(m["types"] == (["positive"] if m["vector"][0] > 0 else []) for m in mentions)


def test_stdin_and_gzip_inputs_load_the_same_documents(client, opensearch_url, fresh_index, embedder, tmp_path,
                                                        monkeypatch):
    import gzip
    import io

    lines = corpus_lines(15)
    packed = tmp_path / "corpus.jsonl.gz"
    packed.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    assert run(packed, opensearch_url, fresh_index, tmp_path, embedder).documents == 15

    class Stdin:
        buffer = io.BufferedReader(io.BytesIO(("\n".join(lines) + "\n").encode()))

    monkeypatch.setattr("sys.stdin", Stdin())
    monkeypatch.chdir(tmp_path)
    piped = run("-", opensearch_url, fresh_index, tmp_path, embedder)
    assert piped.documents == 15 and piped.resumed_after_line == 0  # stdin never resumes
    assert client.count(index=fresh_index)["count"] == 15


@pytest.mark.model
def test_real_sentences_load_with_the_default_model(client, opensearch_url, fresh_index, tmp_path):
    if not FEWNERD_TEST.is_file():
        pytest.skip(f"{FEWNERD_TEST} is absent (a fresh clone has no ../shared)")
    from ner_os.evaluation.readers import read_bio

    sentences = []
    for sentence in read_bio(FEWNERD_TEST):
        sentences.append(json.dumps({"text": sentence.text}))
        if len(sentences) == 40:
            break
    settings = Settings.resolve(opensearch_url=opensearch_url, index=fresh_index, data_dir=str(tmp_path),
                                backend="torch")
    summary = load(write_corpus(tmp_path / "real.jsonl", sentences), settings, progress=False)
    stored = snapshot(client, fresh_index)
    assert len(stored) == summary.documents == len(set(sentences))
    assert sum(len(s["mentions"]) for s in stored.values()) == summary.mentions > 40
