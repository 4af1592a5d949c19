"""Query by example and relevance feedback against a real OpenSearch node.

The API tests run on a hand-made corpus whose mention vectors lie around one axis per kind (rivers,
lakes, cities, people), so what each query should find is known; the CLI tests load a few written
sentences through the real model and check ``--like``, ``DOCID:START-END``, ``HIT:N``, ``--more-like``
and the one-line errors.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from axis_embedder import AxisEmbedder, index_documents

from ner_os import query as q
from ner_os.client import NerOs
from ner_os.client.last_result import last_result_path
from ner_os.config import Settings
from ner_os.errors import NerOsError
from ner_os.fields import stored_vector
from ner_os.store import schema

pytestmark = pytest.mark.integration

DIM = 8
RIVER, LAKE, CITY, PERSON = (np.eye(DIM, dtype=np.float32)[axis] for axis in range(4))
KINDS = {"river": RIVER, "lake": LAKE, "city": CITY, "person": PERSON}


def unit(vector):
    return (vector / np.linalg.norm(vector)).astype(np.float32)


TYPE_VECTORS = {"river": RIVER, "body of water": unit(RIVER + LAKE), "Nile": unit(RIVER + 0.3 * CITY),
                "Danube": unit(RIVER + 0.3 * PERSON), "Paris": CITY}


def corpus():
    """(doc id, kind, text, [(surface, vector)]): 40 documents of one named entity each, 10 per kind,
    their vectors the kind's axis plus seeded noise ("body of water" lies as near rivers as lakes)."""
    rng = np.random.default_rng(3)
    docs = []
    for kind, axis in KINDS.items():
        for number in range(10):
            vector = unit(axis + 0.2 * rng.normal(size=DIM))
            surface = f"{kind.title()}{number}"
            docs.append((f"{kind}-{number}", kind, f"We saw {surface} today.", [(surface, vector)]))
    return docs


@pytest.fixture
def ner(client, opensearch_url, fresh_index):
    index_documents(client, fresh_index, DIM, ((doc_id, text, mentions) for doc_id, _, text, mentions in corpus()))
    return NerOs(Settings.resolve(opensearch_url=opensearch_url, index=fresh_index), opensearch=client,
                 embedder=AxisEmbedder(TYPE_VECTORS))


def kinds(results):
    return [hit.id.split("-")[0] for hit in results]


def test_surface_examples_find_their_kind_without_a_description(ner):
    results = ner.search_type(examples=["Nile", "Danube"], size=10)
    assert kinds(results) == ["river"] * 10
    assert results.description == "like Nile, Danube"
    assert np.allclose(results.vector, q.combine(None, [TYPE_VECTORS["Nile"], TYPE_VECTORS["Danube"]]), atol=1e-6)
    with_description = ner.search_type("river", examples=["Nile"], size=10)
    assert kinds(with_description) == ["river"] * 10
    assert np.allclose(with_description.vector, q.combine(RIVER, [TYPE_VECTORS["Nile"]]), atol=1e-6)


def test_a_mention_in_the_index_is_an_example_by_its_stored_vector(ner, client):
    stored = client.get(index=ner.settings.index, id="city-4")["_source"]["mentions"][0]
    ref = q.MentionRef("city-4", stored["start"], stored["end"])
    results = ner.search_type(examples=[ref], size=10)
    assert results[0].id == "city-4" and results[0].score == pytest.approx(1.0, abs=1e-4)
    assert kinds(results) == ["city"] * 10
    assert np.allclose(results.vector, unit(stored_vector(stored)), atol=1e-6)
    # a hit stands for its best mention: the same query
    again = ner.search_type(examples=[results[0]], size=10)
    assert again.ids == results.ids


@pytest.mark.parametrize("example, message", [
    (("city-4", 0, 3), "document 'city-4' has no mention at 0-3"),
    (("no-such-doc", 7, 12), "the index has no document 'no-such-doc'"),
])
def test_offsets_that_match_no_stored_mention_are_one_line_errors(ner, example, message):
    with pytest.raises(NerOsError, match=message) as error:
        ner.search_type(examples=[example])
    assert "\n" not in str(error.value)


def test_a_query_needs_a_description_or_examples(ner):
    with pytest.raises(NerOsError, match="description or examples"):
        ner.search_type()
    with pytest.raises(NerOsError, match="hybrid"):
        ner.search_type("river", examples=["Nile"], hybrid=True)


def river_share(results, n=10):
    return kinds(results)[:n].count("river") / n


def test_feedback_moves_the_ranking_towards_the_hits_marked_right(ner):
    first = ner.search_type("body of water", size=20)
    assert set(kinds(first)[:20]) == {"river", "lake"}  # both kinds, interleaved
    before = river_share(first)
    assert before < 1.0
    numbers = range(first.offset + 1, first.offset + 11)
    right = [n for n, kind in zip(numbers, kinds(first)) if kind == "river"]
    wrong = [n for n, kind in zip(numbers, kinds(first)) if kind == "lake"]
    refined = ner.refine(first, right=right, wrong=wrong, size=20)
    assert river_share(refined) > before
    assert kinds(refined)[:len(right) + 1] == ["river"] * (len(right) + 1)  # and one river more than marked
    # the same through search_type, with the hits themselves
    direct = ner.search_type("body of water", more_like=[first[n - 1] for n in right],
                             less_like=[first[n - 1] for n in wrong], size=20)
    assert direct.ids == refined.ids
    # and the other way round: lakes marked right bring lakes up
    lakes = ner.refine(first, right=wrong, wrong=right, size=10)
    assert kinds(lakes).count("lake") > kinds(first)[:10].count("lake")


def test_bad_hit_numbers_are_one_line_errors(ner):
    first = ner.search_type("river", size=5)
    with pytest.raises(NerOsError, match="hit 6: the result on index .* has hits 1-5"):
        ner.refine(first, right=[6])
    with pytest.raises(NerOsError, match="both right and wrong"):
        ner.refine(first, right=[1, 2], wrong=[2])
    with pytest.raises(NerOsError, match="mark at least one hit"):
        ner.refine(first)


# --- the CLI, over the real model ------------------------------------------------------------------

SENTENCES = {
    "nile": ("The Nile flows north through Egypt.", ["Nile", "Egypt"]),
    "danube": ("The Danube passes Vienna and Budapest.", ["Danube", "Vienna", "Budapest"]),
    "rhine": ("Barges sail down the Rhine past Cologne.", ["Rhine", "Cologne"]),
    "amazon": ("The Amazon carries more water than any river.", ["Amazon"]),
    "volga": ("Fishermen on the Volga caught sturgeon.", ["Volga"]),
    "merkel": ("Angela Merkel met Emmanuel Macron in Paris.", ["Angela Merkel", "Emmanuel Macron", "Paris"]),
    "messi": ("Lionel Messi scored twice for Barcelona.", ["Lionel Messi", "Barcelona"]),
    "tokyo": ("Tokyo hosted the Olympic Games.", ["Tokyo", "Olympic Games"]),
    "apple": ("Apple opened a store in Berlin.", ["Apple", "Berlin"]),
    "bowie": ("David Bowie recorded an album in London.", ["David Bowie", "London"]),
}


def records():
    for doc_id, (text, surfaces) in SENTENCES.items():
        mentions = [{"start": text.index(s), "end": text.index(s) + len(s)} for s in surfaces]
        yield {"id": doc_id, "text": text, "mentions": mentions}


@pytest.fixture(scope="module")
def real_index(client, opensearch_url):
    import os

    from ner_os.loader import load_records

    name = f"nerostest-like-{os.getpid()}"
    settings = Settings.resolve(opensearch_url=opensearch_url, index=name)
    summary = load_records(list(records()), settings, client=client, progress=False)
    assert summary.rejected == 0
    client.indices.refresh(index=name)
    yield settings
    last_result_path(settings, name).unlink(missing_ok=True)
    client.indices.delete(index=f"{name}*", ignore_unavailable=True)
    schema.remove_templates(client, name)


def cli(settings, *args):
    from click.testing import CliRunner

    from ner_os.cli import cli as command

    result = CliRunner().invoke(command, ["search", *args, "--url", settings.opensearch_url, "--index",
                                          settings.index])
    return result


def ids(result):
    return [json.loads(line)["id"] for line in result.output.splitlines()]


RIVERS = {"nile", "danube", "rhine", "amazon", "volga"}


@pytest.mark.model
def test_cli_like_surfaces_mentions_and_hits(real_index):
    result = cli(real_index, "--like", "Nile", "--like", "Danube", "-n", "5", "--json")
    assert result.exit_code == 0, result.output
    first = ids(result)
    assert len(set(first) & RIVERS) >= 4, first
    best = [json.loads(line)["mentions"][0] for line in result.output.splitlines()]
    # HIT:N is the N-th hit printed; DOCID:START-END the same mention named by its offsets
    by_hit = cli(real_index, "--like", "HIT:2", "-n", "3", "--json")
    assert by_hit.exit_code == 0, by_hit.output
    by_offsets = cli(real_index, "--like", f"{first[1]}:{best[1]['start']}-{best[1]['end']}", "-n", "3", "--json")
    assert by_offsets.exit_code == 0, by_offsets.output
    assert ids(by_hit) == ids(by_offsets) and ids(by_hit)[0] == first[1]
    with_description = cli(real_index, "river", "--like", "Volga", "-n", "3")
    assert with_description.exit_code == 0 and with_description.output.splitlines()[1].startswith("1. ")


@pytest.mark.model
def test_cli_feedback_refines_the_last_result(real_index):
    first = cli(real_index, "city", "-n", "10", "--json")
    assert first.exit_code == 0, first.output
    rows = [json.loads(line) for line in first.output.splitlines()]
    cities = {"Paris", "Tokyo", "Berlin", "London", "Vienna", "Cologne", "Budapest"}
    right = [n for n, row in enumerate(rows, 1) if row["mentions"][0]["surface"] in cities]
    wrong = [n for n in range(1, len(rows) + 1) if n not in right]
    assert right and wrong, rows
    refined = cli(real_index, "--more-like", ",".join(map(str, right)), "--less-like", ",".join(map(str, wrong)),
                  "-n", "10", "--json")
    assert refined.exit_code == 0, refined.output
    before = {row["id"]: row["score"] for row in rows}
    after = {json.loads(line)["id"]: json.loads(line)["score"] for line in refined.output.splitlines()}
    gain = {doc_id: after[doc_id] - before[doc_id] for doc_id in before}
    # the type moved towards the hits marked right: each of them gains more than any hit marked wrong
    assert min(gain[rows[n - 1]["id"]] for n in right) > max(gain[rows[n - 1]["id"]] for n in wrong), gain
    # with a description, --more-like refines that query with hits of the last result
    again = cli(real_index, "city", "--more-like", "1", "-n", "3", "--json")
    assert again.exit_code == 0, again.output


@pytest.mark.model
def test_cli_bad_examples_and_hit_numbers_are_one_line_errors(real_index, opensearch_url):
    assert cli(real_index, "river", "-n", "3").exit_code == 0
    for args, message in ((["--like", "HIT:9"], "hit 9: the result on index"),
                          (["--more-like", "4"], "hit 4:"),
                          (["--like", "nile:0-2"], "document 'nile' has no mention at 0-2"),
                          (["--more-like", "x"], "hit numbers are given as 1,3,5"),
                          ([], "needs a description or examples")):
        result = cli(real_index, *args)
        assert result.exit_code != 0 and message in result.output, (args, result.output)
        assert result.output.strip().count("\n") == 0, result.output
    other = Settings.resolve(opensearch_url=opensearch_url, index=real_index.index + "-none")
    result = cli(other, "--like", "HIT:1")
    assert result.exit_code != 0 and "no last result on index" in result.output


@pytest.mark.model
def test_the_module_level_search_type_takes_examples(real_index):
    import ner_os

    results = ner_os.search_type(examples=["Volga", "Rhine"], size=3, opensearch_url=real_index.opensearch_url,
                                 index=real_index.index)
    assert set(results.ids) <= RIVERS and results.description == "like Volga, Rhine"
    with pytest.raises(NerOsError, match="description or examples"):
        ner_os.search_type(opensearch_url=real_index.opensearch_url, index=real_index.index)
