"""ner-os: zero-shot named entity retrieval inside OpenSearch."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ner-os")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

from ner_os.config import Settings  # noqa: E402
from ner_os.errors import NerOsError  # noqa: E402

__all__ = ["Settings", "NerOsError", "__version__"]
