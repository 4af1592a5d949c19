"""``ner-os search`` in a fresh process against a real node, with a tiny model's ONNX export: it answers
from the index, imports neither torch nor transformers, and a second process for the same
description reads the type vector from the disk cache instead of loading the model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ner_os.client import NerOs
from ner_os.config import Settings
from ner_os.store import schema
from ner_os.store.bulk import bulk_index
from ner_os.fields import vector_fields

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_encoder_tiny import CORPUS, LAYER, tiny_model_dir  # noqa: E402

pytestmark = pytest.mark.integration

SEARCH = textwrap.dedent(
    """
    import json, sys
    from ner_os.cli import main
    sys.argv = ["ner-os", "search", sys.argv[1], "--no-hybrid", "--json", "--size", "3"]
    try:
        main()
    except SystemExit as exit:
        assert exit.code in (0, None), exit.code
    heavy = ("torch", "transformers", "optimum", "spacy", "onnxruntime")
    print(json.dumps(sorted({name.split(".")[0] for name in sys.modules} & set(heavy))))
    """
)


@pytest.fixture
def tiny_index(client, opensearch_url, fresh_index, tmp_path_factory):
    """A fresh index of CORPUS with its mention vectors from the tiny model's ONNX export (raw vectors,
    no head); the NER_OS_* settings that reach it, the cache dir and a client on it."""
    model = tiny_model_dir("llama", tmp_path_factory)
    cache = tmp_path_factory.mktemp("light-query-cache")
    flags = dict(profile="custom", model=model, layer=LAYER, head="none", backend="onnx", cache_dir=str(cache),
                 opensearch_url=opensearch_url, index=fresh_index)
    ner = NerOs(Settings.resolve(**flags), opensearch=client)
    embedder = ner.embedder
    words = [text.split()[0] for text in CORPUS]
    spans = [[(text.index(word), text.index(word) + len(word))] for text, word in zip(CORPUS, words)]  # a mention apiece
    vectors = embedder.embed(CORPUS, spans)
    schema.install_templates(client, ner.settings, embedder.dim)
    actions = [{"_index": fresh_index, "_id": f"d{i}", "_source": {
        "doc_id": f"d{i}", "text": text, "mentions": [
            {"start": start, "end": end, "surface": text[start:end], **vector_fields(vector)}
            for (start, end), vector in zip(text_spans, text_vectors)]}}
        for i, (text, text_spans, text_vectors) in enumerate(zip(CORPUS, spans, vectors))]
    assert bulk_index(client, actions, refresh=True).failures == []
    env = {**os.environ, **{f"NER_OS_{name.upper()}": str(value) for name, value in flags.items()}}
    return env, cache, ner


def search(env, description):
    done = subprocess.run([sys.executable, "-c", SEARCH, description], capture_output=True, text=True, timeout=300,
                          check=False, env=env)
    assert done.returncode == 0, done.stderr
    *hits, heavy = done.stdout.strip().splitlines()
    return [json.loads(line) for line in hits], json.loads(heavy)


def test_cli_search_answers_without_torch_and_then_from_the_disk_cache(tiny_index):
    env, cache, ner = tiny_index
    want = [hit.id for hit in ner.search_type("Tyrannosaurus", hybrid=False, size=3)]
    hits, heavy = search(env, "Tyrannosaurus")
    assert [hit["id"] for hit in hits] == want and len(want) == 3
    assert "onnxruntime" in heavy and not {"torch", "transformers", "optimum", "spacy"} & set(heavy), heavy
    assert len(list((cache / "type-vectors").glob("*/*/vector.npy"))) == 1
    # no graph left to load: the second process must take the vector from the disk cache
    export = ner.embedder.encoder.runner.graph.parent
    for graph in [export / "model.onnx", export / "ort-optimized"]:
        graph.rename(graph.with_name(graph.name + ".moved"))
    again, heavy = search(env, "Tyrannosaurus")
    assert [hit["id"] for hit in again] == want and not {"torch", "transformers"} & set(heavy)
