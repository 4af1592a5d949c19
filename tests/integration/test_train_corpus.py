"""``ner-os train --data FILE --types NAMES.json --spans`` with the real model on a wikigold slice, then
``ner-os load --head DIR --replace-index`` into an index the shipped head filled, on the real node, and a
search with that head that finds the trained type's documents (issue #15, deliverable 6)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ner_os.cli import cli
from ner_os.client import NerOs
from ner_os.config import Settings
from ner_os.evaluation.readers import read_bio
from ner_os.head import ProjectionHead
from ner_os.spans.encoder_detector import EncoderSpanDetector
from ner_os.store.schema import index_vectors

pytestmark = [pytest.mark.integration, pytest.mark.model]

WIKIGOLD = Path(__file__).resolve().parents[3] / "shared" / "data" / "spans" / "wikigold.conll"
TRAIN_SENTENCES = 150
NAMES = {"PER": "person", "LOC": "location", "ORG": "organization", "MISC": "nationality, event or work of art"}


def wikigold_slices(tmp_path: Path) -> tuple[Path, list[dict], set[str]]:
    """The first sentences as the labelled file; later ones (10 holding a person, 10 none) as the corpus to load."""
    blocks = WIKIGOLD.read_text(encoding="utf-8").split("\n\n")
    labelled = tmp_path / "wiki.conll"
    labelled.write_text("\n\n".join(blocks[:TRAIN_SENTENCES]) + "\n", encoding="utf-8")
    later = tmp_path / "later.conll"
    later.write_text("\n\n".join(blocks[1000:1300]) + "\n", encoding="utf-8")
    with_person, without = [], []
    for i, sentence in enumerate(read_bio(later)):
        labels = {m.label for m in sentence.mentions}
        (with_person if "PER" in labels else without if labels else []).append({"id": f"w{i}", "text": sentence.text})
    documents = with_person[:10] + without[:10]
    assert len(documents) == 20
    return labelled, documents, {d["id"] for d in with_person[:10]}


def test_a_head_trained_on_a_corpus_reloads_an_index_and_finds_its_type(opensearch_url, client, fresh_index,
                                                                        tmp_path):
    if not WIKIGOLD.is_file():
        pytest.skip(f"{WIKIGOLD} is not here")
    labelled, documents, person_ids = wikigold_slices(tmp_path)
    names = tmp_path / "names.json"
    names.write_text(json.dumps(NAMES))
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(d) + "\n" for d in documents))
    env = {"NER_OS_OPENSEARCH_URL": opensearch_url, "NER_OS_INDEX": fresh_index, "NER_OS_DATA_DIR": str(tmp_path / "data")}
    runner = CliRunner()
    first = runner.invoke(cli, ["load", str(corpus), "--spans", "encoder", "--no-deploy", "--no-progress"], env=env)
    assert first.exit_code == 0, first.output

    out = tmp_path / "head"
    trained = runner.invoke(cli, ["train", "--data", str(labelled), "--types", str(names), "--format", "conll",
                                  "--spans", "--out", str(out)], env=env)
    assert trained.exit_code == 0, trained.output
    head = ProjectionHead.load(out)
    assert head.manifest["training"]["types"] == sorted(NAMES)
    dev = head.manifest["training"]["dev"]["r_precision"]
    assert dev["trained"] > dev["raw_vectors"]
    assert EncoderSpanDetector.load(out / "spans").manifest["encoder"]["layer"] == head.encoder["layer"]
    assert "sha256" in (out / "MODEL_CARD.md").read_text()

    refused = runner.invoke(cli, ["load", str(corpus), "--head", str(out), "--spans", "encoder", "--no-deploy"], env=env)
    assert refused.exit_code == 2 and "--replace-index" in refused.output
    replaced = runner.invoke(cli, ["load", str(corpus), "--head", str(out), "--spans", "encoder", "--replace-index",
                                   "--no-deploy", "--no-progress"], env=env)
    assert replaced.exit_code == 0, replaced.output
    settings = Settings.resolve(env={}, opensearch_url=opensearch_url, index=fresh_index, head=str(out))
    assert index_vectors(client, fresh_index)["head"] == head.digest
    with NerOs(settings) as ner:
        results = ner.search_type("person", size=5)
    assert len(set(results.ids) & person_ids) >= 4, [(hit.doc_id, hit.text[:60]) for hit in results]
