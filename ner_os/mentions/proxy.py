"""The one encoder proxy: an encoder that can time its ``encode`` calls and/or remember what it encoded.

:class:`EncoderProxy` has the wrapped encoder's interface (every attribute but ``encode`` and its
own is the wrapped encoder's), so the loader, :class:`ner_os.mentions.embedder.MentionEmbedder`
and the query layer take it as they take an encoder.

- ``clock``: any object with ``add(name, seconds)`` (the loader's ``StageClock``): the seconds spent
  in ``encode`` are added under ``clock_name`` -- the encoder's share of a load's wall time.
- ``remember``: each distinct text's encoding is kept, so a text asked for again costs nothing and
  several embedders on one proxy (raw and projected, gold and detected spans) share one model pass.
  Memory: one ``[n_tokens, d_v]`` float32 array per distinct text (1 KB per token for Gemma 3 270M).
  :meth:`encode_all` fills the memory ahead, slice by slice, reading and writing an on-disk
  :class:`ner_os.mentions.cache.VectorCache` when given one.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Sequence

from tqdm import tqdm


class EncoderProxy:
    """``encoder`` behind an optional clock and an optional memory of encoded texts."""

    def __init__(self, encoder, clock=None, remember: bool = False, clock_name: str = "encode"):
        self._encoder = encoder
        self._clock = clock
        self._clock_name = clock_name
        self._remembered: dict[str, Any] | None = {} if remember else None
        self._lock = threading.Lock()
        self.encoded_texts = 0  # texts that went through the wrapped encoder

    @property
    def wrapped(self):
        """The encoder behind this proxy."""
        return self._encoder

    def encode(self, texts: Sequence[str]) -> list:
        if isinstance(texts, str):
            raise TypeError("encode takes a list of texts, not one string")
        started = time.perf_counter()
        try:
            return self._encode(list(texts))
        finally:
            if self._clock is not None:
                self._clock.add(self._clock_name, time.perf_counter() - started)

    def _encode(self, texts: list[str]) -> list:
        if self._remembered is None:
            encoded = self._encoder.encode(texts)
            with self._lock:
                self.encoded_texts += len(texts)
            return encoded
        with self._lock:
            missing = [text for text in dict.fromkeys(texts) if text not in self._remembered]
        if missing:
            fresh = self._encoder.encode(missing)
            with self._lock:
                self._remembered.update(zip(missing, fresh))
                self.encoded_texts += len(missing)
        with self._lock:
            return [self._remembered[text] for text in texts]

    def remember(self, texts: Sequence[str], encoded: Sequence) -> None:
        """Take encodings made elsewhere (read from a cache) as if this proxy had made them."""
        if self._remembered is None:
            raise TypeError("this EncoderProxy was made with remember=False")
        with self._lock:
            self._remembered.update(zip(texts, encoded))

    def remembers(self, text: str) -> bool:
        with self._lock:
            return self._remembered is not None and text in self._remembered

    def encode_all(self, texts: Sequence[str], cache=None, slice_texts: int = 256,
                   progress: bool | None = None) -> None:
        """Encode every text not yet remembered, longest first, slice by slice (one progress step each).

        With a ``cache`` (:class:`ner_os.mentions.cache.VectorCache`), a slice it holds is read
        instead of encoded, and each slice encoded is written to it at once: an interrupted run
        loses one slice at most.
        """
        if self._remembered is None:
            raise TypeError("encode_all fills the memory of an EncoderProxy made with remember=True")
        with self._lock:
            missing = sorted(set(texts) - set(self._remembered), key=lambda text: (-len(text), text))
        tokenize = getattr(self._encoder, "tokenize", None)
        shown = progress if progress is not None else sys.stderr.isatty()
        with tqdm(total=len(missing), unit="text", desc="encoding", disable=not shown, leave=False) as bar:
            for first in range(0, len(missing), slice_texts):
                part = missing[first : first + slice_texts]
                stored = cache.read_encoded(part, tokenize) if cache is not None else None
                if stored is not None:
                    self.remember(part, stored)
                else:
                    encoded = self.encode(part)
                    if cache is not None:
                        cache.write_encoded(part, encoded)
                bar.update(len(part))

    def __getattr__(self, name: str):
        encoder = self.__dict__.get("_encoder")  # absent while copy/pickle rebuild the object
        if encoder is None:
            raise AttributeError(name)
        return getattr(encoder, name)
