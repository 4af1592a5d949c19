"""The CLI's own rules: a light start, defaults that match the library, and output formatted by render."""

import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from ner_os import render
from ner_os.cli import cli, options
from ner_os.registered_types import RegisteredType

pytestmark = pytest.mark.unit


def test_the_mention_margin_default_is_the_librarys():
    from ner_os.query import MENTION_MARGIN

    assert options.MENTION_MARGIN == MENTION_MARGIN


def test_help_imports_no_cluster_client_and_no_model_runtime():
    code = ("import sys; from ner_os.cli import cli; "
            "heavy = [m for m in ('opensearchpy', 'torch', 'transformers', 'onnxruntime', 'spacy') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_version_and_help_answer():
    runner = CliRunner()
    assert runner.invoke(cli, ["--version"]).output.startswith("ner-os, version")
    assert "templates" in runner.invoke(cli, ["-h"]).output


def test_registered_types_print_as_tab_separated_lines_or_json():
    item = RegisteredType("dino", "dinosaur", 0.8, np.zeros(4, np.float32), updated_at="2024-01-01")
    assert render.registered_type_line(item) == "dino\tmin-score 0.8\t'dinosaur'\t2024-01-01"
    assert '"dim": 4' in render.registered_type_line(item, as_json=True)


def test_a_mention_is_marked_in_brackets_off_a_terminal():
    assert render.terminal_mark(False)("Nile") == "[[Nile]]"
    assert "Nile" in render.terminal_mark(True)("Nile")
