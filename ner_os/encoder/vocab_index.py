"""``VocabIndex``: a BPE tokenizer's vocabulary and merges as flat arrays, to tokenise a short text
without loading the whole tokenizer.

Loading Gemma's tokenizer (262k pieces, 515k merges) costs about a second of CPU; a type description
is a few words. BPE only ever forms symbols that are substrings of a pre-tokenized word (a merge
joins two adjacent symbols), so the tokenizer restricted to the pieces that are substrings of the
text's words -- with their own ids, the merges among them in their own order, and every other part
of ``tokenizer.json`` as it is (normaliser, pre-tokenizer, byte fallback, added tokens) -- gives the
same ids and offsets for that text as the whole one. :meth:`VocabIndex.tokenizer_for` builds that
restricted ``tokenizers.Tokenizer`` from the index in milliseconds; ``tokenizers`` still does the
tokenising. It answers only where that argument holds: a BPE model without dropout or subword
affixes, and a text holding no added token (those are split off before normalisation); otherwise
None, and the caller loads the whole tokenizer.

The index is one ``.npz`` beside ``tokenizer.json`` (written with the fast file, see
:mod:`ner_os.encoder.text_tokenizer`): the pieces' UTF-8 bytes sorted bytewise with their ids, the
merges as (rank, left, right, merged) ids sorted by the left one, and the rest of tokenizer.json.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

INDEX_FILE = "tokenizer.index.npz"
FORMAT = 2
MAX_TEXT_CHARS = 512  # longer texts: the whole tokenizer is worth loading
SHORT = 32  # bytes: pieces up to this long are looked up in one fixed-width array, longer ones in another
BYTE_PIECES = [f"<0x{byte:02X}>" for byte in range(256)]


class VocabIndex:
    """The arrays of :func:`write_index`, read back; :meth:`tokenizer_for` builds restricted tokenizers."""

    def __init__(self, arrays):
        self.blob = arrays["pieces"].tobytes()
        self.starts = arrays["starts"]
        self.ids = arrays["ids"]
        # the pieces again as fixed-width byte strings, sorted, for vectorised lookups: short ones and long ones
        self.keys = {width: (arrays[f"keys{width}"], arrays[f"ids{width}"]) for width in (SHORT, int(arrays["long"]))}
        self.merges = arrays["merges"]  # int32 [m, 4]: rank, left id, right id, merged id; sorted by left id
        self.shell = json.loads(arrays["shell"].tobytes().decode("utf-8"))
        self.max_piece_chars = int(arrays["max_piece_chars"])
        self.position = np.empty(int(self.ids.max()) + 1 if len(self.ids) else 0, dtype=np.int64)
        self.position[self.ids] = np.arange(len(self.ids))
        added = self.shell.get("added_tokens") or []
        self.added = {entry["content"]: int(entry["id"]) for entry in added}
        self._pipeline = None

    @staticmethod
    def current(path: str | Path) -> bool:
        """Whether ``path`` holds an index of this format (reads that one number)."""
        try:
            with np.load(path) as stored:
                return int(stored["format"]) == FORMAT
        except (OSError, ValueError, KeyError, EOFError):
            return False

    @classmethod
    def read(cls, path: str | Path) -> "VocabIndex | None":
        try:
            with np.load(path) as stored:
                if int(stored["format"]) != FORMAT:
                    return None
                return cls({name: stored[name] for name in stored.files})
        except (OSError, ValueError, KeyError, EOFError):
            return None

    def piece(self, token_id: int) -> str:
        at = int(self.position[token_id])
        return self.blob[self.starts[at]:self.starts[at + 1]].decode("utf-8")

    def lookup(self, pieces: Sequence[str]) -> set[int]:
        """The ids of those of ``pieces`` that are in the vocabulary (binary search over sorted byte strings)."""
        found: set[int] = set()
        encoded = [piece.encode("utf-8") for piece in pieces]
        for width, (keys, ids) in self.keys.items():
            wanted = np.asarray([key for key in encoded if len(key) <= width and (width == SHORT or len(key) > SHORT)],
                                dtype=f"S{width}")
            if not len(wanted) or not len(keys):
                continue
            at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
            found.update(int(token_id) for token_id in ids[at[keys[at] == wanted]])
        return found

    def words(self, texts: Sequence[str]) -> list[str]:
        """The strings BPE runs on: each text normalised and pre-tokenized as the tokenizer does it."""
        if self._pipeline is None:
            from tokenizers import Tokenizer

            self._pipeline = Tokenizer.from_str(json.dumps(self.restricted_spec({}, [])))
        normalizer, pre_tokenizer = self._pipeline.normalizer, self._pipeline.pre_tokenizer
        out = []
        for text in texts:
            normalized = normalizer.normalize_str(text) if normalizer is not None else text
            pieces = pre_tokenizer.pre_tokenize_str(normalized) if pre_tokenizer is not None else [(normalized, None)]
            out += [word for word, _ in pieces]
        return out

    def tokenizer_for(self, texts: Sequence[str]):
        """A ``tokenizers.Tokenizer`` that tokenises ``texts`` exactly as the whole one; None where the
        restriction argument does not hold (long texts, texts holding an added token)."""
        from tokenizers import Tokenizer

        if sum(len(text) for text in texts) > MAX_TEXT_CHARS:
            return None
        if any(token in text for token in self.added for text in texts):
            return None
        special = [piece for piece in [*BYTE_PIECES, self.shell["model"].get("unk_token"), *self.added] if piece]
        found = self.lookup(special)
        self.byte_ids = self.lookup(BYTE_PIECES)
        found |= self.lookup([word[start:end] for word in self.words(texts) for start in range(len(word))
                              for end in range(start + 1, min(len(word), start + self.max_piece_chars) + 1)])
        kept = self._closed_merges(found)
        vocab = {self.piece(token_id): token_id for token_id in sorted(found)}
        merges = [[self.piece(int(left)), self.piece(int(right))] for _, left, right, _ in kept]
        return Tokenizer.from_str(json.dumps(self.restricted_spec(vocab, merges), ensure_ascii=False))

    def _closed_merges(self, found: set[int]) -> np.ndarray:
        """The merges (rank order) that can apply to symbols in ``found``: both sides in it, and the result
        too -- a symbol BPE forms is a substring of the word -- or, for byte-fallback pieces (the one kind
        of symbol that is not), any result, added to ``found`` until nothing changes."""
        lefts = self.merges[:, 1]
        bytes_ = np.fromiter(self.byte_ids, dtype=np.int64)
        while True:
            known = np.fromiter(found, dtype=np.int64)
            low, high = np.searchsorted(lefts, known, "left"), np.searchsorted(lefts, known, "right")
            rows = self.merges[np.concatenate([np.arange(a, b) for a, b in zip(low, high)] + [np.zeros(0, np.int64)])]
            rows = rows[np.isin(rows[:, 2], known)]
            of_bytes = np.isin(rows[:, 1], bytes_) | np.isin(rows[:, 2], bytes_)
            kept = rows[np.isin(rows[:, 3], known) | of_bytes]
            new = set(int(token_id) for token_id in kept[:, 3]) - found
            if not new:
                return kept[np.argsort(kept[:, 0], kind="stable")]
            found |= new

    def restricted_spec(self, vocab: dict, merges: list) -> dict:
        spec = dict(self.shell)
        spec["model"] = {**self.shell["model"], "vocab": vocab, "merges": merges}
        return spec


def indexable(spec: dict) -> bool:
    """Whether the restriction argument holds for this tokenizer.json (parsed)."""
    model = spec.get("model") or {}
    return (model.get("type") == "BPE" and not model.get("dropout") and not model.get("continuing_subword_prefix")
            and not model.get("end_of_word_suffix") and isinstance(model.get("vocab"), dict)
            and isinstance(model.get("merges"), list))


def write_index(spec: dict, path: Path) -> bool:
    """Write the index of a parsed tokenizer.json to ``path`` (atomically); False where it does not apply."""
    if not indexable(spec):
        return False
    model = spec["model"]
    vocab = model["vocab"]
    if any(piece.endswith("\x00") for piece in vocab):  # fixed-width byte strings drop trailing NULs
        return False
    merges = [pair.split(" ", 1) if isinstance(pair, str) else pair for pair in model["merges"]]
    encoded = sorted((piece.encode("utf-8"), token_id) for piece, token_id in vocab.items())
    lengths = np.fromiter((len(piece) for piece, _ in encoded), dtype=np.int64, count=len(encoded))
    try:
        rows = np.asarray([(rank, vocab[left], vocab[right], vocab[left + right]) for rank, (left, right)
                           in enumerate(merges)], dtype=np.int32).reshape(-1, 4)
    except (KeyError, ValueError):  # a merge of pieces the vocabulary lacks: not the BPE argued about
        return False
    rows = rows[np.argsort(rows[:, 1], kind="stable")]
    shell = {key: value for key, value in spec.items() if key != "model"}
    shell["model"] = {key: value for key, value in model.items() if key not in ("vocab", "merges")}
    widths = np.fromiter((len(piece) for piece, _ in encoded), dtype=np.int64, count=len(encoded))
    longest = max(int(widths.max()) if len(widths) else 1, SHORT + 1)
    arrays = {
        "format": np.asarray(FORMAT),
        "long": np.asarray(longest),
        f"keys{SHORT}": np.asarray([piece for piece, _ in encoded if len(piece) <= SHORT], dtype=f"S{SHORT}"),
        f"ids{SHORT}": np.asarray([token_id for piece, token_id in encoded if len(piece) <= SHORT], dtype=np.int32),
        f"keys{longest}": np.asarray([piece for piece, _ in encoded if len(piece) > SHORT], dtype=f"S{longest}"),
        f"ids{longest}": np.asarray([token_id for piece, token_id in encoded if len(piece) > SHORT], dtype=np.int32),
        "pieces": np.frombuffer(b"".join(piece for piece, _ in encoded), dtype=np.uint8),
        "starts": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        "ids": np.asarray([token_id for _, token_id in encoded], dtype=np.int32),
        "merges": rows,
        "shell": np.frombuffer(json.dumps(shell, ensure_ascii=False).encode("utf-8"), dtype=np.uint8),
        "max_piece_chars": np.asarray(max((len(piece) for piece in vocab), default=1)),
    }
    partial = path.with_name(f".{path.stem}.{os.getpid()}.partial.npz")
    try:
        np.savez(partial, **arrays)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return True
