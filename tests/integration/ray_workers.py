"""What the Ray tests hand to their workers: builders of a small embedder (and a fault), importable in
a Ray worker process (the tests put this folder on the workers' PYTHONPATH).

An embedder is built in each worker from a zero-argument callable (``ner_os.ray`` options
``embedder=`` and ``detector=``); these are such callables, picklable by reference.
"""

from __future__ import annotations

import os
from pathlib import Path



class TinyEmbedder:
    """The tiny random-initialised llama of the encoder tests, through the real Encoder (torch, 1 thread)."""

    def __init__(self, model_dir: str, cache_dir: str, layer: int = 2):
        self.model_dir, self.cache_dir, self.layer = model_dir, cache_dir, layer

    def __call__(self):
        from ner_os.encoder import Encoder
        from ner_os.mentions.embedder import MentionEmbedder

        encoder = Encoder.load("custom", model=self.model_dir, layer=self.layer, backend="torch",
                               cache_dir=self.cache_dir, threads=1)
        return MentionEmbedder(encoder, None)


class DiesOnce:
    """An embedder builder whose encoder kills its worker process (``os._exit``) in the middle of its
    ``after``-th batch, once: the marker file, made just before, keeps every later run alive."""

    def __init__(self, inner, marker: str, after: int = 2):
        self.inner, self.marker, self.after = inner, marker, after

    def __call__(self):
        embedder = self.inner()
        embedder.encoder = _DyingEncoder(embedder.encoder, Path(self.marker), self.after)
        return embedder


class _DyingEncoder:
    def __init__(self, encoder, marker: Path, after: int):
        self.encoder, self.marker, self.after, self.calls = encoder, marker, after, 0

    def __getattr__(self, name):
        if name == "encoder":  # not set yet (copying): no recursion
            raise AttributeError(name)
        return getattr(self.encoder, name)

    def encode(self, texts, *args, **kwargs):
        self.calls += 1
        if self.calls == self.after:
            try:
                descriptor = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.write(descriptor, str(os.getpid()).encode())
                os.close(descriptor)
                os._exit(1)  # the worker dies: Ray restarts the actor and runs its batch again
        return self.encoder.encode(texts, *args, **kwargs)
