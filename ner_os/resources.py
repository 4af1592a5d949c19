"""Where the files ner-os ships beside its code live, in a source tree and in an installed wheel.

``index_templates/`` and ``tools/opensearch-node/`` sit at the top of the repository (the design
names them there) and are mapped into the wheel as the data packages ``ner_os.index_templates`` and
``ner_os.opensearch_node`` (see setup.py), so both layouts resolve through importlib.resources.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from ner_os.errors import ConfigError

TEMPLATES_PACKAGE = "ner_os.index_templates"
LAUNCHER_PACKAGE = "ner_os.opensearch_node"
_SOURCE_TREE = Path(__file__).resolve().parents[1]
_SOURCE_DIRS = {TEMPLATES_PACKAGE: _SOURCE_TREE / "index_templates",
                LAUNCHER_PACKAGE: _SOURCE_TREE / "tools" / "opensearch-node"}


def _directory(package: str) -> Path:
    """The directory of a data package: the installed one, else the source tree's."""
    try:
        location = Path(str(files(package)))
    except ModuleNotFoundError:
        location = _SOURCE_DIRS[package]
    if not location.is_dir():
        raise ConfigError(f"ner-os's data directory for {package} is missing ({location}): reinstall ner-os")
    return location


def templates_dir() -> Path:
    """The index, component and search templates and the Dashboards objects."""
    return _directory(TEMPLATES_PACKAGE)


def launcher_dir() -> Path:
    """The Maven project of the local OpenSearch node launcher."""
    return _directory(LAUNCHER_PACKAGE)
