"""The loader's parts without a cluster: batching, the line ledger, the reject file, the checkpoint, the
stage threads, and whole dry runs with a tiny random-initialised encoder (the real Encoder code path)."""

from __future__ import annotations

import hashlib
import io
import json

import pytest

from ner_os.config import Settings
from ner_os.loader.records import Line, Rejected
from ner_os.errors import ConfigError, NerOsError
from ner_os.loader import load
from ner_os.loader.batches import plan_batches
from ner_os.loader.checkpoint import Checkpoint
from ner_os.loader.ledger import LineLedger, Mark, RejectLog
from ner_os.loader.sources import FileSource, HashingReader
from ner_os.loader.stages import StageClock, Stages
from ner_os.spans import NoDetector

pytestmark = pytest.mark.unit


# --- batching -------------------------------------------------------------------------------------


def test_batches_are_length_sorted_and_stay_within_the_padded_budget():
    lengths = [5, 40, 12, 40, 3, 20, 7, 90]
    items = list(range(len(lengths)))
    batches = plan_batches(items, lengths, budget=64)
    assert sorted(i for batch in batches for i in batch) == items
    flat = [lengths[i] for batch in batches for i in batch]
    assert flat == sorted(flat)
    for batch in batches:
        padded = len(batch) * max(lengths[i] for i in batch)
        assert padded <= 64 or len(batch) == 1
    assert [7] in batches  # longer than the budget: alone


# --- the ledger, the reject file, the checkpoint ------------------------------------------------


def _lines(count: int):
    sha = hashlib.sha256()
    offset = 0
    for number in range(1, count + 1):
        raw = f"line {number}\n".encode()
        sha.update(raw)
        offset += len(raw)
        yield Line(number, raw.rstrip(), offset), sha.copy()


def test_the_mark_moves_over_the_settled_prefix_only():
    ledger = LineLedger(Mark.origin())
    lines = list(_lines(5))
    for line, sha in lines:
        ledger.open(line, sha, settled=line.number == 2, rejected=int(line.number == 2))
    ledger.settle(3, documents=1, mentions=4)
    assert not ledger.advance() and ledger.mark.line == 0  # line 1 still in flight
    ledger.settle(1, documents=1, mentions=2)
    assert ledger.advance()
    mark = ledger.mark
    assert (mark.line, mark.documents, mark.mentions, mark.rejected) == (3, 2, 6, 1)
    assert mark.offset == lines[2][0].end_offset and mark.sha256 == lines[2][1].hexdigest()
    assert ledger.unsettled() == 2


def test_a_fresh_run_drops_old_rejects_and_a_resumed_one_keeps_those_before_the_mark(tmp_path):
    path = tmp_path / "rejects.jsonl"
    path.write_text("".join(json.dumps({"line": n, "reason": "bad"}) + "\n" for n in (2, 5, 9)))
    resumed = RejectLog(path, keep_through_line=5)
    resumed.write(Rejected(11, "new"))
    resumed.close()
    assert [json.loads(text)["line"] for text in path.read_text().splitlines()] == [2, 5, 11]
    assert resumed.count == 3
    fresh = RejectLog(path)
    fresh.close()
    assert not path.exists() and fresh.count == 0  # created only when something is rejected


def test_the_checkpoint_reads_back_only_for_the_same_input_index_and_pipeline(tmp_path):
    settings = Settings.resolve(data_dir=str(tmp_path), index="books")
    pipeline = {"encoder": {"profile": "p", "layer": 3}, "dim": 8}
    checkpoint = Checkpoint.for_source(settings, FileSource(tmp_path / "corpus.jsonl"), (1, 2), "uuid-1", pipeline)
    assert checkpoint.read() is None
    mark = Mark(12, 340, "ab" * 32, documents=5, mentions=9, rejected=1)
    checkpoint.save(mark)
    assert checkpoint.path.parent == tmp_path / "checkpoints" / "books"
    assert "corpus.jsonl" in checkpoint.path.name and checkpoint.path.name.endswith(".shard-1-of-2.json")
    assert Checkpoint.for_source(settings, FileSource(tmp_path / "corpus.jsonl"), (1, 2), "uuid-1", pipeline).read() == mark
    recreated_index = Checkpoint.for_source(settings, FileSource(tmp_path / "corpus.jsonl"), (1, 2), "uuid-2", pipeline)
    other_model = Checkpoint.for_source(settings, FileSource(tmp_path / "corpus.jsonl"), (1, 2), "uuid-1", {**pipeline, "dim": 9})
    assert recreated_index.read() is None and other_model.read() is None


def test_the_input_fingerprint_accepts_the_same_prefix_and_refuses_a_changed_one():
    data = b"one\ntwo\nthree\n"
    reader = HashingReader(io.BytesIO(data))
    reader.readline()
    reader.readline()
    mark = Mark(2, reader.offset, reader.sha.hexdigest())
    follower = HashingReader(io.BytesIO(data + b"four\n"))  # appended to: still the same prefix
    assert follower.skip_verified(mark) and follower.readline() == b"three\n"
    assert not HashingReader(io.BytesIO(b"one\nTWO\nthree\n")).skip_verified(mark)
    assert not HashingReader(io.BytesIO(b"one\n")).skip_verified(mark)


# --- the stage threads ----------------------------------------------------------------------------


def test_stages_keep_order_and_the_first_failure_stops_all_and_is_raised():
    import queue

    clock = StageClock()
    stages = Stages(clock)
    seen = []
    first, second = queue.Queue(2), queue.Queue(2)
    stages.source("read", iter(range(20)), first)
    stages.step("double", lambda n: 2 * n, first, second)
    stages.sink(seen.append, second)
    stages.wait()
    assert seen == [2 * n for n in range(20)] and set(clock.snapshot()) == {"read", "double"}

    def explode(n):
        if n == 3:
            raise RuntimeError("boom at 3")
        return n

    stages = Stages(StageClock())
    first, second = queue.Queue(1), queue.Queue(1)
    stages.source("read", iter(range(10_000)), first)
    stages.step("explode", explode, first, second)
    stages.sink(lambda n: None, second)
    with pytest.raises(RuntimeError, match="boom at 3"):
        stages.wait()
    assert not any(thread.is_alive() for thread in stages.threads)


# --- whole dry runs with a tiny encoder -------------------------------------------------------------


@pytest.fixture(scope="module")
def embedder(tmp_path_factory):
    from test_encoder_tiny import tiny_encoder  # the encoder tests' tiny random-initialised model

    from ner_os.mentions.embedder import MentionEmbedder

    return MentionEmbedder(tiny_encoder("llama", tmp_path_factory), None)


WORDS = "Ada Lovelace met Charles Babbage in London while the Nile flows north through Egypt".split()


def corpus_lines(count: int) -> list[str]:
    """Documents of varied length with given mentions (the first and last word)."""
    lines = []
    for i in range(count):
        text = " ".join(WORDS[: 2 + i % (len(WORDS) - 2)]) + f" {i}"
        last = text.rindex(" ")
        lines.append(json.dumps({"id": f"doc-{i}", "text": text, "n": i,
                                 "mentions": [{"start": 0, "end": 3}, {"start": last + 1, "end": len(text)}]}))
    return lines


def dry_run(path, embedder, **options):
    options.setdefault("detector", NoDetector())
    return load(path, Settings.resolve(data_dir=str(path.parent / "data")), dry_run=True, embedder=embedder,
                progress=False, **options)


def test_a_dry_run_embeds_every_valid_line_and_lists_every_bad_one(tmp_path, embedder):
    good = corpus_lines(30)
    bad = ["{oops", json.dumps({"text": ""}), json.dumps({"text": "Paris", "mentions": [{"start": 0, "end": 99}]})]
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(good[:10] + bad[:1] + good[10:20] + ["", *bad[1:]] + good[20:]) + "\n")
    summary = dry_run(path, embedder, batch_tokens=64)
    assert (summary.documents, summary.mentions, summary.rejected) == (30, 60, 3)
    assert summary.run_documents == 30 and summary.dry_run
    rejects = [json.loads(text) for text in (tmp_path / "corpus.rejects.jsonl").read_text().splitlines()]
    assert [entry["line"] for entry in rejects] == [11, 23, 24]
    assert "invalid JSON" in rejects[0]["reason"] and "`text` is empty" in rejects[1]["reason"]
    assert set(summary.stage_seconds) == {"read", "spans", "encode", "head", "tag", "bulk"}
    assert 0 < summary.encoder_share <= 1


def test_the_encoder_gets_length_sorted_batches_within_the_token_budget(tmp_path, embedder):
    calls = []
    encoder = embedder.encoder

    class Recording:  # the real encoder, its inputs noted
        def __getattr__(self, name):
            return getattr(encoder, name)

        def encode(self, texts):
            calls.append([len(encoder.tokenize(text)[0]) + 1 for text in texts])
            return encoder.encode(texts)

    import copy

    recording = copy.copy(embedder)
    recording.encoder = Recording()
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(corpus_lines(40)) + "\n")
    dry_run(path, recording, batch_tokens=48)
    assert sum(len(call) for call in calls) == 40 and len(calls) > 3
    for lengths in calls:
        assert lengths == sorted(lengths)
        assert len(lengths) * max(lengths) <= 48 or len(lengths) == 1


def test_shards_split_the_lines_between_workers(tmp_path, embedder):
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(corpus_lines(25)) + "\n")
    parts = [dry_run(path, embedder, shard=(i, 3)) for i in range(3)]
    assert [part.documents for part in parts] == [9, 8, 8]
    assert sum(part.mentions for part in parts) == 50


def test_a_later_line_with_the_same_id_replaces_the_earlier_one(tmp_path, embedder):
    lines = corpus_lines(6)
    replacement = json.loads(lines[4])
    replacement.update(text="Babbage again", mentions=[{"start": 0, "end": 7}])
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(lines + [json.dumps(replacement)]) + "\n")
    summary = dry_run(path, embedder)
    assert (summary.documents, summary.superseded, summary.mentions) == (6, 1, 11)


def test_a_document_the_embedder_refuses_is_rejected_and_the_rest_of_its_batch_loads(tmp_path, embedder):
    import copy

    class Refusing:
        def __init__(self, inner):
            self.inner, self.encoder, self.dim, self.head = inner, inner.encoder, inner.dim, inner.head

        def embed(self, texts, spans):
            if any("poison" in text for text in texts):
                raise NerOsError("span covers no token of 'poison'")
            return self.inner.embed(texts, spans)

    lines = corpus_lines(8)
    lines[3] = json.dumps({"id": "bad", "text": "poison pill", "mentions": [{"start": 0, "end": 6}]})
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(lines) + "\n")
    summary = dry_run(path, Refusing(copy.copy(embedder)))
    assert (summary.documents, summary.rejected) == (7, 1)
    entry = json.loads((tmp_path / "corpus.rejects.jsonl").read_text())
    assert entry["line"] == 4 and entry["id"] == "bad" and "covers no token" in entry["reason"]


def test_spans_come_from_the_detector_where_none_are_given(tmp_path, embedder):
    from ner_os.spans import Span, SpanDetector

    class FirstWord(SpanDetector):
        name = "first-word"

        def detect(self, texts):
            return [[Span(0, text.index(" "))] for text in texts]

    path = tmp_path / "corpus.jsonl"
    path.write_text(json.dumps({"text": "Egypt is hot"}) + "\n" + corpus_lines(1)[0] + "\n")
    assert dry_run(path, embedder, detector=FirstWord()).mentions == 3


def test_bad_options_are_config_errors(tmp_path, embedder):
    path = tmp_path / "corpus.jsonl"
    path.write_text(corpus_lines(1)[0] + "\n")
    with pytest.raises(ConfigError, match="shard 2/2"):
        dry_run(path, embedder, shard=(2, 2))
    with pytest.raises(ConfigError, match="batch_tokens"):
        dry_run(path, embedder, batch_tokens=0)
    with pytest.raises(ConfigError, match="would overwrite the input"):
        dry_run(path, embedder, rejects=path)
    assert path.read_text() == corpus_lines(1)[0] + "\n"


def test_the_loader_is_public_and_imported_lazily():
    import ner_os
    import ner_os.loader.api  # noqa: F401  (no submodule is named after the functions)
    from ner_os.loader import load_records

    assert ner_os.load is load and "load" in ner_os.__all__
    assert ner_os.load_records is load_records and "load_records" in ner_os.__all__


def test_the_cli_exits_1_on_rejects_unless_allowed(tmp_path, monkeypatch, embedder):
    import sys

    from click.testing import CliRunner

    from ner_os import cli as cli_module

    path = tmp_path / "corpus.jsonl"
    path.write_text(corpus_lines(3)[0] + "\n{broken\n")
    real_load = load

    def load_with_tiny_model(source, settings, **options):
        return real_load(source, settings, embedder=embedder, detector=NoDetector(), **options)

    monkeypatch.setattr(sys.modules["ner_os.loader"], "load", load_with_tiny_model)
    runner = CliRunner()
    result = runner.invoke(cli_module.cli, ["load", str(path), "--dry-run", "--no-progress"])
    assert result.exit_code == 1, result.output
    assert "1 documents" in result.output and "1 lines rejected" in result.output
    allowed = runner.invoke(cli_module.cli, ["load", str(path), "--dry-run", "--allow-rejects"])
    assert allowed.exit_code == 0, allowed.output
    bad_shard = runner.invoke(cli_module.cli, ["load", str(path), "--dry-run", "--shard", "5/2"])
    assert bad_shard.exit_code == 2 and "Error: --shard 5/2" in bad_shard.output


def test_an_unreachable_cluster_is_a_clear_error_after_a_bounded_wait(tmp_path):
    import socket
    import time

    from ner_os.errors import ClusterError

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path = tmp_path / "corpus.jsonl"
    path.write_text(corpus_lines(1)[0] + "\n")
    settings = Settings.resolve(opensearch_url=f"http://127.0.0.1:{port}", timeout_s=2, data_dir=str(tmp_path))
    started = time.monotonic()
    with pytest.raises(ClusterError, match=f"127.0.0.1:{port} is unreachable: connection refused"):
        load(path, settings, progress=False)
    assert time.monotonic() - started < 30
