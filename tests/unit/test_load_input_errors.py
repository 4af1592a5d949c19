"""Hostile input to the loader, found before anything costly happens or reported where it is: a truncated
or corrupt gzip (named, located, the lines before the break loaded, its own exit code), a missing input
or a directory (refused before the model loads), and two processes saving one checkpoint at once
(issue #18, defects 1, 3 and 5)."""

from __future__ import annotations

import gzip
import multiprocessing
import zlib
from pathlib import Path

import pytest

from ner_os.config import Settings
from ner_os.errors import BrokenInputError, ConfigError
from ner_os.loader import load
from ner_os.loader import api as loader_api
from ner_os.loader.checkpoint import Checkpoint
from ner_os.loader.ledger import Mark
from ner_os.loader.sources import FileSource
from ner_os.mentions.embedder import MentionEmbedder
from ner_os.spans import NoDetector
from tiny_load import embedder, tiny_lines  # noqa: F401 (embedder: the shared fixture)

pytestmark = pytest.mark.unit


def corpus_lines(count: int) -> list[str]:
    return tiny_lines(count, last_word=False)


def dry_run(path, embedder, **options):
    return load(path, Settings.resolve(env={}, data_dir=str(Path(path).parent / "data")), dry_run=True,
                embedder=embedder, detector=NoDetector(), progress=False, **options)


def truncated_gzip(path: Path, lines: list[str], keep: float = 0.6) -> tuple[int, int]:
    """``lines`` gzipped into ``path`` and cut at ``keep`` of its bytes; (bytes kept, complete lines in them)."""
    whole = gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0)
    cut = int(len(whole) * keep)
    path.write_bytes(whole[:cut])
    readable = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(whole[:cut])
    return cut, readable.count(b"\n")


# --- defect 1: a truncated or corrupt gzip ---------------------------------------------------------


def test_a_truncated_gzip_loads_the_lines_before_the_break_and_says_where_it_broke(tmp_path, embedder):
    lines = corpus_lines(400)
    path = tmp_path / "corpus.jsonl.gz"
    cut, complete = truncated_gzip(path, lines)
    assert 0 < complete < len(lines)
    with pytest.raises(BrokenInputError) as raised:
        dry_run(path, embedder, batch_tokens=64)
    message = str(raised.value)
    assert str(path) in message and "truncated" in message and "\n" not in message
    assert f"at byte {cut:,}" in message and f"after line {complete:,}" in message
    summary = raised.value.summary
    assert summary.documents == complete and summary.rejected == 0  # every readable line, none lost
    assert not (tmp_path / "corpus.rejects.jsonl").exists()  # the cut-off line is not a "bad line"


def test_a_corrupt_gzip_is_named_with_the_byte_where_it_stops_being_readable(tmp_path, embedder):
    whole = bytearray(gzip.compress(("\n".join(corpus_lines(400)) + "\n").encode(), mtime=0))
    middle = len(whole) // 2
    whole[middle:middle + 64] = bytes(64)  # zeroes in the middle of the deflate stream
    path = tmp_path / "corpus.jsonl.gz"
    path.write_bytes(bytes(whole))
    with pytest.raises(BrokenInputError) as raised:
        dry_run(path, embedder, batch_tokens=64)
    message = str(raised.value)
    assert str(path) in message and "corrupt gzip" in message and "after line" in message
    assert raised.value.summary.documents > 0


def test_the_cli_reports_a_truncated_gzip_with_its_own_exit_code(tmp_path, monkeypatch, embedder):
    import sys

    from click.testing import CliRunner

    from ner_os import cli as cli_module

    path = tmp_path / "corpus.jsonl.gz"
    cut, complete = truncated_gzip(path, corpus_lines(400))
    real_load = load

    def load_with_tiny_model(source, settings, **options):
        return real_load(source, settings, embedder=embedder, detector=NoDetector(), **options)

    monkeypatch.setattr(sys.modules["ner_os.loader"], "load", load_with_tiny_model)
    result = CliRunner().invoke(cli_module.cli, ["load", str(path), "--dry-run", "--no-progress"])
    assert result.exit_code == 3, result.output
    assert "Aborted" not in result.output
    assert f"{complete:,} documents" in result.output  # the summary of what did load
    assert "Error: " in result.output and str(path) in result.output and f"after line {complete:,}" in result.output


def test_load_help_documents_every_exit_code():
    from click.testing import CliRunner

    from ner_os import cli as cli_module

    shown = " ".join(CliRunner().invoke(cli_module.cli, ["load", "--help"]).output.split())
    assert "Exit codes:" in shown
    for code in ("0 ", "1 ", "2 ", "3 "):
        assert code in shown.split("Exit codes:")[1]
    assert "truncated" in shown


# --- defect 5: a missing input or a directory, before any model loads --------------------------------


@pytest.fixture
def no_model(monkeypatch):
    """Fails the test if the loader builds an embedder or a span detector."""
    built = []

    def refuse(*args, **kwargs):
        built.append(args)
        raise AssertionError("the model was loaded before the input was checked")

    monkeypatch.setattr(MentionEmbedder, "from_settings", classmethod(lambda cls, *a, **k: refuse(*a, **k)))
    monkeypatch.setattr(loader_api, "default_detector", refuse)
    return built


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_an_input_that_is_no_file_is_refused_before_the_model_loads(tmp_path, no_model, kind):
    path = tmp_path / "corpus.jsonl"
    if kind == "directory":
        path.mkdir()
    # an unreachable cluster too: the input is checked before connecting (or starting a local node)
    settings = Settings.resolve(env={}, data_dir=str(tmp_path / "data"), opensearch_url="http://127.0.0.1:9",
                                timeout_s=1)
    with pytest.raises(ConfigError) as raised:
        load(path, settings, progress=False)
    message = str(raised.value)
    assert str(path) in message
    assert ("is a directory" in message) if kind == "directory" else ("no such file" in message)
    assert "no such file" not in message or kind == "missing"
    assert no_model == []
    assert not (tmp_path / "data" / "checkpoints").exists()


def test_an_unreadable_input_is_refused_before_the_model_loads(tmp_path, no_model):
    import os

    path = tmp_path / "corpus.jsonl"
    path.write_text(corpus_lines(1)[0] + "\n")
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):  # root reads anything
            pytest.skip("running as root: a file without read permission is still readable")
        with pytest.raises(ConfigError, match="cannot be read"):
            load(path, Settings.resolve(env={}, data_dir=str(tmp_path / "data")), dry_run=True, progress=False)
    finally:
        path.chmod(0o644)
    assert no_model == []


# --- defect 3: two processes saving one checkpoint ------------------------------------------------


def _save_many(path: str, worker: int, rounds: int, failures) -> None:
    settings = Settings.resolve(env={}, data_dir=path, index="shared")
    checkpoint = Checkpoint.for_source(settings, FileSource(Path(path) / "corpus.jsonl"), (0, 1), "uuid", {"dim": 8})
    for round_ in range(rounds):
        try:
            checkpoint.save(Mark(round_, round_ * 10, f"{worker:02d}" * 32, documents=round_))
            read = checkpoint.read()
            assert read is not None and read.offset == read.line * 10  # a whole checkpoint, never a torn one
        except BaseException as error:  # noqa: BLE001 - reported to the parent
            failures.put(f"worker {worker}: {type(error).__name__}: {error}")
            return


def test_two_processes_saving_one_checkpoint_never_collide(tmp_path):
    context = multiprocessing.get_context("fork")
    failures = context.Queue()
    workers = [context.Process(target=_save_many, args=(str(tmp_path), worker, 400, failures)) for worker in (1, 2)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(120)
    found = []
    while not failures.empty():
        found.append(failures.get())
    assert found == []
    assert all(process.exitcode == 0 for process in workers)
    left = sorted(path.name for path in (tmp_path / "checkpoints" / "shared").iterdir())
    assert len(left) == 1 and left[0].endswith(".json")  # no temporary file left behind


# --- defect 4 (the unit part): lines acknowledged beyond the mark ----------------------------------


def test_lines_acknowledged_beyond_the_mark_are_kept_and_skipped_only_with_the_same_bytes(tmp_path):
    import hashlib

    from ner_os.loader.ledger import LineLedger
    from ner_os.loader.records import Line

    sha, lines = hashlib.sha256(), []
    for number in range(1, 5):
        raw = f'{{"text": "line {number}"}}'.encode()
        sha.update(raw + b"\n")
        lines.append((Line(number, raw, 20 * number), sha.copy()))
    ledger = LineLedger(Mark.origin())
    for line, state in lines:
        ledger.open(line, state)
    ledger.settle(3, documents=1, mentions=2)  # written before lines 1 and 2 (a shorter text)
    assert not ledger.advance()
    mark = ledger.checkpoint_mark()
    assert mark.line == 0 and [entry[0] for entry in mark.ahead] == [3]
    checkpoint = Checkpoint.for_source(Settings.resolve(env={}, data_dir=str(tmp_path)), FileSource(tmp_path / "c"),
                                       (0, 1), "uuid", {"dim": 8})
    checkpoint.save(mark)
    assert checkpoint.read() == mark  # through JSON and back
    resumed = LineLedger(checkpoint.read())
    assert not resumed.open_if_acknowledged(*lines[0])  # never acknowledged: loaded again
    assert not resumed.open_if_acknowledged(Line(3, b'{"text": "changed"}', 60), lines[2][1])  # other bytes
    again = LineLedger(checkpoint.read())  # the reader opens lines in input order
    for line, state in (lines[0], lines[1]):
        assert not again.open_if_acknowledged(line, state)
        again.open(line, state)
        again.settle(line.number, documents=1, mentions=1)
    assert again.open_if_acknowledged(*lines[2])  # settled at once, with what it gave
    assert again.advance() and (again.mark.line, again.mark.documents, again.mark.mentions) == (3, 3, 4)
