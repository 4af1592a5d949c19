"""``ner-os eval`` on hostile input (issue #18, defects 2 and 6): a file that is not UTF-8 text, or holds
tags that are no BIO tags, is named with its line and the bad bytes or tag; and a password in the URL or
on the command line never reaches what the eval prints or records."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from ner_os.config import redacted_command
from ner_os.errors import NerOsError
from ner_os.evaluation.corpus import read_corpus
from ner_os.evaluation.readers import FormatError, read_bio

pytestmark = pytest.mark.unit


# --- defect 6: the file and its tags ------------------------------------------------------------


def test_a_latin1_file_is_named_with_its_line_and_byte(tmp_path):
    path = tmp_path / "latin1.bio"
    path.write_bytes("Ada\tB-person\n\nZ\u00fcrich\tB-city\nis\tO\n".encode("latin-1"))
    with pytest.raises(FormatError) as raised:
        read_corpus(path)
    message = str(raised.value)
    assert f"{path}:3:" in message and "not UTF-8" in message and "0xfc" in message and "\n" not in message


def test_a_binary_file_is_named_as_such(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"\x9d\x00\x13\x07\xff" * 40)
    with pytest.raises(FormatError) as raised:
        read_corpus(path)
    message = str(raised.value)
    assert f"{path}:1:" in message and ("binary" in message or "not UTF-8" in message)


@pytest.mark.parametrize("tag", ["B-", "I-", "X-LOC", "b-LOC", "B_", "Q_person"])
def test_a_malformed_tag_is_named_with_its_line(tmp_path, tag):
    path = tmp_path / "bad.bio"
    path.write_text(f"Ada\tB-person\nLovelace\tI-person\n\nParis\t{tag}\n", encoding="utf-8")
    with pytest.raises(FormatError) as raised:
        list(read_bio(path))
    message = str(raised.value)
    assert f"{path}:4:" in message and repr(tag) in message


@pytest.mark.parametrize("tag, label", [("B-LOC", "LOC"), ("S-LOC", "LOC"), ("U-LOC", "LOC"), ("E_LOC", "LOC"),
                                        ("location-GPE", "location-GPE"), ("person", "person")])
def test_well_formed_tags_still_read(tmp_path, tag, label):
    path = tmp_path / "good.bio"
    path.write_text(f"Paris\t{tag}\nis\tO\n", encoding="utf-8")
    (sentence,) = read_bio(path)
    assert [(m.start, m.end, m.label) for m in sentence.mentions] == [(0, 5, label)]


def test_the_cli_names_the_file_and_line_of_a_latin1_file(tmp_path):
    from ner_os import cli as cli_module

    data, names = tmp_path / "latin1.bio", tmp_path / "types.json"
    data.write_bytes("Z\u00fcrich\tB-city\n".encode("latin-1"))
    names.write_text('{"city": "city"}')
    result = CliRunner().invoke(cli_module.cli, ["eval", "--data", str(data), "--types", str(names),
                                                 "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 2, result.output
    assert f"{data}:1:" in result.output and "codec can't decode" not in result.output


# --- defect 2: credentials in what the eval records --------------------------------------------------


@pytest.mark.parametrize("argv, secret", [
    (["ner-os", "eval", "--url", "http://user:s3cret@host:9200", "--data", "x"], "s3cret"),
    (["ner-os", "eval", "--url=https://user:s3cret@host", "--data", "x"], "s3cret"),
    (["ner-os", "eval", "--password", "s3cret", "--data", "x"], "s3cret"),
    (["ner-os", "eval", "--password=s3cret", "--data", "x"], "s3cret"),
])
def test_the_recorded_command_line_holds_no_credential(argv, secret):
    recorded = redacted_command(argv)
    assert secret not in recorded and "***" in recorded
    assert recorded.startswith("ner-os eval") and "--data x" in recorded


def test_the_eval_command_records_its_command_line_without_the_password(tmp_path, monkeypatch):
    import sys

    from ner_os import cli as cli_module
    from ner_os.evaluation import run as eval_run

    seen = {}

    def capture(*args, command=None, **kwargs):
        seen["command"] = command
        raise NerOsError("stop here")

    monkeypatch.setattr(eval_run, "evaluate", capture)
    data, names = tmp_path / "d.bio", tmp_path / "types.json"
    data.write_text("Paris\tB-city\n")
    names.write_text('{"city": "city"}')
    argv = ["eval", "--data", str(data), "--types", str(names), "--url", "http://user:s3cret@127.0.0.1:9"]
    monkeypatch.setattr(sys, "argv", ["ner-os", *argv])
    result = CliRunner().invoke(cli_module.cli, argv)
    assert "stop here" in result.output
    assert "s3cret" not in seen["command"] and "http://***@127.0.0.1:9" in seen["command"]
