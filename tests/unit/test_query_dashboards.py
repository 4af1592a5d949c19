"""The Dashboards saved objects, checked against the rules Dashboards applies when it parses them.

No Dashboards runs here, so the parsing is tested, not the screen: an index pattern's ``fields``
and ``sourceFilters`` are JSON strings (``JSON.parse``; an array breaks the pattern with
"Unexpected end of JSON input"), ``sourceFilters`` hides ``mentions.vector``, the pattern's title
is the index name it is rendered for, a saved search's ``searchSourceJSON`` is a JSON string
whose ``indexRefName`` and each filter's ``meta.indexRefName`` name one of its references, and
the neural saved search's filter is the nested neural query on the words.
"""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ner_os.cli import cli
from ner_os.config import Settings
from ner_os.query.dashboards import neural_filter_query, saved_objects, saved_objects_ndjson

pytestmark = pytest.mark.unit

DASHBOARDS = Path(__file__).resolve().parents[2] / "index_templates" / "dashboards"
SHIPPED = DASHBOARDS / "ner-os.ndjson"


def parse_ndjson(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def json_string(value) -> object:
    """What Dashboards does with a JSON-string attribute: it must be a string and parse."""
    assert isinstance(value, str), f"{value!r} must be a JSON string, not {type(value).__name__}"
    return json.loads(value)


@pytest.mark.parametrize("index", ["ner-os", "ner-os-demo", "books"])
def test_index_pattern_follows_the_dashboards_parsing_rules(index):
    (pattern,) = [item for item in saved_objects(index) if item["type"] == "index-pattern"]
    attributes = pattern["attributes"]
    assert pattern["id"] == attributes["title"] == index
    assert isinstance(json_string(attributes["fields"]), list)
    source_filters = json_string(attributes["sourceFilters"])
    assert {"value": "mentions.vector"} in source_filters and {"value": "mentions.vector_bytes"} in source_filters
    assert all(set(f) == {"value"} for f in source_filters)
    assert "timeFieldName" not in attributes  # ner-os documents have no time field


@pytest.mark.parametrize("index", ["ner-os", "ner-os-demo"])
def test_saved_searches_reference_the_pattern_and_use_nested_dql(index):
    items = saved_objects(index)
    known = {(item["type"], item["id"]) for item in items}
    keys = [(item["type"], item["id"]) for item in items]
    assert len(keys) == len(set(keys))
    for item in (i for i in items if i["type"] == "search"):
        assert item["id"].startswith(index + "-") and item["attributes"]["title"].startswith(index + ": ")
        source = json_string(item["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
        references = {reference["name"]: reference for reference in item["references"]}
        wanted = [source["indexRefName"], *(f["meta"]["indexRefName"] for f in source["filter"])]
        assert sorted(wanted) == sorted(references)
        assert all((r["type"], r["id"]) in known for r in references.values())
        assert source["query"]["language"] == "kuery"
        # mentions is nested: DQL reaches its fields only inside a mentions:{ ... } group
        assert "mentions." not in source["query"]["query"]
        assert all(isinstance(item["attributes"][key], list) for key in ("columns", "sort"))


def test_the_neural_saved_search_filters_by_the_words():
    (search,) = [item for item in saved_objects("docs", "river in Africa") if item["id"] == "docs-type-search"]
    source = json_string(search["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
    (custom,) = source["filter"]
    assert custom["meta"]["type"] == "custom" and not custom["meta"]["disabled"] and not custom["meta"]["negate"]
    assert json_string(custom["meta"]["value"]) == custom["query"] == neural_filter_query("river in Africa")
    nested = custom["query"]["nested"]
    assert nested["path"] == "mentions" and nested["score_mode"] == "max" and "inner_hits" not in nested
    assert nested["query"]["neural"]["mentions.vector"]["query_text"] == "river in Africa"
    assert "model_id" not in nested["query"]["neural"]["mentions.vector"]  # the index's default pipeline names it


def test_shipped_file_is_the_rendering_for_the_default_index():
    assert parse_ndjson(SHIPPED.read_text()) == saved_objects(Settings().index)


def test_dashboards_export_renders_for_the_index(tmp_path):
    out = CliRunner().invoke(cli, ["dashboards", "export", "--index", "ner-os-demo"])
    assert out.exit_code == 0, out.output
    assert out.output == saved_objects_ndjson("ner-os-demo")
    target = tmp_path / "objects.ndjson"
    written = CliRunner().invoke(cli, ["dashboards", "export", "--index", "books", "--type", "poet", "--out", str(target)])
    assert written.exit_code == 0 and parse_ndjson(target.read_text()) == saved_objects("books", "poet")


def test_readme_dql_uses_the_nested_group():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert 'mentions.types:"' not in readme
    assert 'mentions:{ types:"athlete" }' in readme
