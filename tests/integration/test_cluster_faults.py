"""A data node lost in the middle of a load on a three-node cluster.

The module starts its own cluster (``ner_os.store.node.lifecycle.start(..., nodes=3)``: three JVMs of
512 MB on loopback, its own data directory), makes an index of three shards with one replica each
(the templates' ``auto_expand_replicas: 0-1``), and SIGKILLs one data node that is not the one the
client talks to while ``load`` writes a few hundred documents. The load must end (or, rerun, resume)
with every document exactly once, its mentions at the input's offsets. A searcher runs beside the load
the whole time and counts the searches that failed while the node was gone, and for how long.

Only the model is swapped (the encoder tests' tiny random-initialised one), so that the load takes
seconds; every request is a real one to the real cluster.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import pytest
from opensearchpy.helpers import scan

from ner_os.client import NerOs
from ner_os.config import Settings
from ner_os.errors import ClusterError, NerOsError
from ner_os.loader import load
from ner_os.mentions.embedder import MentionEmbedder, vectors_identity
from ner_os.spans import NoDetector
from ner_os.store import bulk, connection, schema
from ner_os.store.node import lifecycle as local_node

pytestmark = pytest.mark.integration

DOCUMENTS = 400
KILL_AFTER = 120  # documents acknowledged before the node is killed
INDEX = "nerostest-three-nodes"
WORDS = "Ada Lovelace met Charles Babbage in London while the Nile flows north through Egypt".split()
BULK_INDEX = bulk.bulk_index


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """(settings, node record) of a three-node local cluster, stopped after the module."""
    settings = Settings.resolve(env={}, data_dir=str(tmp_path_factory.mktemp("three-nodes")))
    try:
        record = local_node.start(settings, nodes=3)
    except NerOsError as error:
        pytest.skip(f"the three-node local cluster did not start: {error}")
    try:
        yield settings, record
    finally:
        local_node.stop(settings)


@pytest.fixture(scope="module")
def embedder(tmp_path_factory):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
    from test_encoder_tiny import tiny_encoder  # the encoder tests' tiny random-initialised model

    return MentionEmbedder(tiny_encoder("llama", tmp_path_factory), None)


def corpus(path: Path, count: int) -> list[dict]:
    """Documents whose mentions are given: the first word and the last (a number), and one in between
    after non-ASCII text, so that offsets are code points."""
    documents = []
    for i in range(count):
        head = " ".join(WORDS[: 2 + i % (len(WORDS) - 2)])
        text = f"{head} — Zoë {i}"
        zoe, number = text.index("Zoë"), text.rindex(" ") + 1
        documents.append({"id": f"doc-{i}", "text": text, "mentions": [
            {"start": 0, "end": 3}, {"start": zoe, "end": zoe + 3}, {"start": number, "end": len(text)}]})
    path.write_text("".join(json.dumps(document, ensure_ascii=False) + "\n" for document in documents), encoding="utf-8")
    return documents


class Searcher(threading.Thread):
    """Sends ner-os type searches (and a raw search that reports shard failures) until stopped; keeps
    (time, failed, partial) per round."""

    def __init__(self, ner: NerOs, client, index: str):
        super().__init__(name="searcher", daemon=True)
        self.ner, self.client, self.index = ner, client, index
        self.rounds: list[tuple[float, bool, bool]] = []
        self.errors: list[str] = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            started = time.monotonic()
            failed = partial = False
            try:
                self.ner.search_type("Ada", index=self.index, size=5)
            except Exception as error:  # noqa: BLE001 - every failure is counted, whatever it is
                failed = True
                self.errors.append(f"{type(error).__name__}: {error}"[:200])
            try:
                answer = self.client.search(index=self.index, body={"query": {"match": {"text": "Ada"}}, "size": 1},
                                            request_timeout=10)
                partial = answer["_shards"]["failed"] > 0 or answer.get("timed_out", False)
            except Exception as error:  # noqa: BLE001
                partial = True
                self.errors.append(f"raw {type(error).__name__}: {error}"[:200])
            self.rounds.append((started, failed, partial))
            self.stop.wait(0.1)

    def figures(self, since: float, until: float) -> dict:
        during = [entry for entry in self.rounds if since <= entry[0] <= until]
        bad = [entry[0] for entry in during if entry[1] or entry[2]]
        return {"searches": len(during), "failed": sum(entry[1] for entry in during),
                "partial_or_failed_raw": sum(entry[2] for entry in during),
                "outage_s": round(bad[-1] - bad[0], 1) if bad else 0.0,
                "first_failure_after_kill_s": round(bad[0] - since, 1) if bad else None}


def compare_with_input(client, documents: list[dict]) -> tuple[int, int, int]:
    """(lost, duplicated, extra) documents of the index against the input; every stored document's
    text and mentions (offsets and surfaces) must be the input's own."""
    client.indices.refresh(index=INDEX)
    hits = list(scan(client, index=INDEX, query={"query": {"match_all": {}}}))
    expected = {document["id"]: document for document in documents}
    ids = [hit["_id"] for hit in hits]
    assert client.count(index=INDEX)["count"] == len(ids)
    for hit in hits:
        want, stored = expected.get(hit["_id"]), hit["_source"]
        if want is None:
            continue
        assert stored["text"] == want["text"]
        assert [(m["start"], m["end"], m["surface"]) for m in stored["mentions"]] == \
            [(m["start"], m["end"], want["text"][m["start"]:m["end"]]) for m in want["mentions"]]
    return len(set(expected) - set(ids)), len(ids) - len(set(ids)), len(set(ids) - set(expected))


def victim_node(client, http_node: str) -> tuple[str, str]:
    """(name, why) of the node to kill: the elected cluster manager when it is not the HTTP node (the
    harder case: an election as well as replica promotion), else the other node with the most primaries."""
    manager = client.cat.cluster_manager(format="json")[0]["node"]
    if manager != http_node:
        return manager, "cluster manager"
    primaries = [row["node"] for row in client.cat.shards(index=INDEX, format="json") if row["prirep"] == "p"]
    others = sorted({name for name in primaries if name != http_node} or {"ner-os-3"} - {http_node})
    return max(others, key=primaries.count), f"{max(primaries.count(name) for name in others)} primaries"


def test_a_data_node_killed_mid_load_loses_and_duplicates_nothing(cluster, embedder, tmp_path, monkeypatch):
    settings, record = cluster
    client = connection.client_from_settings(Settings.resolve(env={}, opensearch_url=record.url), wait_s=60)
    assert client.cluster.health()["number_of_nodes"] == 3
    http_node = client.nodes.info(node_id="_local")["nodes"].popitem()[1]["name"]
    schema.create_index(client, INDEX, embedder.dim, vectors_identity(embedder), shards=3)
    client.cluster.health(index=INDEX, wait_for_status="green", params={"timeout": "120s"}, request_timeout=130)
    index_settings = client.indices.get_settings(index=INDEX)[INDEX]["settings"]["index"]
    assert (index_settings["number_of_shards"], index_settings["number_of_replicas"]) == ("3", "1")
    victim, why = victim_node(client, http_node)
    assert victim != http_node
    documents = corpus(tmp_path / "corpus.jsonl", DOCUMENTS)

    acknowledged, killed = [0], {}

    def kill():
        killed["at"] = time.monotonic()
        killed["pid"] = local_node.kill_node(settings, victim)

    def counting_bulk(*args, **kwargs):  # the real bulk write; kills the node once enough was acknowledged
        result = BULK_INDEX(*args, **kwargs)
        acknowledged[0] += result.indexed
        if acknowledged[0] >= KILL_AFTER and not killed:
            killed["acknowledged"] = acknowledged[0]
            threading.Thread(target=kill, name="kill").start()  # while the next bulk request is in flight
        return result

    monkeypatch.setattr(bulk, "bulk_index", counting_bulk)
    load_settings = Settings.resolve(env={}, opensearch_url=record.url, index=INDEX, data_dir=str(tmp_path / "data"),
                                     batch_tokens=192, timeout_s=30.0)
    searcher = Searcher(NerOs(load_settings, embedder=embedder), client, INDEX)
    searcher.start()
    started = time.monotonic()
    try:
        summary = load(tmp_path / "corpus.jsonl", load_settings, embedder=embedder, detector=NoDetector(), progress=False)
        resumed = None
    except ClusterError as error:  # the load may stop resumably; the rerun must then complete it
        resumed = str(error)
        summary = load(tmp_path / "corpus.jsonl", load_settings, embedder=embedder, detector=NoDetector(), progress=False)
    ended = time.monotonic()
    time.sleep(2.0)  # a few more searches after the load, on the two nodes left
    searcher.stop.set()
    searcher.join(30)
    assert killed, f"the load ended before {KILL_AFTER} documents were acknowledged"
    assert killed["acknowledged"] < DOCUMENTS, "the node was killed after the last write"

    health = client.cluster.health(index=INDEX)
    assert health["number_of_nodes"] == 2 and health["status"] in ("yellow", "green")
    lost, duplicated, extra = compare_with_input(client, documents)
    figures = {"documents": DOCUMENTS, "lost": lost, "duplicated": duplicated, "extra": extra,
               "killed": f"{victim} ({why})", "http_node": http_node, "killed_after_acknowledged": killed["acknowledged"],
               "resumed": resumed, "load_s": round(ended - started, 1), "load_after_kill_s": round(ended - killed["at"], 1),
               **searcher.figures(killed["at"], ended),
               "searches_before_kill": sum(1 for entry in searcher.rounds if entry[0] < killed["at"]),
               "errors": sorted(set(searcher.errors))[:5]}
    print("three-node kill:", json.dumps(figures))
    assert (lost, duplicated, extra) == (0, 0, 0), figures
    assert figures["searches"] > 0, "no search was sent while the node was gone"
    assert summary.rejected == 0
