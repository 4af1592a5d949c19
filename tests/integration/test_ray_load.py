"""The Ray engine against a real OpenSearch node and a local Ray (2 CPUs): it writes what the
single-process loader writes (ids, metadata, mention offsets, vectors within 1e-5, rejects with their
line numbers), a rerun adds nothing, and a worker killed in the middle of a run is retried by Ray
with no document lost or duplicated.

The embedder is the tiny random-initialised llama of the encoder tests, through the real Encoder,
built once in each Ray worker (:mod:`ray_workers`); one test at the end runs the real default model.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from ner_os.config import Settings
from ner_os.loader import load, load_records
from ner_os.store import schema

ray = pytest.importorskip("ray")
cloudpickle = pytest.importorskip("ray.cloudpickle")

from ray_workers import DiesOnce, TinyEmbedder  # noqa: E402
from test_encoder_tiny import tiny_model_dir  # noqa: E402

# the single-process loader's tests (tests/unit has a test_load.py too: loaded by path); their
# CapitalisedWords detector travels to the Ray workers by value
_spec = importlib.util.spec_from_file_location("integration_test_load", Path(__file__).with_name("test_load.py"))
_single_process = sys.modules["integration_test_load"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_single_process)
cloudpickle.register_pickle_by_value(_single_process)
CapitalisedWords, snapshot = _single_process.CapitalisedWords, _single_process.snapshot
second_index = _single_process.second_index  # a fixture: another fresh index (the Ray engine loads it)

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
SAMPLE = HERE.parents[1] / "ner_os" / "samples" / "fewnerd-sample.jsonl"
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray of 2 CPUs whose workers can import this folder's helpers (and the encoder tests')."""
    if ray.is_initialized():
        ray.shutdown()
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE), str(HERE.parent / "unit"), *filter(None, [before])])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield
    ray.shutdown()
    if before is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = before


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> TinyEmbedder:
    return TinyEmbedder(tiny_model_dir("llama", tmp_path_factory), str(tmp_path_factory.getbasetemp()))


def assert_same_index(left: dict, right: dict) -> None:
    """The loader tests' comparison (ids, texts, metadata, mention offsets), and vectors within TOLERANCE."""
    _single_process.assert_same_index(left, right)
    for doc_id, source in left.items():
        for mine, theirs in zip(source["mentions"], right[doc_id]["mentions"]):
            np.testing.assert_allclose(mine["vector"], theirs["vector"], atol=TOLERANCE)


def settings_for(url, index, tmp_path, **flags) -> Settings:
    return Settings.resolve(opensearch_url=url, index=index, data_dir=str(tmp_path / "data"), batch_tokens=512,
                            **flags)


def both_engines(path, url, single_index, second_index, tmp_path, tiny, detector, **options):
    """The corpus loaded by the single-process loader and by the Ray engine (2 workers), each with its
    own reject file: the two summaries and the two reject files' entries."""
    from ner_os.ray import load_file

    max_line_bytes = options.pop("max_line_bytes", 8 << 20)
    single = load(path, settings_for(url, single_index, tmp_path), embedder=tiny(), detector=detector(),
                  progress=False, rejects=tmp_path / "single.rejects.jsonl", max_line_bytes=max_line_bytes)
    on_ray = load_file(path, settings_for(url, second_index, tmp_path), embedder=tiny, detector=detector, workers=2,
                       progress=False, rejects=tmp_path / "ray.rejects.jsonl", max_line_bytes=max_line_bytes,
                       **options)
    return single, on_ray, rejects_of(tmp_path / "single.rejects.jsonl"), rejects_of(tmp_path / "ray.rejects.jsonl")


def rejects_of(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return sorted((json.loads(text) for text in path.read_text(encoding="utf-8").splitlines()),
                  key=lambda entry: (entry.get("line") or entry.get("record") or 0, entry["reason"]))


def assert_same(client, single_index, second_index, single, on_ray) -> dict:
    left, right = snapshot(client, single_index), snapshot(client, second_index)
    assert_same_index(left, right)
    assert (on_ray.documents, on_ray.mentions, on_ray.rejected) == (single.documents, single.mentions, single.rejected)
    return right


def test_the_sample_corpus_loads_as_the_single_process_loader_loads_it_and_a_rerun_adds_nothing(
        local_ray, client, opensearch_url, fresh_index, second_index, tiny, tmp_path):
    from ner_os.loader.api import default_detector
    from ner_os.ray import load_file

    corpus = tmp_path / "sample.jsonl"
    corpus.write_text("".join(SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)[:80]), encoding="utf-8")
    single, on_ray, single_rejects, ray_rejects = both_engines(corpus, opensearch_url, fresh_index, second_index,
                                                               tmp_path, tiny, default_detector, batch_docs=16)
    written = assert_same(client, fresh_index, second_index, single, on_ray)
    assert len(written) == 80 and on_ray.mentions > 80 and ray_rejects == single_rejects == []
    assert on_ray.stage_seconds["encode"] > 0 and on_ray.wall_seconds > 0

    again = load_file(corpus, settings_for(opensearch_url, second_index, tmp_path), embedder=tiny,
                      detector=default_detector, workers=2, progress=False)
    assert again.documents == 80
    rewritten = snapshot(client, second_index)
    assert rewritten.keys() == written.keys()
    assert_same_index(rewritten, written)
    assert client.count(index=second_index)["count"] == 80


def hostile_lines() -> list[bytes]:
    """Every kind of line the reader refuses or must keep exactly, with ids repeated across Ray blocks."""
    good = [json.dumps({"id": f"d{i}", "text": f"Ada met Bob in Paris number {i}.", "n": i}) for i in range(30)]
    lines = [
        b"\xef\xbb\xbf" + json.dumps({"id": "bom", "text": "Bom Line One in Oslo"}).encode(),
        *[line.encode() for line in good[:10]],
        b"",
        b"   ",
        b"{not json",
        b'{"text": "bad \xff utf8"}',
        b'[1, 2]',
        b'{"id": "no-text"}',
        b'{"text": "   "}',
        json.dumps({"id": True, "text": "Bool Id"}).encode(),
        json.dumps({"id": "x" * 600, "text": "Long Id"}).encode(),
        json.dumps({"id": "bad-offsets", "text": "Nile", "mentions": [{"start": 3, "end": 9}]}).encode(),
        b'{"text": "lone \\ud800 surrogate"}',
        b'{"text": "Big Number", "n": 1e999}',
        b'{"text": "NaN Here", "x": NaN}',
        json.dumps({"text": "Z" + "z" * 3000}).encode(),  # over this test's line limit
        json.dumps({"id": "given", "text": "Ada Lovelace met Charles Babbage",
                    "mentions": [{"start": 17, "end": 32}, {"start": 0, "end": 12}]}).encode(),
        json.dumps({"text": "Émile é\u0301 \u05e9\u05dc\u05d5\u05dd Nile \U0001f469\u200d\U0001f52c Paris \u2028 Ok"},
                   ensure_ascii=False).encode(),
        json.dumps({"text": "Null \x00 Char And Tab\tHere", "meta": {"deep": [1, {"x": -0.0}], "big": 2 ** 70}}).encode(),
        json.dumps({"text": "No Id Twice"}).encode(),
        json.dumps({"text": "No Id Twice"}).encode(),
        *[line.encode() for line in good[10:]],
        json.dumps({"id": "d3", "text": "Replaced Later Line For d3"}).encode(),  # a later line with an earlier id
        json.dumps({"id": 17, "text": "Integer Id Seventeen"}).encode(),
    ]
    return lines


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_a_hostile_corpus_gives_the_same_documents_and_the_same_rejects_with_their_line_numbers(
        local_ray, client, opensearch_url, fresh_index, second_index, tiny, tmp_path, compressed):
    data = b"\n".join(hostile_lines()) + b"\n"
    corpus = tmp_path / ("hostile.jsonl.gz" if compressed else "hostile.jsonl")
    corpus.write_bytes(gzip.compress(data) if compressed else data)
    single, on_ray, single_rejects, ray_rejects = both_engines(
        corpus, opensearch_url, fresh_index, second_index, tmp_path, tiny, CapitalisedWords, batch_docs=4,
        max_line_bytes=2048)
    written = assert_same(client, fresh_index, second_index, single, on_ray)
    assert ray_rejects == single_rejects
    # lines 14-25 are refused by the parser, line 28 by OpenSearch (2**70 is out of a long's range)
    assert [entry["line"] for entry in ray_rejects] == [*range(14, 26), 28]
    assert ray_rejects[-1]["reason"].startswith("OpenSearch refused the document")
    assert written["d3"]["text"] == "Replaced Later Line For d3" and written["bom"]["text"] == "Bom Line One in Oslo"
    assert [(m["start"], m["end"]) for m in written["given"]["mentions"]] == [(0, 12), (17, 32)]


def test_a_worker_killed_in_the_middle_of_a_run_is_retried_with_nothing_lost_or_duplicated(
        local_ray, client, opensearch_url, fresh_index, tiny, tmp_path):
    from ner_os.ray import load_file

    records = [{"id": f"k{i}", "text": f"Worker Test {i} in Rome and Oslo", "i": i} for i in range(48)]
    corpus = tmp_path / "kill.jsonl"
    corpus.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    marker = tmp_path / "killed.pid"
    summary = load_file(corpus, settings_for(opensearch_url, fresh_index, tmp_path),
                        embedder=DiesOnce(tiny, str(marker), after=2), detector=CapitalisedWords, workers=2,
                        batch_docs=4, progress=False)
    assert marker.exists()  # a worker did die mid-run
    written = snapshot(client, fresh_index)
    assert sorted(written) == sorted(record["id"] for record in records)
    assert client.count(index=fresh_index)["count"] == 48
    assert (summary.documents, summary.rejected) == (48, 0)
    assert summary.mentions == sum(len(source["mentions"]) for source in written.values())


def test_a_ray_dataset_loads_as_load_records_loads_its_records(
        local_ray, client, opensearch_url, fresh_index, second_index, tiny, tmp_path):
    from ner_os.ray import load_dataset

    records = [{"id": f"r{i}", "text": f"Dataset Row {i} near Lima", "tag": "t"} for i in range(20)]
    records[5] = {"id": "r5", "tag": "no text"}
    records[9] = {"text": "   ", "tag": "blank"}
    rows = [{**record, "position": i + 1} for i, record in enumerate(records)]
    single = load_records(records, settings_for(opensearch_url, fresh_index, tmp_path), embedder=tiny(),
                          detector=CapitalisedWords(), progress=False, rejects=tmp_path / "single.rejects.jsonl")
    on_ray = load_dataset(ray.data.from_items(rows), settings_for(opensearch_url, second_index, tmp_path),
                          position="position", embedder=tiny, detector=CapitalisedWords, workers=2, batch_docs=4,
                          progress=False, rejects=tmp_path / "ray.rejects.jsonl")
    assert_same(client, fresh_index, second_index, single, on_ray)
    assert rejects_of(tmp_path / "ray.rejects.jsonl") == rejects_of(tmp_path / "single.rejects.jsonl")
    assert [entry["record"] for entry in rejects_of(tmp_path / "ray.rejects.jsonl")] == [6, 10]


@pytest.mark.model
def test_the_real_model_on_ray_writes_what_the_single_process_loader_writes(
        local_ray, client, opensearch_url, fresh_index, second_index, tmp_path):
    from ner_os.ray import load_file

    corpus = tmp_path / "sample.jsonl"
    corpus.write_text("".join(SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)[:12]), encoding="utf-8")
    settings = Settings.resolve(opensearch_url=opensearch_url, index=fresh_index)
    single = load(corpus, settings, progress=False, rejects=tmp_path / "single.rejects.jsonl")
    on_ray = load_file(corpus, settings.replace(index=second_index), workers=1, progress=False,
                       rejects=tmp_path / "ray.rejects.jsonl")  # both: the settings' default detector
    assert_same(client, fresh_index, second_index, single, on_ray)
    assert on_ray.documents == 12
