"""``import ner_os`` and ``ner-os --help`` stay light: the heavy libraries are imported on first use.

Each check runs in a fresh interpreter and looks at ``sys.modules`` afterwards (no timing).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.unit

# what a light import must not pull in; numpy and platformdirs are cheap and allowed
HEAVY = (
    "torch",
    "transformers",
    "optimum",
    "onnx",
    "onnxruntime",
    "spacy",
    "opensearchpy",
    "sklearn",
    "matplotlib",
    "sentence_transformers",
)

REPORT = textwrap.dedent(
    f"""
    import json as _json, sys as _sys
    _heavy = {HEAVY!r}
    print(_json.dumps(sorted({{name.split(".")[0] for name in _sys.modules}} & set(_heavy))))
    """
)

# the console script's entry point (pyproject: ner-os = "ner_os.cli:main"), run as `ner-os ARGS --help`
CLI_HELP = textwrap.dedent(
    """
    import contextlib, io, sys
    from ner_os.cli import main

    def help_text(*args):
        sys.argv = ["ner-os", *args, "--help"]
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            try:
                main()
            except SystemExit as exit:
                assert exit.code in (0, None), (args, exit.code)
        return out.getvalue()

    text = help_text()
    assert "Commands:" in text, text
    listed = text.split("Commands:")[1].splitlines()
    commands = [line.split()[0] for line in listed if line.startswith("  ") and line.strip()]
    assert commands, text
    for command in commands:
        help_text(command)
    """
)


def heavy_modules_after(code: str) -> list[str]:
    """The heavy top-level packages in ``sys.modules`` after ``code`` ran in a new interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", code + REPORT], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_import_ner_os_is_light():
    assert heavy_modules_after("import ner_os") == []


@pytest.mark.parametrize("package", ["ner_os.encoder", "ner_os.spans", "ner_os.mentions", "ner_os.head"])
def test_lower_floors_import_no_backend(package):
    # the encoder's backends (torch, onnxruntime) and spaCy are imported when a runner/detector is built
    assert heavy_modules_after(f"import {package}") == []


def test_cli_help_is_light():
    """``ner-os --help`` and the ``--help`` of every command import no heavy library."""
    assert heavy_modules_after(CLI_HELP) == []


def test_backends_import_what_they_run_on():
    # the other side of the check above: the backend modules do import their libraries
    found = heavy_modules_after("import ner_os.encoder.onnx_runner, ner_os.encoder.torch_runner")
    assert {"onnxruntime", "torch"} <= set(found)
