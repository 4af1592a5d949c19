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
    "ray",
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


# The query path: a type query embedded locally with the ONNX backend imports neither torch nor
# transformers. The cluster's part is stood in for (this is a unit test: the index's dimension, the
# vectors check and the search itself); tests/integration/test_light_query.py runs `ner-os search`
# against a real node.
QUERY_STAND_INS = textwrap.dedent(
    """
    import sys
    from ner_os.client import NerOs
    from ner_os.query import TypeResults

    searched = []
    NerOs.vector_dimension = lambda self, index=None: {dim}
    NerOs.check_index_vectors = lambda self, index=None: None
    NerOs.cluster_model = lambda self, index=None, embedding=None: None
    NerOs.neural_search = lambda self: False

    import ner_os.client.prepare as prepare

    def vector_steps(ner, vector, query, index=None):  # the steps, answered without a request
        assert len(vector) == {dim}, len(vector)
        searched.append(query.description)

        def no_request():
            return TypeResults(query.description, index or "ner-os", "knn", 0, ())
            yield

        return no_request(), index or "ner-os"

    prepare.vector_steps = vector_steps
    """
)
API_QUERY = "\nNerOs().search_type('dinosaur', hybrid=False)\nassert searched == ['dinosaur'], searched\n"
CLI_QUERY = textwrap.dedent(
    """
    from ner_os.cli import main
    sys.argv = ["ner-os", "search", "river in Africa", "--no-hybrid"]
    try:
        main()
    except SystemExit as exit:
        assert exit.code in (0, None), exit.code
    assert searched == ["river in Africa"], searched
    """
)


@pytest.fixture(scope="module")
def tiny_query_env(tmp_path_factory):
    """NER_OS_* settings of a tiny ONNX export in a cache of its own (built here, with torch)."""
    import os

    from test_encoder_tiny import LAYER, tiny_model_dir

    from ner_os.encoder.export import ensure_export, read_manifest
    from ner_os.profiles import resolve_profile

    model = tiny_model_dir("llama", tmp_path_factory)
    cache = tmp_path_factory.mktemp("query-cache")
    export = ensure_export(resolve_profile("custom", model=model, layer=LAYER), cache_dir=cache)
    settings = {"NER_OS_PROFILE": "custom", "NER_OS_MODEL": model, "NER_OS_LAYER": str(LAYER), "NER_OS_HEAD": "none",
                "NER_OS_BACKEND": "onnx", "NER_OS_CACHE_DIR": str(cache), "NER_OS_OPENSEARCH_URL": "http://127.0.0.1:9"}
    return {**os.environ, **settings}, read_manifest(export)["d_v"]


@pytest.mark.parametrize("query", [API_QUERY, CLI_QUERY], ids=["NerOs.search_type", "ner-os search"])
def test_query_path_imports_neither_torch_nor_transformers(query, tiny_query_env):
    env, dim = tiny_query_env
    code = QUERY_STAND_INS.format(dim=dim) + query + REPORT
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False,
                          env=env)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert "onnxruntime" in found  # it did embed, with the ONNX backend
    assert not {"torch", "transformers", "optimum", "spacy"} & set(found), found


def test_the_cluster_search_path_imports_no_model_library():
    """``ner-os search`` with the model deployed in ML Commons: the CLI command, the client, the query and
    store modules it runs, and the deploy package's API, import neither torch, transformers, ONNX
    Runtime nor tokenizers (tests/integration/test_ml_commons.py runs the command itself)."""
    code = ("import ner_os.cli.search, ner_os.cli.model, ner_os.client, ner_os.query, ner_os.store.ml, ner_os.deploy\n"
            "from ner_os.client import NerOs\n"
            "NerOs(embedding='cluster')\n")
    assert set(heavy_modules_after(code)) <= {"opensearchpy"}
    done = subprocess.run([sys.executable, "-c", code + "import sys; print('tokenizers' in sys.modules)"],
                          capture_output=True, text=True, timeout=300, check=True)
    assert done.stdout.strip().splitlines()[-1] == "False"
