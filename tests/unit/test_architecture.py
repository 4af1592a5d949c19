"""The house rules of docs/architecture.md, checked: floors, no cycles, one owner of OpenSearch, small parts."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "ner_os"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def test_import_contracts_hold():
    # in a process of its own: import-linter reconfigures logging, which would leak into later tests;
    # it reads [tool.importlinter] from the pyproject.toml of its working directory
    run = subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports; "
                          "sys.exit(lint_imports(no_cache=True))"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def _modules():
    return sorted(PACKAGE.rglob("*.py"))


def test_no_module_is_a_hall():
    long = {str(path.relative_to(ROOT)): n for path in _modules()
            if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_no_function_is_a_hall():
    long = {}
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"] = length
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_every_module_has_its_line_in_the_architecture_doc():
    doc = (ROOT / "docs" / "architecture.md").read_text()
    missing = []
    for path in _modules():
        relative = path.relative_to(ROOT).as_posix()
        if path.name == "__init__.py" and path.parent != PACKAGE:
            continue
        parent = path.parent.relative_to(ROOT).as_posix() + "/"
        named = relative in doc or (parent in doc and (f"`{path.stem}" in doc or f"{path.stem}.py" in doc))
        if not named:
            missing.append(relative)
    assert not missing, f"docs/architecture.md does not say where these live: {missing}"
