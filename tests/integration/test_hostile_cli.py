"""Hostile command lines against the real node (issue #18, defects 2 and 7): a password in the URL
never reaches what ``ner-os eval`` prints or writes, ``types list`` of a missing index is an error, and
a filter on a field the index does not have names the field instead of blaming the type."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ner_os import cli as cli_module
from ner_os.client import NerOs
from ner_os.config import Settings
from ner_os.errors import NerOsError
from ner_os.loader import load_records
from ner_os.mentions.embedder import MentionEmbedder
from ner_os.spans import NoDetector

pytestmark = pytest.mark.integration

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
SECRET = "s3cret-Pa55"


def with_credentials(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://ner-user:{SECRET}@{rest}"


def test_eval_writes_no_password_to_stdout_stderr_or_its_reports(opensearch_url, fresh_index, tmp_path):
    data, names, out = tmp_path / "d.bio", tmp_path / "types.json", tmp_path / "out"
    data.write_text("Ada\tB-person\nLovelace\tI-person\nmet\tO\nBabbage\tB-person\n\nParis\tB-city\nis\tO\n\n"
                    "London\tB-city\nrains\tO\n", encoding="utf-8")
    names.write_text(json.dumps({"person": "person", "city": "city"}))
    environment = {**os.environ, "NER_OS_PASSWORD": SECRET}
    environment.pop("NER_OS_OPENSEARCH_URL", None)
    command = [sys.executable, "-c", "from ner_os.cli import main; main()", "eval", "--data", str(data),
               "--types", str(names), "--systems", "bm25", "--index", fresh_index, "--out", str(out),
               "--url", with_credentials(opensearch_url), "--username", "ner-user", "--no-progress"]
    done = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "eval.json").read_text())
    assert "***@" in report["command"] and "--url" in report["command"]
    for name, text in [("stdout", done.stdout), ("stderr", done.stderr),
                       *((path.name, path.read_text(errors="replace")) for path in out.iterdir())]:
        assert SECRET not in text, f"the password is in {name}"


def test_types_list_of_a_missing_index_is_an_error_naming_it(opensearch_url, fresh_index):
    result = CliRunner().invoke(cli_module.cli, ["types", "list", "--url", opensearch_url, "--index", fresh_index])
    assert result.exit_code == 2, result.output
    assert f"index {fresh_index!r} does not exist" in result.output
    assert "no type registered" not in result.output


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from test_encoder_tiny import tiny_encoder  # the encoder tests' tiny random-initialised model

    return MentionEmbedder(tiny_encoder("llama", tmp_path_factory), None)


def test_a_filter_on_a_field_the_index_lacks_names_the_field_not_the_type(opensearch_url, fresh_index, tiny,
                                                                          tmp_path):
    settings = Settings.resolve(env={}, opensearch_url=opensearch_url, index=fresh_index, data_dir=str(tmp_path))
    records = [{"id": f"d{i}", "text": f"Ada Lovelace wrote note {i}", "domain": "math" if i % 2 else "art",
                "mentions": [{"start": 0, "end": 12}]} for i in range(6)]
    load_records(records, settings, embedder=tiny, detector=NoDetector(), progress=False)
    with NerOs(settings, embedder=tiny) as ner:
        assert len(ner.search_type("Ada Lovelace", filters={"metadata.domain": "math"}, hybrid=False).hits) == 3
        with pytest.raises(NerOsError) as raised:
            ner.search_type("Ada Lovelace", filters={"domain": "math"}, hybrid=False)
        message = str(raised.value)
        assert "'domain'" in message and "metadata.domain" in message and fresh_index in message
        assert "mentions a" not in message
        with pytest.raises(NerOsError, match="no field 'metadata.colour'.*metadata.domain"):
            ner.search_type("Ada Lovelace", filters={"metadata.colour": "red"}, hybrid=False)
