"""``ner-os index delete`` against a real OpenSearch: the index goes with everything ner-os made for it,
and nothing of another index."""

from __future__ import annotations

import numpy as np
import pytest
from axis_embedder import AxisEmbedder
from click.testing import CliRunner

from ner_os.cli import cli
from ner_os.client import NerOs
from ner_os.config import Settings
from ner_os.errors import NerOsError
from ner_os.store import bulk, ml, schema, types_index
from ner_os.store.search import search_template_id
from ner_os.fields import vector_fields

pytestmark = pytest.mark.integration

DIM = 4
RIVER, CITY = np.eye(DIM, dtype=np.float32)[:2]
DOCS = {"d1": ("The Danube flows through Vienna.", [("Danube", RIVER), ("Vienna", CITY)]),
        "d2": ("Cologne lies on the Rhine.", [("Cologne", CITY), ("Rhine", RIVER)])}


def documents(index):
    for doc_id, (text, mentions) in DOCS.items():
        marked = [{"start": text.index(surface), "end": text.index(surface) + len(surface), "surface": surface,
                   "types": [], **vector_fields(vector)} for surface, vector in mentions]
        yield {"_index": index, "_id": doc_id, "_source": {"text": text, "mentions": marked}}


def made_for(ner: NerOs, index: str) -> None:
    """What ner-os makes for an index: templates, pipelines, the stored search template, a load, a type."""
    installed = ner.install_templates(DIM)
    assert installed.search_template == search_template_id(index), installed.search_template_error
    assert bulk.bulk_index(ner.opensearch, list(documents(index)), refresh=True).failures == []
    ner.register_type("river")
    if installed.names.search_pipelines:
        ml.set_default_model(ner.opensearch, index, "no-such-model", list(installed.names.search_pipelines.values()))


def leftovers(client, index: str) -> list[str]:
    """Everything named after ``index`` still on the cluster."""
    found = []
    if client.indices.exists(index=index):
        found.append(f"index {index}")
    if client.indices.exists_index_template(name=index):
        found.append(f"index template {index}")
    components = client.cluster.get_component_template(ignore=404).get("component_templates", [])
    found += [f"component template {c['name']}" for c in components if c["name"].startswith(index)]
    pipelines = client.transport.perform_request("GET", "/_search/pipeline")
    # the cluster lists its search pipelines in no fixed order
    found += sorted(f"search pipeline {name}" for name in pipelines if name.startswith(index))
    if client.get_script(id=search_template_id(index), ignore=404).get("found"):
        found.append(f"stored script {search_template_id(index)}")
    found += [f"type {t.name}" for t in types_index.read_types(client, index)]
    return found


@pytest.fixture
def two_indexes(client, opensearch_url, fresh_index):
    """The test's index and a neighbour whose name it begins, each with all that ner-os makes."""
    neighbour = f"{fresh_index}n"  # prefixed by the index's name, outside its templates' patterns
    ners = [NerOs(Settings.resolve(opensearch_url=opensearch_url, index=name), opensearch=client,
                  embedder=AxisEmbedder({"river": RIVER})) for name in (fresh_index, neighbour)]
    for ner, name in zip(ners, (fresh_index, neighbour)):
        made_for(ner, name)
    yield ners
    for name in (fresh_index, neighbour):
        types_index.delete_type_records(client, name)
        client.delete_script(id=search_template_id(name), ignore=404)
        schema.remove_templates(client, name, extra_pipelines=(ml.neural_pipeline(name),))


def test_delete_removes_everything_named_after_the_index_and_nothing_else(client, two_indexes, fresh_index):
    ner, neighbour = two_indexes
    before = leftovers(client, fresh_index)
    assert {f"index {fresh_index}", f"index template {fresh_index}", f"type river",
            f"stored script {search_template_id(fresh_index)}"} <= set(before)
    neighbour_before = leftovers(client, neighbour.settings.index)
    removed = ner.delete_index()
    assert removed.index == fresh_index and removed.documents == 2 and removed.type_records == 1
    assert removed.removed[0] == f"index {fresh_index}"
    assert f"component template {fresh_index}-document" in removed.removed
    pipelines = sorted(item for item in before if item.startswith("search pipeline") and neighbour.settings.index not in item)
    assert pipelines == sorted(item for item in removed.removed if item.startswith("search pipeline"))
    assert [item for item in leftovers(client, fresh_index) if neighbour.settings.index not in item] == []
    assert leftovers(client, neighbour.settings.index) == neighbour_before
    with pytest.raises(NerOsError, match=f"no index '{fresh_index}' on the cluster"):
        ner.delete_index()


def test_cli_asks_first_and_says_what_it_removed(client, two_indexes, fresh_index, opensearch_url):
    runner = CliRunner()
    refused = runner.invoke(cli, ["index", "delete", fresh_index, "--url", opensearch_url], input="n\n")
    assert refused.exit_code == 1 and client.indices.exists(index=fresh_index)
    done = runner.invoke(cli, ["index", "delete", fresh_index, "--url", opensearch_url], input="y\n")
    assert done.exit_code == 0, done.output
    assert f"deleted index '{fresh_index}' (2 documents)" in done.output
    assert f"index template {fresh_index}" in done.output and "1 registered-type record" in done.output
    assert not client.indices.exists(index=fresh_index)
    missing = runner.invoke(cli, ["index", "delete", fresh_index, "--yes", "--url", opensearch_url])
    assert missing.exit_code == 2 and f"no index '{fresh_index}'" in missing.output
