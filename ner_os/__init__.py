"""ner-os: zero-shot named entity retrieval inside OpenSearch."""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ner-os")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

from ner_os.config import Settings  # noqa: E402
from ner_os.errors import NerOsError  # noqa: E402

__all__ = ["Settings", "NerOsError", "__version__", "load", "load_records", "search_type", "search_types", "embed_type", "NerOs",
           "AsyncNerOs"]

# Public functions imported on first use, so that ``import ner_os`` stays light: name -> module.
_LAZY = {"load": "ner_os.loader", "load_records": "ner_os.loader", "search_type": "ner_os.client", "search_types": "ner_os.client",
         "AsyncNerOs": "ner_os.client",
         "embed_type": "ner_os.mentions.embedder", "NerOs": "ner_os.client"}


def __getattr__(name):  # only called for names not yet bound (PEP 562)
    if name not in _LAZY:
        raise AttributeError(f"module 'ner_os' has no attribute {name!r}")
    value = getattr(import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
