"""The loader on Ray Data (``pip install ner-os[ray]``): :func:`load_file` and :func:`load_dataset`
write the documents :func:`ner_os.loader.load` writes, with the encoder on a Ray actor pool.

``api`` (load_file, load_dataset, connect), ``source`` (JSONL file -> rows, with line numbers;
records of a Dataset -> rows), ``steps`` (spans, and the embedding actor), ``sink`` (IndexSink, over
the loader's bulk writer), ``rows`` (the table the stages pass on). Ray is imported here: nothing
else in ner_os imports this package except the CLI's ``load --engine ray``, when it runs.
"""

from ner_os.errors import ConfigError

try:
    import ray  # noqa: F401
    import ray.data  # noqa: F401
except ImportError:  # pragma: no cover - depends on the environment
    raise ConfigError("the Ray engine needs Ray Data: pip install 'ner-os[ray]'") from None

from ner_os.ray.api import connect, load_dataset, load_file  # noqa: E402

__all__ = ["load_file", "load_dataset", "connect"]
