"""ner-os: zero-shot named entity retrieval inside OpenSearch."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ner-os")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

from ner_os.config import Settings  # noqa: E402
from ner_os.errors import NerOsError  # noqa: E402

__all__ = ["Settings", "NerOsError", "__version__", "load", "search_type", "embed_type", "NerOs"]

import sys as _sys  # noqa: E402
import types as _types  # noqa: E402

# Public functions imported on first use, so that ``import ner_os`` stays light: name -> module.
_LAZY = {"load": "ner_os.loader.load", "search_type": "ner_os.query.core", "embed_type": "ner_os.mentions.embedder", "NerOs": "ner_os.client"}


class _Package(_types.ModuleType):
    def __getattr__(self, name):  # only called for names not yet bound
        if name not in _LAZY:
            raise AttributeError(f"module 'ner_os' has no attribute {name!r}")
        from importlib import import_module

        value = getattr(import_module(_LAZY[name]), name)
        super().__setattr__(name, value)
        return value

    def __setattr__(self, name, value):
        # Importing the submodule ner_os.loader.load binds it under the same name as the function it
        # defines; keep the public name for the function (the module stays reachable with
        # ``from ner_os.loader.load import ...``).
        if name in _LAZY and isinstance(value, _types.ModuleType):
            return
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package
