import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_cli_docs", ROOT / "tools" / "gen_cli_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_matches_help_texts():
    generator = _generator()
    expected = generator.render_cli_reference()
    actual = generator.DOCS_PATH.read_text(encoding="utf-8")
    assert actual == expected, "docs/cli.md is stale: run `python tools/gen_cli_docs.py`"


def test_every_command_answers_help():
    from click.testing import CliRunner

    from ner_os.cli import cli

    generator = _generator()
    import click

    root_ctx = click.Context(cli, info_name="ner-os")
    for path, _command, _ctx in generator._walk(cli, root_ctx):
        result = CliRunner().invoke(cli, [*path[1:], "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output
