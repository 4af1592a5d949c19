"""Type queries against a real OpenSearch 2.19 node (tests/conftest.py).

Two corpora: six hand-made documents whose mention vectors lean on known axes, so every ranking,
span and score below is known exactly; and real Few-NERD test sentences encoded by the real
pipeline (marked ``model``), where the relevant documents must come first.
"""

from __future__ import annotations

import json
import re
import os
from pathlib import Path

import numpy as np
import pytest
from axis_embedder import AxisEmbedder

from ner_os.store import schema
from ner_os.store.bulk import bulk_index
from ner_os.client import NerOs
from ner_os.config import Settings
from ner_os.errors import NerOsError
from ner_os.query import MENTION_MARGIN
from ner_os.fields import vector_fields

pytestmark = pytest.mark.integration

DIM = 8
DINOSAUR, RIVER, PLACE, PERSON = (np.eye(DIM, dtype=np.float32)[axis] for axis in range(4))


def near(direction, *others):
    vector = direction.astype(np.float64).copy()
    for other, weight in others:
        vector += weight * other
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def knn_score(a, b) -> float:
    """The k-NN score of the cosinesimil space."""
    return float((1 + np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))) / 2)


# (text, [(surface, vector)], language)
CORPUS = {
    "d1": ("Tyrannosaurus lived in North America long before the Nile existed.",
           [("Tyrannosaurus", near(DINOSAUR)), ("North America", near(PLACE)), ("Nile", near(RIVER))], "en"),
    "d2": ("Stegosaurus and Triceratops fossils were dug up in Colorado.",
           [("Stegosaurus", near(DINOSAUR, (PLACE, 0.3))), ("Triceratops", near(DINOSAUR, (PERSON, 0.4))),
            ("Colorado", near(PLACE))], "en"),
    "d3": ("Marie Curie worked in Paris, a city on the Seine.",
           [("Marie Curie", near(PERSON)), ("Paris", near(PLACE, (RIVER, 0.2))), ("Seine", near(RIVER, (DINOSAUR, 0.1)))],
           "fr"),
    # the word "dinosaur" without a dinosaur mention: BM25 finds it, k-NN does not
    "d4": ("The dinosaur gallery of the museum in Berlin reopened.", [("Berlin", near(PLACE))], "de"),
    "d5": ("Le Diplodocus du musée de Pittsburgh.",
           [("Diplodocus", near(DINOSAUR, (PLACE, 0.5))), ("Pittsburgh", near(PLACE))], "fr"),
    "d6": ("The Amazon and the Congo carry more water than any other river.",
           [("Amazon", near(RIVER)), ("Congo", near(RIVER, (PLACE, 0.2)))], "en"),
}
TYPE_VECTORS = {"dinosaur": DINOSAUR, "river": RIVER, "person": PERSON}


def document(text, mentions, language):
    out = []
    for surface, vector in mentions:
        start = text.index(surface)
        out.append({"start": start, "end": start + len(surface), "surface": surface, **vector_fields(vector)})
    return {"doc_id": None, "text": text, "metadata": {"lang": language}, "mentions": out}


def write_corpus(client, name, corpus):
    schema.install_templates(client, Settings.resolve(index=name), DIM)
    actions = [{"_index": name, "_id": doc_id, "_source": {**document(*fields), "doc_id": doc_id}}
               for doc_id, fields in corpus.items()]
    result = bulk_index(client, actions, refresh=True)
    assert result.failures == [] and result.indexed == len(corpus)


@pytest.fixture
def handmade(client, opensearch_url, fresh_index):
    write_corpus(client, fresh_index, CORPUS)
    return NerOs(Settings.resolve(opensearch_url=opensearch_url, index=fresh_index), opensearch=client,
                 embedder=AxisEmbedder(TYPE_VECTORS))


def expected_knn_order(type_vector):
    best = {doc_id: max(knn_score(vector, type_vector) for _, vector in mentions)
            for doc_id, (_, mentions, _) in CORPUS.items()}
    return sorted(best, key=lambda doc_id: (-best[doc_id], doc_id)), best


# ----- k-NN


@pytest.mark.parametrize("description", ["dinosaur", "river"])
def test_knn_ranks_documents_by_their_best_mention(handmade, description):
    order, best = expected_knn_order(TYPE_VECTORS[description])
    results = handmade.search_type(description, hybrid=False, size=len(CORPUS))
    assert results.ids == order
    assert [hit.score for hit in results] == pytest.approx([best[doc_id] for doc_id in order], abs=1e-5)
    assert results.mode == "knn"


def test_inner_hits_point_at_the_right_spans_best_first_without_vectors(handmade):
    results = handmade.search_type("dinosaur", hybrid=False, size=2, mentions_per_hit=3, mention_margin=None)
    first, second = results
    assert [m.surface for m in first.mentions][:1] == ["Tyrannosaurus"]
    assert [m.surface for m in second.mentions][:2] == ["Stegosaurus", "Triceratops"]
    for hit in results:
        text = CORPUS[hit.id][0]
        scores = [m.score for m in hit.mentions]
        assert scores == sorted(scores, reverse=True) and len(hit.mentions) == 3
        for mention in hit.mentions:
            assert text[mention.start:mention.end] == mention.surface
            vector = dict(CORPUS[hit.id][1])[mention.surface]
            assert mention.score == pytest.approx(knn_score(vector, DINOSAUR), abs=1e-5)
        assert "vector" not in json.dumps(hit.source)
        assert hit.source["text"] == text


def test_a_hit_leaves_out_mentions_far_below_its_best_one(handmade):
    results = handmade.search_type("dinosaur", hybrid=False, size=len(CORPUS))
    left_out = 0
    for hit in results:
        top = sorted((knn_score(vector, DINOSAUR) for _, vector in CORPUS[hit.id][1]), reverse=True)[:3]
        kept = [score for score in top if score >= top[0] - MENTION_MARGIN]
        assert [m.score for m in hit.mentions] == pytest.approx(kept, abs=1e-5)
        left_out += len(top) - len(kept)
    assert left_out > 0  # the corpus holds documents whose other mentions are no dinosaurs


def test_filter_inside_the_nested_clause_keeps_only_matching_documents(handmade):
    results = handmade.search_type("dinosaur", hybrid=False, filters={"metadata.lang": "fr"})
    assert results.ids == ["d5", "d3"]
    results = handmade.search_type("dinosaur", filters={"metadata.lang": ["en", "de"]}, size=10)
    assert set(results.ids) == {"d1", "d2", "d4", "d6"}


def test_radial_search_returns_every_mention_above_the_threshold(handmade):
    threshold = 0.9
    expected = {(doc_id, surface) for doc_id, (_, mentions, _) in CORPUS.items()
                for surface, vector in mentions if knn_score(vector, DINOSAUR) >= threshold}
    results = handmade.search_type("dinosaur", min_score=threshold, size=10)
    assert results.mode == "radial"
    assert {(hit.id, m.surface) for hit in results for m in hit.mentions} == expected
    assert results.ids == ["d1", "d2", "d5"]


# ----- hybrid


def test_hybrid_lifts_the_bm25_match_that_knn_ranks_low(handmade):
    knn = handmade.search_type("dinosaur", hybrid=False, size=6)
    hybrid = handmade.search_type("dinosaur", size=6, hybrid=True)
    assert handmade.search_type("dinosaur", size=6).ids == knn.ids  # k-NN alone is the default
    assert knn.ids.index("d4") == 4
    assert hybrid.ids[0] == "d4"  # rank 1 in BM25 + rank 5 in k-NN beats rank 1 in k-NN alone
    assert hybrid.ids[1:] == [doc_id for doc_id in knn.ids if doc_id != "d4"]
    # d4 comes from BM25: its mentions were fetched and scored against the type all the same
    d4 = hybrid[0]
    assert [m.surface for m in d4.mentions] == ["Berlin"]
    assert d4.mentions[0].score == pytest.approx(0.5, abs=1e-5)


def test_server_and_client_fusion_agree(handmade, client, opensearch_url, fresh_index):
    if not handmade.server_hybrid():
        pytest.skip("the cluster has no neural-search plugin: only client-side fusion to test")
    client_side = NerOs(handmade.settings, opensearch=client, embedder=AxisEmbedder(TYPE_VECTORS), fusion="client")
    for description, filters in (("dinosaur", None), ("river", {"metadata.lang": "en"})):
        server = handmade.search_type(description, size=5, filters=filters, hybrid=True)
        local = client_side.search_type(description, size=5, filters=filters, hybrid=True)
        assert (server.mode, local.mode) == ("hybrid-server", "hybrid-client")
        assert server.ids == local.ids
        assert [hit.score for hit in server] == pytest.approx([hit.score for hit in local], rel=1e-5)
        assert [hit.mentions for hit in server] == [hit.mentions for hit in local]


@pytest.mark.parametrize("hybrid", [True, False])
def test_pages_are_stable_and_add_up_to_one_long_page(handmade, hybrid):
    whole = handmade.search_type("river", hybrid=hybrid, size=6)
    pages = [handmade.search_type("river", hybrid=hybrid, size=2, offset=offset) for offset in (0, 2, 4)]
    assert [doc_id for page in pages for doc_id in page.ids] == whole.ids
    assert handmade.search_type("river", hybrid=hybrid, size=2, offset=6).ids == []


def test_documents_written_without_doc_id_are_still_found(handmade, client, fresh_index):
    # written again whole (a partial _update would re-index the stored source, which has no float vectors)
    client.index(index=fresh_index, id="d4", body=document(*CORPUS["d4"]), refresh=True)
    for fusion in ("auto", "client"):
        ner = NerOs(handmade.settings, opensearch=client, embedder=AxisEmbedder(TYPE_VECTORS), fusion=fusion)
        results = ner.search_type("dinosaur", size=6, hybrid=True)
        assert results.ids[0] == "d4" and [m.surface for m in results[0].mentions] == ["Berlin"]


# ----- what the CLI's dsl prints, sent as is


def test_dsl_output_runs_unchanged(handmade, client, fresh_index):
    for options in ({"hybrid": False}, {"hybrid": True}, {"min_score": 0.9}):
        head, body = handmade.dsl("dinosaur", **options).split("\n", 1)
        method, target = head.split(" ", 1)
        assert method == "GET" and target.startswith(f"{fresh_index}/_search")
        response = client.transport.perform_request("GET", "/" + target, body=json.loads(body))
        ids = [hit["_id"] for hit in response["hits"]["hits"]]
        assert ids[0] == ("d4" if options.get("hybrid") and handmade.server_hybrid() else "d1")


def test_search_template_needs_only_the_vector(handmade, client, fresh_index):
    try:
        request = handmade.template_request("dinosaur", size=3)
    except NerOsError as error:
        if "lang-mustache" in str(error):
            pytest.skip("the cluster has no lang-mustache module")
        raise
    head, body = request.split("\n", 1)
    body = json.loads(body)
    assert set(body) == {"id", "params"}
    response = client.search_template(index=fresh_index, body=body)
    assert [hit["_id"] for hit in response["hits"]["hits"]] == ["d1", "d2", "d5"]


# ----- input checks


def test_unknown_index_is_one_line_error(handmade):
    with pytest.raises(NerOsError, match="does not exist"):
        handmade.search_type("dinosaur", index="nerostest-no-such-index")


def test_vector_dimension_must_match_the_index(handmade, client, opensearch_url, fresh_index):
    class Wider(AxisEmbedder):
        def embed_type(self, description):
            return np.ones(DIM * 2, dtype=np.float32)

    wider = NerOs(handmade.settings, opensearch=client, embedder=Wider(TYPE_VECTORS))
    with pytest.raises(NerOsError, match="16 dimensions but the index stores 8-d"):
        wider.search_type("dinosaur")


@pytest.mark.parametrize("description", ["", "   ", "x" * 1000])
def test_bad_descriptions_fail_before_any_request(handmade, description):
    with pytest.raises(NerOsError):
        handmade.search_type(description)


@pytest.fixture
def plain_index(client, fresh_index):
    name = fresh_index.replace("nerostest-", "nerostest_plain-")  # outside the template's pattern
    client.indices.create(index=name, body={"mappings": {"properties": {"text": {"type": "text"}}}})
    yield name
    client.indices.delete(index=name, ignore_unavailable=True)


def test_index_without_mentions_is_refused(handmade, plain_index):
    with pytest.raises(NerOsError, match="not a ner-os index"):
        handmade.search_type("dinosaur", index=plain_index)


# ----- the real pipeline on real sentences

FEWNERD = Path(os.environ.get("NER_OS_FEWNERD", Path(__file__).resolve().parents[3] / "shared/data/fewnerd-inter"))
REAL_TYPES = {"person_athlete": "athlete", "location_bodiesofwater": "body of water", "product_car": "car",
              "organization_politicalparty": "political party"}
SENTENCES_PER_TYPE = 12
DISTRACTORS = 60


def fewnerd_sample():
    """Sentences with gold mentions: a dozen per type in REAL_TYPES, plus sentences of other types."""
    from ner_os.evaluation.readers import read_bio

    path = FEWNERD / "inter_test.txt"
    if not path.is_file():
        pytest.skip(f"{path} is absent (the Few-NERD data lives outside the repository)")
    taken = {label: 0 for label in REAL_TYPES}
    documents, distractors = [], 0
    for number, sentence in enumerate(read_bio(path)):
        labels = {mention.label for mention in sentence.mentions}
        if not sentence.mentions or len(sentence.tokens) > 40:
            continue
        wanted = [label for label in labels if label in taken and taken[label] < SENTENCES_PER_TYPE]
        if len(labels & set(REAL_TYPES)) > 1:
            continue
        if wanted:
            taken[wanted[0]] += 1
        elif labels & set(REAL_TYPES) or distractors >= DISTRACTORS:
            continue
        else:
            distractors += 1
        documents.append(_document(number, sentence))
        if distractors >= DISTRACTORS and all(count >= SENTENCES_PER_TYPE for count in taken.values()):
            break
    return documents


def _document(number, sentence):
    # gold mention offsets are characters of sentence.text: the loader takes them as given spans
    return {"id": f"s{number}", "text": sentence.text, "labels": sorted({m.label for m in sentence.mentions}),
            "mentions": [{"start": m.start, "end": m.end} for m in sentence.mentions]}


@pytest.fixture(scope="module")
def real_corpus(client, opensearch_url, tmp_path_factory):
    """The sample loaded by the real loader (gold spans, real encoder and head) into its own index."""
    from ner_os.loader import load

    documents = fewnerd_sample()
    name = f"nerostest-real-{os.getpid()}"
    path = tmp_path_factory.mktemp("real") / "sample.jsonl"
    path.write_text("".join(json.dumps(doc) + "\n" for doc in documents))
    settings = Settings.resolve(opensearch_url=opensearch_url, index=name)
    ner = NerOs(settings, opensearch=client)
    summary = load(path, settings, client=client, embedder=ner.embedder, progress=False)
    assert summary.rejected == 0 and summary.documents == len(documents)
    client.indices.refresh(index=name)
    yield ner, {doc["id"]: doc for doc in documents}
    client.indices.delete(index=f"{name}*", ignore_unavailable=True)
    schema.remove_templates(client, name)


@pytest.mark.model
@pytest.mark.parametrize("label", sorted(REAL_TYPES))
def test_real_pipeline_puts_relevant_documents_first(real_corpus, label):
    ner, documents = real_corpus
    relevant = {doc_id for doc_id, doc in documents.items() if label in doc["labels"]}
    results = ner.search_type(REAL_TYPES[label], hybrid=False, size=len(relevant))
    precision = len(relevant & set(results.ids)) / len(relevant)
    chance = len(relevant) / len(documents)
    assert precision >= 0.5, (label, precision, chance, results.ids)  # chance is 1 in 9
    # the top document's best mention is a real span of its text
    top = results[0]
    best = top.mentions[0]
    assert documents[top.id]["text"][best.start:best.end] == best.surface


@pytest.mark.model
def test_real_pipeline_hybrid_and_knn_both_answer(real_corpus):
    ner, documents = real_corpus
    knn = ner.search_type("body of water", hybrid=False, size=10)
    hybrid = ner.search_type("body of water", size=10, hybrid=True)
    assert len(knn) == len(hybrid) == 10
    assert all(hit.mentions for hit in hybrid)
    # BM25's side is safe (stopwords dropped, every remaining word required): a document hybrid adds to
    # the k-NN top 10 got there through BM25, so it holds both "body" and "water"
    added = set(hybrid.ids) - set(knn.ids)
    words = {hit.id: set(re.findall(r"\w+", hit.text.lower())) for hit in hybrid}
    assert all({"body", "water"} <= words[doc_id] for doc_id in added)


@pytest.mark.model
def test_cli_search_prints_highlighted_results_and_json(real_corpus, opensearch_url):
    from click.testing import CliRunner

    from ner_os.cli import cli

    ner, documents = real_corpus
    args = ["search", "athlete", "--url", opensearch_url, "--index", ner.settings.index, "-n", "3"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert re.fullmatch(r"'athlete': [\d,]+ documents? \(knn\); score: k-NN score of the best mention, .*", lines[0])
    assert lines[1].startswith("1. ") and "[[" in lines[2] and "]]" in lines[2]
    result = CliRunner().invoke(cli, args + ["--json"])
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [row["rank"] for row in rows] == [1, 2, 3]
    assert all(row["mentions"] and "vector" not in json.dumps(row) for row in rows)
    result = CliRunner().invoke(cli, ["search", "  ", "--url", opensearch_url, "--index", ner.settings.index])
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "empty" in result.output
