"""``ner-os load --spans union`` into a real OpenSearch with the real model: a lowercase mention that
spaCy misses is detected from the loader's own forward pass, indexed and found (issue #15)."""

from __future__ import annotations

import json

import pytest

from ner_os.client import NerOs
from ner_os.config import Settings
from ner_os.loader import load
from ner_os.spans import detector_from_name

pytestmark = [pytest.mark.integration, pytest.mark.model]

TEXTS = ["the village doctor said the boy died of cholera last spring.",
         "my grandmother played the cello every evening.",
         "the committee met in the town hall on tuesday."]


def test_a_union_load_indexes_a_lowercase_mention_spacy_misses(opensearch_url, client, fresh_index, tmp_path):
    spacy = detector_from_name("spacy").detect(TEXTS)
    assert not any(TEXTS[0][s.start:s.end] == "cholera" for s in spacy[0])  # what the issue saw
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps({"id": f"d{i}", "text": text}) + "\n" for i, text in enumerate(TEXTS)))
    settings = Settings.resolve(env={}, opensearch_url=opensearch_url, index=fresh_index,
                                data_dir=str(tmp_path / "data"), spans="union")
    summary = load(path, settings, progress=False)
    assert (summary.documents, summary.rejected) == (3, 0)
    client.indices.refresh(index=fresh_index)
    source = client.get(index=fresh_index, id="d0")["_source"]
    surfaces = {TEXTS[0][m["start"]:m["end"]] for m in source["mentions"]}
    assert "cholera" in surfaces
    with NerOs(settings) as ner:
        results = ner.search_type("infectious disease", size=3)
    assert results.ids[0] == "d0" and results.mode == "knn"
    assert any(m.surface == "cholera" for m in results[0].mentions)
