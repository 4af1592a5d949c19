"""Faults against a real node: unreachable, killed mid-load and restarted, an index turned read-only,
sustained 429s, and two loaders writing the same documents at once. Every test ends by checking that
no document was lost or duplicated.

The session node serves all but the kill test, which starts its own node (own data directory, fixed
port) so that it can kill and restart it. A full write queue cannot be had on demand (the write
thread pool's queue size is a static node setting), so the 429s come from a loopback proxy in front
of the real node (``local_proxies.ThrottlingProxy``). Backoffs are shortened so that the retries the
loader makes in minutes happen in seconds; what is retried and when it stops is unchanged.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import pytest
from opensearchpy.helpers import scan

from ner_os.store import bulk, connection
from ner_os.store.node import lifecycle as local_node
from ner_os.config import Settings
from ner_os.errors import ClusterError
from ner_os.loader import load
from ner_os.spans import NoDetector

pytestmark = pytest.mark.integration

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from local_proxies import ThrottlingProxy  # noqa: E402

BULK_INDEX = bulk.bulk_index
WORDS = "Ada Lovelace met Charles Babbage in London while the Nile flows north through Egypt".split()


@pytest.fixture(scope="module")
def embedder(tmp_path_factory):
    from test_encoder_tiny import tiny_encoder  # the encoder tests' tiny random-initialised model

    from ner_os.mentions.embedder import MentionEmbedder

    return MentionEmbedder(tiny_encoder("llama", tmp_path_factory), None)


@pytest.fixture
def quick_backoff(monkeypatch):
    """The loader's (ner_os.store.bulk) and streaming_bulk's backoffs in tenths of a second instead of seconds."""
    monkeypatch.setattr(bulk, "BACKOFF_FIRST_S", 0.05)
    monkeypatch.setattr(bulk, "BACKOFF_MAX_S", 0.2)
    monkeypatch.setattr(bulk, "bulk_index", functools.partial(BULK_INDEX, initial_backoff_s=0.05,
                                                                      max_backoff_s=0.2))


def corpus(count: int, first: int = 0, variant: str = "") -> list[str]:
    """Documents ``doc-<first>`` ... with their mentions given (the first and the last word)."""
    lines = []
    for i in range(first, first + count):
        text = " ".join(WORDS[: 2 + i % (len(WORDS) - 2)]) + f" {variant}{i}"
        last = text.rindex(" ")
        lines.append(json.dumps({"id": f"doc-{i}", "text": text,
                                 "mentions": [{"start": 0, "end": 3}, {"start": last + 1, "end": len(text)}]}))
    return lines


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run(path, url, index, data_dir, embedder, **options):
    settings = Settings.resolve(env={}, opensearch_url=url, index=index, data_dir=str(data_dir),
                                batch_tokens=options.pop("batch_tokens", 256), timeout_s=options.pop("timeout_s", 30.0))
    return load(path, settings, embedder=embedder, detector=NoDetector(), progress=False, **options)


def stored(client, index) -> dict[str, dict]:
    client.indices.refresh(index=index)
    return {hit["_id"]: hit["_source"] for hit in scan(client, index=index, query={"query": {"match_all": {}}})}


def assert_exactly(client, index, lines: list[str]) -> None:
    """The index holds each line's document once, whole: its text, and mentions that are its own."""
    documents = stored(client, index)
    expected = {json.loads(line)["id"]: json.loads(line) for line in lines}
    assert sorted(documents) == sorted(expected), "documents lost or added"
    assert client.count(index=index)["count"] == len(expected), "duplicated documents"
    for doc_id, source in documents.items():
        assert source["text"] == expected[doc_id]["text"]
        assert [(m["start"], m["end"], m["surface"]) for m in source["mentions"]] == \
            [(m["start"], m["end"], source["text"][m["start"]:m["end"]]) for m in expected[doc_id]["mentions"]]


def rejects(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.is_file() else []


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- unreachable ------------------------------------------------------------------------------------


def test_a_closed_port_is_a_clear_error_within_the_timeout(embedder, tmp_path):
    started = time.monotonic()
    with pytest.raises(ClusterError, match=r"unreachable: connection refused") as error:
        run(write(tmp_path / "c.jsonl", corpus(3)), f"http://127.0.0.1:{free_port()}", "nerostest-unreachable",
            tmp_path, embedder, timeout_s=2.0)
    assert time.monotonic() - started < 10
    assert "\n" not in str(error.value)
    assert not (tmp_path / "checkpoints").exists()


def test_a_silent_server_is_a_clear_error_within_a_bounded_time(embedder, tmp_path):
    with socket.socket() as silent:  # accepts connections (the kernel does) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        started = time.monotonic()
        with pytest.raises(ClusterError, match="unreachable"):
            run(write(tmp_path / "c.jsonl", corpus(3)), f"http://127.0.0.1:{silent.getsockname()[1]}",
                "nerostest-silent", tmp_path, embedder, timeout_s=2.0)
        assert time.monotonic() - started < 15


# --- killed mid-load and restarted ---------------------------------------------------------------


@pytest.fixture
def own_node(tmp_path, opensearch_url):
    """A node of this test's own (data directory under tmp_path, a fixed port), stopped afterwards.
    Depends on the session node only so that the launcher build is done and cached."""
    settings = Settings.resolve(data_dir=str(tmp_path / "node"))
    port = free_port()
    record = local_node.start(settings, http_port=port)
    try:
        yield settings, port, record
    finally:
        local_node.stop(settings)


def checkpoint_line(data_dir: Path) -> int:
    marks = [json.loads(path.read_text())["mark"]["line"] for path in data_dir.rglob("checkpoints/*/*.json")]
    return max(marks, default=0)


def test_a_node_killed_mid_load_and_restarted_ends_complete_without_loss_or_duplicates(
        own_node, embedder, tmp_path, quick_backoff, monkeypatch):
    node_settings, port, record = own_node
    url = record.url
    lines = corpus(200)
    path = write(tmp_path / "corpus.jsonl", lines)
    data_dir = tmp_path / "load"
    monkeypatch.setattr(bulk, "BULK_MAX_DOCS", 20)
    outcome: dict = {}

    def first_run():
        try:
            outcome["summary"] = run(path, url, "nerostest-killed", data_dir, embedder, batch_tokens=96)
        except BaseException as error:  # noqa: BLE001 - what the test inspects
            outcome["error"] = error

    loader = threading.Thread(target=first_run)
    loader.start()
    deadline = time.monotonic() + 120
    while checkpoint_line(data_dir) == 0 and loader.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert loader.is_alive(), f"the load ended before the node could be killed: {outcome}"
    os.kill(record.pid, signal.SIGKILL)
    loader.join(120)
    assert not loader.is_alive()
    error = outcome.get("error")
    assert isinstance(error, ClusterError) and "run the load again to resume" in str(error), repr(error)
    settled = checkpoint_line(data_dir)
    assert 0 < settled < len(lines)

    restarted = local_node.start(node_settings, http_port=port)  # same port, same data directory
    assert restarted.url == url
    resumed = run(path, url, "nerostest-killed", data_dir, embedder, batch_tokens=1024)
    assert resumed.resumed_after_line >= settled > 0
    assert resumed.documents == len(lines) and resumed.rejected == 0
    client = connection.client_from_settings(Settings.resolve(env={}, opensearch_url=url), wait_s=60)
    assert_exactly(client, "nerostest-killed", lines)
    assert not rejects(tmp_path / "corpus.rejects.jsonl")


# --- a read-only index ------------------------------------------------------------------------------


@pytest.mark.parametrize("block", ["index.blocks.read_only_allow_delete", "index.blocks.write"])
def test_a_blocked_index_stops_the_load_with_its_name_and_a_resumable_state(
        client, opensearch_url, fresh_index, embedder, tmp_path, quick_backoff, block):
    first, more = corpus(20), corpus(40, first=20)
    path = write(tmp_path / "corpus.jsonl", first)
    run(path, opensearch_url, fresh_index, tmp_path, embedder)
    client.indices.put_settings(index=fresh_index, body={block: True})  # what the flood-stage watermark sets
    write(path, first + more)  # the input grew: the checkpoint still fits its first 20 lines
    try:
        started = time.monotonic()
        with pytest.raises(ClusterError) as error:
            run(path, opensearch_url, fresh_index, tmp_path, embedder)
        assert time.monotonic() - started < 60
        message = str(error.value)
        assert fresh_index in message and "run the load again" in message and "\n" not in message
        assert checkpoint_line(tmp_path) == 20
        assert not rejects(tmp_path / "corpus.rejects.jsonl")  # nothing written off as a bad line
    finally:
        client.indices.put_settings(index=fresh_index, body={block: None})
    resumed = run(path, opensearch_url, fresh_index, tmp_path, embedder)
    assert resumed.resumed_after_line == 20 and resumed.documents == 60 and resumed.run_documents == 40
    assert_exactly(client, fresh_index, first + more)


# --- 429s ---------------------------------------------------------------------------------------------


def test_a_burst_of_429s_is_waited_out_and_nothing_is_lost(client, opensearch_url, fresh_index, embedder, tmp_path,
                                                           quick_backoff):
    lines = corpus(60)
    with ThrottlingProxy(opensearch_url, throttle_next=4) as proxy:
        summary = run(write(tmp_path / "c.jsonl", lines), proxy.url, fresh_index, tmp_path, embedder)
    assert proxy.throttled == 4 and proxy.bulk_forwarded > 0
    assert summary.documents == 60 and summary.rejected == 0
    assert_exactly(client, fresh_index, lines)


def test_sustained_429s_stop_the_load_resumably_and_a_rerun_completes(
        client, opensearch_url, fresh_index, embedder, tmp_path, quick_backoff, monkeypatch):
    lines = corpus(80)
    path = write(tmp_path / "c.jsonl", lines)
    monkeypatch.setattr(bulk, "BULK_ATTEMPTS", 2)
    with ThrottlingProxy(opensearch_url) as proxy:
        run(path, proxy.url, fresh_index, tmp_path, embedder)  # creates the index
        write(path, lines + corpus(40, first=80))
        proxy.always = True
        with pytest.raises(ClusterError, match=r"429.*run the load again to resume") as error:
            run(path, proxy.url, fresh_index, tmp_path, embedder)
        assert fresh_index in str(error.value) and proxy.throttled > 0
        assert checkpoint_line(tmp_path) == 80
        proxy.always = False
        resumed = run(path, proxy.url, fresh_index, tmp_path, embedder)
    assert resumed.resumed_after_line == 80 and resumed.documents == 120 and resumed.rejected == 0
    assert_exactly(client, fresh_index, lines + corpus(40, first=80))


# --- two loaders at once ------------------------------------------------------------------------------


def test_two_loaders_writing_overlapping_documents_leave_each_document_whole(
        client, opensearch_url, fresh_index, embedder, tmp_path, tmp_path_factory):
    from test_encoder_tiny import tiny_encoder

    from ner_os.mentions.embedder import MentionEmbedder

    second_embedder = MentionEmbedder(tiny_encoder("llama", tmp_path_factory), None)  # its own tokenizer state
    a_lines, b_lines = corpus(60), corpus(60, first=30, variant="B")  # doc-30 ... doc-59 in both, different text
    paths = [write(tmp_path / "a.jsonl", a_lines), write(tmp_path / "b.jsonl", b_lines)]
    results, errors = {}, []

    def loader(path, model):
        try:
            results[path.name] = run(path, opensearch_url, fresh_index, tmp_path / path.stem, model, batch_tokens=64)
        except BaseException as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=loader, args=(path, model)) for path, model in zip(paths, (embedder,
                                                                                                   second_embedder))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    assert not errors, errors
    assert results["a.jsonl"].documents == results["b.jsonl"].documents == 60
    documents = stored(client, fresh_index)
    assert len(documents) == client.count(index=fresh_index)["count"] == 90
    by_id = {json.loads(line)["id"]: json.loads(line) for line in a_lines}
    versions = {json.loads(line)["id"]: json.loads(line) for line in b_lines}
    for doc_id, source in documents.items():
        candidates = {record["text"]: record for record in (by_id.get(doc_id), versions.get(doc_id)) if record}
        assert source["text"] in candidates
        record = candidates[source["text"]]  # the input line whose text it holds: its mentions, no other's
        assert [(m["start"], m["end"], m["surface"]) for m in source["mentions"]] == \
            [(m["start"], m["end"], record["text"][m["start"]:m["end"]]) for m in record["mentions"]]
