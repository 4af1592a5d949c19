"""Shared fixtures: one real OpenSearch for the test session, a fresh index per test.

The cluster comes from, in order: ``NER_OS_OPENSEARCH_URL``; a testcontainers OpenSearch when a
Docker engine answers; the local Maven launcher (``ner_os.store.node.lifecycle``), started for the session
and stopped at its end unless it was already running. With ``CI=true`` a cluster that cannot be
had fails the run; elsewhere the integration tests are skipped, with the reason.
"""

from __future__ import annotations

import os
import uuid

import pytest

from ner_os.store import connection, schema
from ner_os.store.node import lifecycle as local_node
from ner_os.config import Settings
from ner_os.errors import NerOsError

TEST_INDEX_PREFIX = "nerostest"  # outside "ner-os-*", so a user's own ner-os templates never apply


def _unavailable(reason: str):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and the integration tests have no OpenSearch: {reason}", pytrace=False)
    pytest.skip(f"integration tests skipped: {reason}")


def _testcontainers_opensearch():
    try:
        from testcontainers.community.opensearch import OpenSearchContainer
    except ImportError:
        from testcontainers.opensearch import OpenSearchContainer
    container = OpenSearchContainer(local_node.DOCKER_IMAGE, security_enabled=False,
                                    initial_admin_password="Ner-os-test-2024!")
    container.with_env("DISABLE_INSTALL_DEMO_CONFIG", "true")
    container.with_env("OPENSEARCH_JAVA_OPTS", f"-Xms{local_node.HEAP} -Xmx{local_node.HEAP}")
    return container


@pytest.fixture(scope="session")
def opensearch_url():
    """URL of a real OpenSearch 2.19 with k-NN for this test session."""
    url = os.environ.get("NER_OS_OPENSEARCH_URL")
    if url:
        yield url.rstrip("/")
        return
    if local_node.docker_engine_answers():
        try:
            container = _testcontainers_opensearch()
            container.start()
        except Exception as error:  # noqa: BLE001 - any Docker failure is "no cluster"
            _unavailable(f"testcontainers OpenSearch did not start: {error}")
        config = container.get_config()
        try:
            yield f"http://{config['host']}:{config['port']}"
        finally:
            container.stop()
        return
    settings = Settings.resolve()
    started_here = local_node.running(settings) is None
    try:
        node = local_node.start(settings)
    except NerOsError as error:
        _unavailable(str(error))
    try:
        yield node.url
    finally:
        if started_here:
            local_node.stop(settings)


@pytest.fixture(scope="session")
def client(opensearch_url):
    """An opensearch-py client for the session's cluster."""
    try:
        return connection.client_from_settings(Settings.resolve(opensearch_url=opensearch_url), wait_s=60)
    except NerOsError as error:
        _unavailable(str(error))


@pytest.fixture
def fresh_index(client):
    """A unique index name for one test; the index, its templates and pipelines are deleted after."""
    name = f"{TEST_INDEX_PREFIX}-{uuid.uuid4().hex[:12]}"
    yield name
    client.indices.delete(index=f"{name}*", ignore_unavailable=True, expand_wildcards="all")
    schema.remove_templates(client, name)
