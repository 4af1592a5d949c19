"""Token helpers of the encoder: the start token, trimmed offsets, chunks of long texts, token-budget batches.

Each text is tokenised as BOS + its tokens (no prompt). Texts longer than the window are cut into
overlapping chunks: every chunk starts with BOS, and every token takes its vector from exactly one
chunk, one where it has ``chunk_context`` tokens of left context (or the start of the text). Chunks
are sorted by length and packed into batches of at most ``batch_tokens`` padded tokens.
"""

from __future__ import annotations

import re

from dataclasses import dataclass

import numpy as np

from ner_os.errors import ConfigError

MAX_PADDING = 0.1  # a batch closes early once padding would pass 10% of its real tokens ...
MIN_BATCH_TOKENS = 256  # ... provided it already holds this many: enough rows for efficient matmuls


@dataclass
class Chunk:
    text_index: int
    token_ids: list[int]  # BOS first
    keep_from: int  # first row of token_ids (BOS = row 0) whose vector is kept
    write_at: int  # where row keep_from goes in the text's token rows


def text_chunks(text_index: int, ids: list[int], *, start_id: int, max_tokens: int, context: int) -> list[Chunk]:
    """Windows of at most ``max_tokens`` (BOS included) covering ``ids``, each token kept once."""
    room = max_tokens - 1
    out = []
    start, covered = 0, 0  # window start in ids; tokens already given a vector
    while covered < len(ids):
        window = ids[start : start + room]
        out.append(Chunk(text_index, [start_id, *window], 1 + covered - start, covered))
        covered = start + len(window)
        start = covered - context
    return out


def token_budget_batches(chunks: list[Chunk], batch_tokens: int) -> list[list[Chunk]]:
    """Chunks sorted longest first, packed so that rows x longest row <= batch_tokens (>= 1 row).

    Among short texts one budget spans very different lengths; a batch also closes when padding
    would exceed MAX_PADDING of its real tokens and it holds MIN_BATCH_TOKENS real tokens already.
    """
    ordered = sorted(chunks, key=lambda chunk: len(chunk.token_ids), reverse=True)
    batches: list[list[Chunk]] = []
    real = 0
    for chunk in ordered:
        length = len(chunk.token_ids)
        if batches:
            padded = (len(batches[-1]) + 1) * len(batches[-1][0].token_ids)
            too_padded = real >= MIN_BATCH_TOKENS and padded > (1 + MAX_PADDING) * (real + length)
            if padded <= batch_tokens and not too_padded:
                batches[-1].append(chunk)
                real += length
                continue
        batches.append([chunk])
        real = length
    return batches


def padded_batch(batch: list[Chunk], pad_token_id: int) -> tuple[np.ndarray, np.ndarray]:
    """int64 ``input_ids`` and ``attention_mask`` [rows, longest row] for one batch of chunks."""
    width = max(len(chunk.token_ids) for chunk in batch)
    input_ids = np.full((len(batch), width), pad_token_id, dtype=np.int64)
    attention_mask = np.zeros((len(batch), width), dtype=np.int64)
    for row, chunk in enumerate(batch):
        input_ids[row, : len(chunk.token_ids)] = chunk.token_ids
        attention_mask[row, : len(chunk.token_ids)] = 1
    return input_ids, attention_mask


def start_token_id(tokenizer) -> int:
    """BOS; models trained without one (Qwen) start documents with their end-of-text token instead."""
    for candidate in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    raise ConfigError(f"{type(tokenizer).__name__} has neither a BOS nor an EOS token to start a text with")


def trimmed_offsets(text: str, offsets) -> np.ndarray:
    """int32 [n, 2] offsets; a token's leading whitespace (SentencePiece's '▁') is not part of its span."""
    out = np.asarray(offsets, dtype=np.int32).reshape(-1, 2).copy()
    for row in out:
        start, end = int(row[0]), int(row[1])
        while start < end - 1 and text[start].isspace():
            start += 1
        row[0] = start
    return out


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def tokenizable(text: str) -> str:
    """``text`` with each lone UTF-16 surrogate (which no tokenizer can encode) replaced by U+FFFD:
    one code point for one, so every character offset still points where it did."""
    return _LONE_SURROGATE.sub("\ufffd", text)

