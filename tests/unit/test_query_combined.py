"""Combined queries and thresholds without a cluster: parsing, placement, the bool body, the brute force."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from ner_os import query as q
from ner_os.cli import cli
from ner_os.errors import NerOsError
from ner_os.query.thresholds import MIN_SAMPLE, Threshold, parse_threshold, sample_scores, threshold_steps

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("spec, kind, value", [("0.8", "score", 0.8), (0.75, "score", 0.75), ("p99.5", "percentile", 99.5),
                                               ("P90", "percentile", 90.0), ("z3", "sigma", 3.0), ("z-0.5", "sigma", -0.5)])
def test_threshold_specs_parse_and_print_back(spec, kind, value):
    threshold = parse_threshold(spec)
    assert (threshold.kind, threshold.value) == (kind, value)
    assert parse_threshold(threshold.spec()) == threshold


@pytest.mark.parametrize("spec", ["", "p", "x3", "1.5", "0", "p100", "p0", "z11", "nan", "pinf", True])
def test_bad_threshold_specs_are_one_line_errors(spec):
    with pytest.raises(NerOsError, match="threshold"):
        parse_threshold(spec)


def test_a_percentile_cut_lies_halfway_between_the_last_kept_and_the_first_left_out():
    sample = np.linspace(0.5, 0.99, 100)  # distinct scores, best 0.99
    score = Threshold("percentile", 95).resolve(sample)
    kept = sample[sample >= score]
    assert len(kept) == 5 and not np.any(np.isclose(sample, score))
    assert score == pytest.approx((np.sort(sample)[-5] + np.sort(sample)[-6]) / 2)
    assert Threshold("percentile", 99.99).resolve(sample) > np.sort(sample)[-2]  # at least one kept


def test_a_sigma_threshold_is_the_mean_plus_that_many_deviations():
    sample = np.random.default_rng(0).normal(0.6, 0.05, 500)
    assert Threshold("sigma", 2).resolve(sample) == pytest.approx(sample.mean() + 2 * sample.std())
    assert Threshold("score", 0.8).resolve() == 0.8


def test_relative_thresholds_need_a_sample():
    with pytest.raises(NerOsError, match=f"at least {MIN_SAMPLE} mentions"):
        Threshold("percentile", 99).resolve(np.full(MIN_SAMPLE - 1, 0.7))


def test_threshold_steps_sample_only_for_relative_rules_and_fall_back_on_a_small_index():
    assert q.drive(threshold_steps([1.0, 0.0], Threshold("score", 0.8)), lambda r: pytest.fail("no request")) == \
        (Threshold("score", 0.8), 0.8)
    tiny = {"hits": {"hits": [{"inner_hits": {"mentions": {"hits": {"hits": [{"_score": 0.9}, {"_score": 0.7}]}}}}]}}
    assert sample_scores(tiny).tolist() == [0.9, 0.7]
    fallback = Threshold("score", 0.8)
    rule, score = q.drive(threshold_steps([1.0, 0.0], Threshold("sigma", 3), fallback), lambda request: tiny)
    assert (rule, score) == (fallback, 0.8)


def test_combined_body_is_one_bool_of_nested_clauses_each_with_its_own_threshold():
    query = q.CombinedQuery.of(["politician", ("political party", "p99")], ["city"], "company@0.9", threshold=0.8,
                               filters={"lang": "en"})
    assert [(c.role, c.description, c.threshold.spec()) for c in query.clauses] == [
        ("all_of", "politician", "0.8"), ("all_of", "political party", "p99"), ("any_of", "city", "0.8"),
        ("none_of", "company", "0.9")]
    body = q.combined_body([[1.0, 0.0]] * 4, [0.8, 0.85, 0.8, 0.9], query)
    bool_query = body["query"]["bool"]
    assert body["track_total_hits"] is True and bool_query["minimum_should_match"] == 1
    assert [len(bool_query[key]) for key in ("must", "should", "must_not", "filter")] == [2, 1, 1, 1]
    scripts = [clause["nested"]["query"]["script_score"] for clause in bool_query["must"] + bool_query["must_not"]]
    assert [script["min_score"] for script in scripts] == [0.8, 0.85, 0.9]
    assert "inner_hits" not in bool_query["must_not"][0]["nested"]
    assert [c["nested"]["inner_hits"]["name"] for c in bool_query["must"]] == ["clause-0", "clause-1"]
    approximate = q.combined_body([[1.0, 0.0]] * 4, [0.8] * 4, q.CombinedQuery(query.clauses, approximate=True))
    assert approximate["query"]["bool"]["must"][0]["nested"]["query"]["knn"]["mentions.vector"]["min_score"] == 0.8
    only_none = q.combined_body([[1.0, 0.0]], [0.8], q.CombinedQuery.of(none_of=["company"]))
    assert only_none["query"]["bool"]["must"] == [{"match_all": {}}]


def test_brute_force_follows_all_any_and_none():
    axis = np.eye(3)
    docs = {"a": axis[[0, 1]], "b": axis[[0]], "c": axis[[1, 2]], "d": np.zeros((0, 3))}
    ids = q.brute_force_ids(docs, list(axis), [0.9] * 3, ["all_of", "any_of", "none_of"])
    assert ids == {"a"}
    assert q.brute_force_ids(docs, [axis[2]], [0.9], ["none_of"]) == {"a", "b", "d"}


def test_combine_on_the_command_line_needs_a_type_and_a_good_threshold():
    runner = CliRunner()
    result = runner.invoke(cli, ["combine", "--url", "http://127.0.0.1:1", "--all-of", "city@p200"])
    assert result.exit_code == 2 and "percentile threshold" in result.output and "Traceback" not in result.output
    assert runner.invoke(cli, ["combine", "--url", "http://127.0.0.1:1"]).exit_code == 2


def test_the_cli_help_names_the_default_thresholds():
    runner = CliRunner()
    assert f"[default: {q.DEFAULT_THRESHOLD.spec()}]" in " ".join(runner.invoke(cli, ["combine", "--help"]).output.split())
    types_help = " ".join(runner.invoke(cli, ["types", "add", "--help"]).output.split())
    assert f"[default: {q.DEFAULT_TAG_THRESHOLD.spec()};" in types_help and f"{q.TAG_FALLBACK.value:g} on an index" in types_help


def test_an_expanded_description_is_its_phrasings_and_their_mean_direction():
    assert q.phrasings("river in Africa | African river |river in Africa") == ["river in Africa", "African river"]
    assert q.phrasings("river") == ["river"] and not q.is_expanded("river")
    with pytest.raises(NerOsError, match="empty phrasing"):
        q.phrasings("river | ")
    direction = q.mean_direction([np.array([1.0, 0.0]), np.array([0.0, 1.0])])
    assert direction.dtype == np.float32 and np.allclose(direction, [2 ** -0.5, 2 ** -0.5])
    with pytest.raises(NerOsError, match="cancel out"):
        q.mean_direction([np.array([1.0, 0.0]), np.array([-1.0, 0.0])])
    clause = q.CombinedQuery.of(["river in Africa | African river@p99"]).clauses[0]
    assert (clause.description, clause.threshold.spec()) == ("river in Africa | African river", "p99")


def test_combined_results_print_each_threshold_and_the_mentions_of_each_type():
    from ner_os import render
    from ner_os.query.model import MentionMatch

    query = q.CombinedQuery.of(["politician", "political party@p99"], none_of=["company"], threshold=0.8)
    text = "Angela Merkel led the CDU."
    hit = q.CombinedHit("d1", 1.9, {"text": text}, (
        ("all_of:politician", (MentionMatch("Angela Merkel", 0, 13, 0.97, 0),)),
        ("all_of:political party", (MentionMatch("CDU", 22, 25, 0.93, 1),))))
    results = q.CombinedResults("news", query.clauses, (0.8, 0.9123, 0.8), 1, (hit,))
    lines = render.combined_results(results, as_json=False)
    assert lines[:3] == ["all_of:politician  min score 0.8000", "all_of:political party  min score 0.9123 (p99)",
                         "none_of:company  min score 0.8000"]
    assert "[[Angela Merkel]] led the [[CDU]]." in lines[5] and lines[7] == "   all_of:political party: CDU 0.930"
    (line,) = render.combined_results(results, as_json=True)
    assert '"rank": 1' in line and '"all_of:politician": [{"surface": "Angela Merkel"' in line


def test_a_registered_type_lists_the_rule_its_threshold_came_from():
    from ner_os import registered_types as rt
    from ner_os import render

    item = rt.new_type("dinosaur", np.ones(4, dtype=np.float32), min_score=0.83, threshold="z2.5")
    assert "min-score 0.83 (z2.5)" in render.registered_type_line(item)
    assert '"threshold": "z2.5"' in render.registered_type_line(item, as_json=True)
    assert rt.RegisteredType.from_source(item.to_source("news")).threshold == "z2.5"
