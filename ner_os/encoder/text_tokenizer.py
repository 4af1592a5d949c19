"""``TextTokenizer``: a saved fast tokenizer read with the ``tokenizers`` package alone (no transformers).

An export directory holds the files ``save_pretrained`` wrote: ``tokenizer.json`` (the
``tokenizers`` model), ``tokenizer_config.json`` and ``special_tokens_map.json`` (which tokens are
BOS, EOS, PAD, UNK). :class:`TextTokenizer` gives the ids and offsets the transformers fast
tokenizer gives for them (``tests/unit/test_text_tokenizer.py`` checks it on every architecture and
on Gemma), and the special-token ids from the config files without parsing the vocabulary.

Startup: Gemma's ``tokenizer.json`` is 32 MB of indented JSON (262k pieces, 515k merges) and takes
seconds to parse. The first load writes ``tokenizer.fast.json`` beside it: the same tokenizer as
compact JSON with the merges as ``"a b"`` strings (the format ``tokenizers`` has always read),
kept only if it loads back to exactly the same tokenizer; later loads read that file. The
vocabulary is loaded on first use (:attr:`TextTokenizer.backend`), so building one costs two small
JSON reads; and a short text (a type description) is tokenised by the restriction of the tokenizer
to the pieces it can form (:mod:`ner_os.encoder.vocab_index`, milliseconds, the same ids and
offsets), until a process has tokenised so many that loading the whole one pays off.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, Sequence

from ner_os.encoder.vocab_index import INDEX_FILE, VocabIndex, write_index
from ner_os.errors import ConfigError

log = logging.getLogger(__name__)

TOKENIZER_FILE = "tokenizer.json"
FAST_FILE = "tokenizer.fast.json"
CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_FILE = "special_tokens_map.json"
ROLES = ("bos", "eos", "pad", "unk")
RESTRICTED_CALLS_BEFORE_LOADING = 16


class TextTokenizer:
    """The fast tokenizer saved in ``directory``, with the calling convention of a transformers one.

    ``tokenizer(text_or_texts, add_special_tokens=False, return_offsets_mapping=True)`` returns
    ``{"input_ids": ..., "offset_mapping": ...}`` (one list per text for a list of texts), and
    ``bos_token_id``, ``eos_token_id``, ``pad_token_id``, ``unk_token_id`` and
    ``convert_ids_to_tokens`` answer as transformers does.
    """

    is_fast = True

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.name_or_path = str(directory)  # as transformers names a tokenizer loaded from a path
        if not (self.directory / TOKENIZER_FILE).is_file():
            raise ConfigError(f"{directory}: no {TOKENIZER_FILE} (a fast tokenizer is needed: token offsets)")
        self._special_tokens, self._added = special_tokens(self.directory)
        self._backend = None
        self._index: VocabIndex | None | bool = False  # False: not read yet
        self._restricted_calls = 0
        self._lock = threading.Lock()

    @property
    def backend(self):
        """The ``tokenizers.Tokenizer``, loaded on first use (once, whatever the thread)."""
        if self._backend is None:
            with self._lock:
                if self._backend is None:
                    self._backend = load_backend(self.directory)
        return self._backend

    def start(self) -> None:
        """Load the vocabulary in a background thread (returns at once; the first use waits for it)."""
        if self._backend is None:
            threading.Thread(target=lambda: self.backend, name="tokenizer", daemon=True).start()

    def token_id(self, token: str | None) -> int | None:
        """The id of a token: the config's added tokens first, then the vocabulary (UNK's id when absent)."""
        if token is None:
            return None
        if token in self._added:
            return self._added[token]
        found = self.backend.token_to_id(token)
        if found is None and token != self._special_tokens.get("unk"):
            return self.unk_token_id
        return found

    @property
    def bos_token_id(self) -> int | None:
        return self.token_id(self._special_tokens.get("bos"))

    @property
    def eos_token_id(self) -> int | None:
        return self.token_id(self._special_tokens.get("eos"))

    @property
    def pad_token_id(self) -> int | None:
        return self.token_id(self._special_tokens.get("pad"))

    @property
    def unk_token_id(self) -> int | None:
        return self.token_id(self._special_tokens.get("unk"))

    def tokenizer_for(self, texts: Sequence[str]):
        """The tokenizer to run on ``texts``: the whole one when it is loaded, else, for a short text,
        the vocabulary index's restriction of it to what the text can form (:mod:`ner_os.encoder.vocab_index`)."""
        if self._backend is None and self._index is not None:
            if self._index is False:
                index_file = self.directory / INDEX_FILE
                self._index = VocabIndex.read(index_file) if _fresh(index_file, self.directory / TOKENIZER_FILE) else None
            restricted = self._index.tokenizer_for(texts) if self._index is not None else None
            if restricted is not None:
                self._restricted_calls += 1
                if self._restricted_calls == RESTRICTED_CALLS_BEFORE_LOADING:
                    self.start()  # a process that keeps tokenising: the whole tokenizer pays off
                return restricted
        return self.backend

    def __call__(self, text: str | Sequence[str], add_special_tokens: bool = True,
                 return_offsets_mapping: bool = False) -> dict[str, Any]:
        backend = self.tokenizer_for([text] if isinstance(text, str) else list(text))
        if isinstance(text, str):
            encoding = backend.encode(text, add_special_tokens=add_special_tokens)
            out: dict[str, Any] = {"input_ids": list(encoding.ids)}
            if return_offsets_mapping:
                out["offset_mapping"] = list(encoding.offsets)
            return out
        encodings = backend.encode_batch(list(text), add_special_tokens=add_special_tokens)
        out = {"input_ids": [list(encoding.ids) for encoding in encodings]}
        if return_offsets_mapping:
            out["offset_mapping"] = [list(encoding.offsets) for encoding in encodings]
        return out

    def convert_ids_to_tokens(self, ids: Sequence[int]) -> list[str | None]:
        return [self.backend.id_to_token(int(token_id)) for token_id in ids]

    def __len__(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)


def special_tokens(directory: Path) -> tuple[dict[str, str], dict[str, int]]:
    """``{role: token}`` for bos/eos/pad/unk (tokenizer_config.json over special_tokens_map.json, as
    transformers reads them) and ``{token: id}`` of the config's added tokens."""
    config = _read_json(directory / CONFIG_FILE)
    mapped = _read_json(directory / SPECIAL_TOKENS_FILE)
    tokens = {}
    for role in ROLES:
        value = config.get(f"{role}_token", mapped.get(f"{role}_token"))
        if isinstance(value, dict):  # a serialised AddedToken
            value = value.get("content")
        if isinstance(value, str):
            tokens[role] = value
    added = {entry["content"]: int(token_id) for token_id, entry in config.get("added_tokens_decoder", {}).items()
             if isinstance(entry, dict) and "content" in entry}
    return tokens, added


def load_backend(directory: Path):
    """The ``tokenizers.Tokenizer`` saved in ``directory``: from the fast file when there is one, else
    from tokenizer.json (writing the fast file for next time). Truncation and padding off, as
    transformers sets them for an unpadded, untruncated call."""
    from tokenizers import Tokenizer

    source, fast = directory / TOKENIZER_FILE, directory / FAST_FILE
    tokenizer = None
    if _fresh(fast, source):
        try:
            tokenizer = Tokenizer.from_file(str(fast))
        except Exception as error:  # noqa: BLE001 - a damaged cache file: read the original
            log.warning("%s: %s; reading %s", fast, error, source.name)
    if tokenizer is None:
        tokenizer = _from_source(source, fast)
    if not (_fresh(directory / INDEX_FILE, source) and VocabIndex.current(directory / INDEX_FILE)):
        _write_quietly(write_index, json.loads(tokenizer.to_str()), directory / INDEX_FILE)
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def _from_source(source: Path, fast: Path):
    from tokenizers import Tokenizer

    text = source.read_text(encoding="utf-8")
    tokenizer = Tokenizer.from_str(text)
    _write_quietly(write_fast_file, text, tokenizer, fast)
    return tokenizer


def _write_quietly(write, *args) -> None:
    try:
        write(*args)
    except OSError as error:  # a read-only export directory: fine, only slower next time
        log.info("cannot write %s (%s): the tokenizer will load more slowly next time too", args[-1], error)


def _fresh(cached: Path, source: Path) -> bool:
    return cached.is_file() and cached.stat().st_mtime_ns >= source.stat().st_mtime_ns


def write_fast_file(text: str, tokenizer, fast: Path) -> bool:
    """Write ``tokenizer`` (parsed from ``text``) to ``fast`` as compact JSON with ``"a b"`` merges;
    kept only when it parses back to the same tokenizer. Returns whether it was kept."""
    from tokenizers import Tokenizer

    spec = json.loads(text)
    merges = spec.get("model", {}).get("merges")
    if isinstance(merges, list) and merges and all(isinstance(pair, list) and len(pair) == 2 and
                                                   " " not in pair[0] and " " not in pair[1] for pair in merges):
        spec["model"]["merges"] = [f"{left} {right}" for left, right in merges]
    compact = json.dumps(spec, ensure_ascii=False, separators=(",", ":"))
    if Tokenizer.from_str(compact).to_str() != tokenizer.to_str():
        log.info("the compact form of %s reads differently; not writing it", fast.with_name(TOKENIZER_FILE))
        return False
    partial = fast.with_name(f".{fast.name}.{os.getpid()}.partial")
    try:
        partial.write_text(compact, encoding="utf-8")
        os.replace(partial, fast)
    finally:
        partial.unlink(missing_ok=True)
    return True


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}
