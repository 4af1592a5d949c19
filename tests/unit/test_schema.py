"""The document index's schema without a cluster: templates, placeholders, search pipelines."""

import pytest

from ner_os.store import schema
from ner_os.errors import ConfigError

pytestmark = pytest.mark.unit


def test_index_body_takes_the_dimension_from_the_caller_as_an_integer():
    body = schema.index_body("docs", 500)
    vector = body["mappings"]["properties"]["mentions"]["properties"]["vector"]
    assert vector["dimension"] == 500
    assert vector["method"] == {
        "name": "hnsw", "engine": "lucene", "space_type": "cosinesimil",
        "parameters": {"m": schema.DEFAULT_PARAMS["hnsw_m"], "ef_construction": schema.DEFAULT_PARAMS["hnsw_ef_construction"]},
    }
    assert body["settings"]["index.knn"] is True
    assert body["mappings"]["_meta"]["ner_os"]["vector_dimension"] == 500


def test_index_body_merges_both_components_and_the_index_template_settings():
    body = schema.index_body("docs", 8, hnsw_m=32, nested_objects_limit=123)
    properties = body["mappings"]["properties"]
    assert {"text", "doc_id", "metadata", "mentions"} <= set(properties)
    assert properties["mentions"]["properties"]["vector"]["method"]["parameters"]["m"] == 32
    assert body["settings"]["index.mapping.nested_objects.limit"] == 123
    assert body["settings"]["index.number_of_shards"] == 1


def test_index_template_names_its_components_and_patterns_after_the_index():
    values = schema.template_values("books", 8)
    template = schema.render_template("index_template.json", **values)
    assert template["index_patterns"] == ["books", "books-*"]
    assert template["composed_of"] == ["books-document", "books-mentions"]
    # a longer (more specific) index name gets a higher priority than an overlapping shorter one
    assert template["priority"] > schema.template_values("book", 8)["priority"]


@pytest.mark.parametrize("bad", [0, -3, 2.5, "8", True, None])
def test_a_dimension_that_is_not_a_positive_integer_is_refused(bad):
    with pytest.raises(ConfigError, match="positive integer"):
        schema.index_body("docs", bad)


def test_unknown_template_parameters_are_refused():
    with pytest.raises(ConfigError, match="hnsw_mm"):
        schema.index_body("docs", 8, hnsw_mm=4)


def test_a_placeholder_without_a_value_names_the_file(tmp_path, monkeypatch):
    (tmp_path / "t.json").write_text('{"a": "{{missing}}"}')
    monkeypatch.setattr(schema, "templates_dir", lambda: tmp_path)
    with pytest.raises(ConfigError, match=r"t\.json: no value for placeholder \{\{missing\}\}"):
        schema.render_template("t.json")


def test_placeholders_inside_longer_strings_become_text(tmp_path, monkeypatch):
    (tmp_path / "t.json").write_text('{"name": "{{index}}-x", "n": "{{n}}", "list": ["{{n}}"]}')
    monkeypatch.setattr(schema, "templates_dir", lambda: tmp_path)
    assert schema.render_template("t.json", index="docs", n=3) == {"name": "docs-x", "n": 3, "list": [3]}


def test_pipeline_names_follow_the_index_and_unknown_kinds_are_refused():
    assert schema.pipeline_name("docs", "rrf") == "docs-rrf"
    with pytest.raises(ConfigError, match="unknown search pipeline kind"):
        schema.pipeline_name("docs", "linear")


def test_search_pipelines_render_with_their_processors():
    values = schema.template_values("docs", 8)
    rrf = schema.render_template("search_pipeline.rrf.json", **values)
    processor = rrf["phase_results_processors"][0]["score-ranker-processor"]
    assert processor["combination"] == {"technique": "rrf", "rank_constant": 60}
    minmax = schema.render_template("search_pipeline.minmax.json", **values)
    assert "normalization-processor" in minmax["phase_results_processors"][0]


def test_the_stored_source_keeps_a_mention_vector_as_bytes_only():
    mappings = schema.index_body("docs", 8)["mappings"]
    assert mappings["_source"] == {"excludes": ["mentions.vector"]}
    assert mappings["properties"]["mentions"]["properties"]["vector_bytes"] == {"type": "binary"}


def test_the_settings_shard_count_reaches_the_templates_and_a_bad_one_is_refused():
    from ner_os.config import Settings
    from ner_os.errors import ConfigError

    assert schema.settings_params(Settings.resolve(env={})) == {}
    assert schema.settings_params(Settings.resolve(env={"NER_OS_INDEX_SHARDS": "4"})) == {"shards": 4}
    body = schema.index_body("docs", 8, **schema.settings_params(Settings.resolve(index_shards=2)))
    assert body["settings"]["index.number_of_shards"] == 2
    for bad in (0, 1025, True):
        with pytest.raises(ConfigError, match="index_shards.*from 1 to 1024"):
            schema.settings_params(Settings.resolve(index_shards=bad))


def test_a_load_past_the_mentions_a_shard_keeps_recall_for_is_told_how_many_shards_to_rebuild_with():
    per_shard = schema.MENTIONS_PER_SHARD
    assert schema.shards_advice("docs", per_shard, 1) is None
    assert schema.shards_advice("docs", 2 * per_shard, 2) is None
    advice = schema.shards_advice("docs", 2 * per_shard + 1, 2)
    assert "1,000,001 mentions on 2 primary shard(s) of 'docs'" in advice
    assert "--index-shards 3 --replace-index" in advice
