"""A ``tokenizer.json`` that reads a description exactly as :func:`ner_os.mentions.embedder.embed_type` does.

``embed_type`` reads ``" " + " ".join(description.split())`` (:func:`ner_os.checks.check_description`,
:func:`ner_os.mentions.positions.description_text`) as the start token plus the text's tokens, no
end token. ML Commons (DJL's HuggingFace tokenizer) encodes the raw ``query_text`` with the file's
normalizer, pre-tokenizer and post-processor, special tokens added. So the export's tokenizer.json
gets, before its own normalizer, ``Replace(\\s+ -> " ")``, ``Strip``, ``Prepend(" ")``, and a
post-processor that puts the start token (BOS, or EOS for models without one) first, and nothing else.
No truncation and no padding (one text per call). A pre-tokenizer that adds a prefix space
(ByteLevel, Metaspace) adds none to a text that starts with one, so it needs no change.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ner_os.errors import ConfigError

FILE = "tokenizer.json"
WHITESPACE = r"\s+"


def description_normalizer(original: dict | None) -> dict:
    """Collapse whitespace, strip, prepend one space, then the tokenizer's own normalizer."""
    steps: list[dict[str, Any]] = [
        {"type": "Replace", "pattern": {"Regex": WHITESPACE}, "content": " "},
        {"type": "Strip", "strip_left": True, "strip_right": True},
        {"type": "Prepend", "prepend": " "},
    ]
    if original is not None:
        steps += original["normalizers"] if original.get("type") == "Sequence" else [original]
    return {"type": "Sequence", "normalizers": steps}


def start_token_processor(token: str, token_id: int) -> dict:
    """The start token, then the text's tokens (pairs as well: DJL never sends one)."""
    return {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": token, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": token, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {token: {"id": token, "ids": [int(token_id)], "tokens": [token]}},
    }


def description_tokenizer_json(tokenizer_json: dict, start_id: int) -> dict:
    """The export's tokenizer.json (parsed) edited to read descriptions as ``embed_type`` does."""
    vocabulary = tokenizer_json.get("model", {}).get("vocab", {})
    added = {token["id"]: token["content"] for token in tokenizer_json.get("added_tokens", [])}
    token = added.get(start_id) or _token_of(vocabulary, start_id)
    edited = dict(tokenizer_json)
    edited["normalizer"] = description_normalizer(tokenizer_json.get("normalizer"))
    edited["post_processor"] = start_token_processor(token, start_id)
    edited["truncation"] = None
    edited["padding"] = None
    return edited


def _token_of(vocabulary: Any, token_id: int) -> str:
    if isinstance(vocabulary, dict):
        for token, number in vocabulary.items():
            if number == token_id:
                return token
    if isinstance(vocabulary, list) and 0 <= token_id < len(vocabulary):  # Unigram: [[piece, score], ...]
        return vocabulary[token_id][0]
    raise ConfigError(f"the start token id {token_id} is not in the tokenizer's vocabulary")


def write_description_tokenizer(export_dir: str | Path, start_id: int, out: str | Path) -> Path:
    """The export's tokenizer.json, edited (:func:`description_tokenizer_json`), written to ``out``."""
    source = Path(export_dir) / FILE
    if not source.is_file():
        raise ConfigError(f"{export_dir}: no {FILE} (ML Commons needs a fast tokenizer's tokenizer.json)")
    edited = description_tokenizer_json(json.loads(source.read_text(encoding="utf-8")), start_id)
    out = Path(out)
    out.write_text(json.dumps(edited, ensure_ascii=False), encoding="utf-8")
    return out
