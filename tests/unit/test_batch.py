"""Several queries' steps side by side (``batch_steps``), the batch plan of ``send_batch``, the async driver,
and the ``--batch`` file: no cluster (the real node runs them in tests/integration/test_client_surface.py)."""

from __future__ import annotations

import asyncio

import pytest

from ner_os import query as q
from ner_os.client.batch import query_spec, read_batch
from ner_os.errors import NerOsError
from ner_os.store.search import BatchPlan, MissingIndex

pytestmark = pytest.mark.unit


def two_rounds(name):
    """Steps that ask twice and return both answers."""
    first = yield q.SearchRequest({"ask": name, "round": 1})
    second = yield q.MultiSearchRequest(({"ask": name, "round": 2}, {"ask": name, "round": 2}))
    return (name, first, second)


def one_round(name):
    answer = yield q.SearchRequest({"ask": name}, {"search_pipeline": "p"})
    return (name, answer)


def test_batch_steps_run_side_by_side_and_a_failure_stays_in_its_place():
    steps = q.batch_steps([("i", two_rounds("a")), ("j", one_round("b")), ("i", two_rounds("c"))])
    first = next(steps)
    assert [index for index, _ in first.requests] == ["i", "j", "i"]
    second = steps.send(["a1", "b1", MissingIndex("i")])  # query 3's first request failed
    assert [request.bodies[0]["ask"] for _, request in second.requests] == ["a"]  # only query 1 goes on
    with pytest.raises(StopIteration) as stop:
        steps.send([["a2", "a2"]])
    outcomes = stop.value.value
    assert outcomes[0] == ("a", "a1", ["a2", "a2"]) and outcomes[1] == ("b", "b1")
    assert isinstance(outcomes[2], MissingIndex)


def test_the_batch_plan_puts_plain_searches_in_one_msearch_and_pipelines_alone():
    requests = [("i", q.SearchRequest({"n": 1})), ("j", q.SearchRequest({"n": 2}, {"search_pipeline": "p"})),
                ("i", q.MultiSearchRequest(({"n": 3}, {"n": 4})))]
    plan = BatchPlan(requests)
    assert plan.searches == [("i", {"n": 1}), ("i", {"n": 3}), ("i", {"n": 4})] and plan.singles == [1]
    failed = {"status": 400, "error": {"type": "parse_exception", "reason": "bad"}}
    answers = plan.answers([{"r": 1}, {"r": 3}, failed], {1: {"r": 2}})
    assert answers[:2] == [{"r": 1}, {"r": 2}]
    assert isinstance(answers[2], NerOsError) and "bad" in str(answers[2])  # one failed body fails its request
    missing = plan.answers([{"status": 404, "error": {"type": "index_not_found_exception"}}, {"r": 3}, {"r": 4}], {1: {}})
    assert isinstance(missing[0], MissingIndex) and missing[2] == [{"r": 3}, {"r": 4}]


def test_drive_async_drives_the_same_steps():
    async def send(request):
        await asyncio.sleep(0)
        return [f"{body['ask']}!" for body in request.bodies] if hasattr(request, "bodies") else request.body["ask"]

    assert asyncio.run(q.drive_async(two_rounds("x"), send)) == ("x", "x", ["x!", "x!"])


def test_query_specs_take_shared_options_under_their_own_and_name_a_bad_one():
    assert query_spec("river", {"size": 3}, 1) == {"size": 3, "description": "river"}
    assert query_spec({"description": "river", "size": 5}, {"size": 3}, 1)["size"] == 5
    with pytest.raises(NerOsError, match="query 2: unknown option colour"):
        query_spec({"description": "river", "colour": 1}, {}, 2)
    with pytest.raises(NerOsError, match="query 3: expected a description or a dict"):
        query_spec(7, {}, 3)


def test_a_batch_file_is_descriptions_or_json_objects(tmp_path):
    path = tmp_path / "queries.txt"
    path.write_text('# comment\nriver in Africa\n\n{"description": "person", "min_score": 0.8}\n')
    assert read_batch(path) == ["river in Africa", {"description": "person", "min_score": 0.8}]
    assert read_batch("-", ["city"]) == ["city"]
    with pytest.raises(NerOsError, match="no query in it"):
        read_batch("-", ["", "# nothing"])
    with pytest.raises(NerOsError, match="cannot be read"):
        read_batch(tmp_path / "missing.txt")
