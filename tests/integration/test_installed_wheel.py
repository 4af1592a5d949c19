"""A built wheel works on its own: installed into a fresh virtual environment outside the source tree,
it installs the templates, loads the shipped sample and answers a search against the real node.

The environment sees the machine's site-packages (torch and the offline models are gigabytes), but
ner-os itself comes only from the wheel: the test checks where the imported package lives.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.model]

ROOT = Path(__file__).resolve().parents[2]


def _run(command: list[str], cwd: Path, env: dict[str, str], timeout: float = 900) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(python, ner-os executable, environment) of a venv holding only the wheel of this tree."""
    work = tmp_path_factory.mktemp("wheel")
    env = {key: value for key, value in os.environ.items() if not key.startswith("NER_OS_")}
    # built from a copy without earlier build outputs: setuptools reuses ./build/lib, which would carry
    # modules deleted since into the wheel
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "target",
                                                                  "__pycache__", ".pytest_cache", "*.rejects.jsonl"))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(work), str(source)],
         cwd=work, env=env)
    wheel = next(work.glob("ner_os-*.whl"))
    venv = work / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], cwd=work, env=env)
    python = venv / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(wheel)], cwd=work, env=env)
    return python, venv / "bin" / "ner-os", env, work


def test_the_package_comes_from_the_wheel(installed):
    python, _, env, work = installed
    where = _run([str(python), "-c", "import ner_os, ner_os.resources as r; "
                  "print(ner_os.__file__); print(r.templates_dir()); print(r.launcher_dir())"], cwd=work, env=env)
    package, templates, launcher = where.split()
    for path in (package, templates, launcher):
        assert str(ROOT) not in path and "site-packages" in path, where
    assert (Path(templates) / "index_template.json").is_file()
    assert (Path(launcher) / "pom.xml").is_file()


def test_templates_load_and_search_from_the_installed_wheel(installed, opensearch_url, client):
    python, ner_os_cli, env, work = installed
    index = f"nerostest-wheel-{uuid.uuid4().hex[:8]}"
    env = {**env, "NER_OS_OPENSEARCH_URL": opensearch_url, "NER_OS_INDEX": index}
    sample = _run([str(python), "-c", "from importlib.resources import files; "
                   "print(files('ner_os') / 'samples' / 'fewnerd-sample.jsonl')"], cwd=work, env=env).strip()
    assert str(ROOT) not in sample
    try:
        _run([str(ner_os_cli), "templates", "install"], cwd=work, env=env)
        loaded = _run([str(ner_os_cli), "load", sample, "--no-progress"], cwd=work, env=env)
        assert "306 documents" in loaded
        hits = [json.loads(line) for line in
                _run([str(ner_os_cli), "search", "body of water", "--size", "3", "--json"], cwd=work, env=env).splitlines()]
        assert len(hits) == 3
        assert any(mention["surface"].endswith(("River", "Dam", "Lake")) for hit in hits for mention in hit["mentions"])
    finally:
        client.indices.delete(index=f"{index}*", ignore_unavailable=True, expand_wildcards="all")
        from ner_os.store import schema

        schema.remove_templates(client, index)
