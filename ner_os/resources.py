"""Where the files ner-os ships beside its code live, in a source tree and in an installed wheel.

``index_templates/`` and ``tools/opensearch-node/`` sit at the top of the repository (the design
names them there); the wheel carries them inside the package as ``ner_os/index_templates/`` and
``ner_os/opensearch_node/`` (see setup.py). The copy beside the imported package wins, so an
installed wheel never reads a source tree, and a clone (or an editable install) reads its own.
"""

from __future__ import annotations

from pathlib import Path

from ner_os.errors import ConfigError

_PACKAGE_DIR = Path(__file__).resolve().parent
_PLACES = {  # name in the wheel -> place in the source tree
    "index_templates": _PACKAGE_DIR.parent / "index_templates",
    "opensearch_node": _PACKAGE_DIR.parent / "tools" / "opensearch-node",
}


def _directory(name: str) -> Path:
    for location in (_PACKAGE_DIR / name, _PLACES[name]):
        if location.is_dir():
            return location
    raise ConfigError(f"ner-os's data directory {name!r} is missing (looked in {_PACKAGE_DIR / name} and "
                      f"{_PLACES[name]}): reinstall ner-os")


def templates_dir() -> Path:
    """The index, component and search templates and the Dashboards objects."""
    return _directory("index_templates")


def launcher_dir() -> Path:
    """The Maven project of the local OpenSearch node launcher."""
    return _directory("opensearch_node")
