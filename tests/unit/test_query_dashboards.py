"""The Dashboards saved objects are importable ndjson whose references resolve."""

import json
from pathlib import Path

import pytest

from ner_os.config import Settings

pytestmark = pytest.mark.unit

DASHBOARDS = Path(__file__).resolve().parents[2] / "index_templates" / "dashboards"


def objects():
    files = sorted(DASHBOARDS.glob("*.ndjson"))
    assert files, f"no saved objects under {DASHBOARDS}"
    return [json.loads(line) for path in files for line in path.read_text().splitlines() if line.strip()]


def test_every_object_has_an_id_a_type_and_unique_identity():
    items = objects()
    keys = [(item["type"], item["id"]) for item in items]
    assert len(keys) == len(set(keys))
    assert {item["type"] for item in items} >= {"index-pattern", "search"}


def test_the_index_pattern_names_the_default_index():
    patterns = [item for item in objects() if item["type"] == "index-pattern"]
    assert [p["attributes"]["title"] for p in patterns] == [Settings().index]


def test_saved_searches_reference_the_index_pattern_and_use_nested_dql():
    items = objects()
    known = {(item["type"], item["id"]) for item in items}
    for item in (i for i in items if i["type"] == "search"):
        source = json.loads(item["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
        (reference,) = item["references"]
        assert reference["name"] == source["indexRefName"]
        assert (reference["type"], reference["id"]) in known
        assert source["query"]["language"] == "kuery"
        # mentions is nested: DQL reaches its fields only inside a mentions:{ ... } group
        assert "mentions." not in source["query"]["query"]
