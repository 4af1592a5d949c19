"""The loader tests' shared material: the tiny random-initialised embedder and a corpus of varied length.

Used by tests/unit/test_load_records.py, tests/unit/test_load_input_errors.py and
tests/integration/test_hostile_load.py (both test folders are on pytest's ``pythonpath``).
"""

from __future__ import annotations

import json

import pytest

WORDS = "Ada Lovelace met Charles Babbage in London while the Nile flows north through Egypt".split()


def tiny_embedder(tmp_path_factory):
    """A MentionEmbedder without head over the encoder tests' tiny llama (built once per session)."""
    from test_encoder_tiny import tiny_encoder

    from ner_os.mentions.embedder import MentionEmbedder

    return MentionEmbedder(tiny_encoder("llama", tmp_path_factory), None)


@pytest.fixture(scope="module")
def embedder(tmp_path_factory):
    """:func:`tiny_embedder` as a fixture (imported by the test modules that use it)."""
    return tiny_embedder(tmp_path_factory)


def tiny_records(count: int, *, last_word: bool = True, numbered: bool = False) -> list[dict]:
    """Documents ``doc-<i>`` of 2 to 14 words plus their number, with the first word given as a mention
    (and the last, the number, with ``last_word``); ``numbered`` adds the field ``n``."""
    out = []
    for i in range(count):
        text = " ".join(WORDS[: 2 + i % (len(WORDS) - 2)]) + f" {i}"
        mentions = [{"start": 0, "end": 3}]
        if last_word:
            mentions.append({"start": text.rindex(" ") + 1, "end": len(text)})
        record = {"id": f"doc-{i}", "text": text, **({"n": i} if numbered else {}), "mentions": mentions}
        out.append(record)
    return out


def tiny_lines(count: int, **options) -> list[str]:
    """:func:`tiny_records` as JSON lines."""
    return [json.dumps(record) for record in tiny_records(count, **options)]
