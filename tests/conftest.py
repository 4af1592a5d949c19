"""Shared fixtures: one real OpenSearch for the test session, a fresh index per test.

The cluster comes from, in order: ``NER_OS_OPENSEARCH_URL``; a testcontainers OpenSearch when a
Docker engine answers; the local Maven launcher (``ner_os.store.node.lifecycle``), started for the session
and stopped at its end unless it was already running. With ``CI=true`` a cluster that cannot be
had fails the run; elsewhere the integration tests are skipped, with the reason.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from ner_os.store import connection, schema
from ner_os.store.node import lifecycle as local_node
from ner_os.store.node.certificates import client_certificate
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
def ml_opensearch_url(tmp_path_factory):
    """URL of a real OpenSearch 2.19 with ML Commons (tests/integration/test_ml_commons.py):
    ``NER_OS_ML_OPENSEARCH_URL`` when set (CI starts one node and names it), else a node of the
    session's own, with its own data dir, stopped at the end."""
    url = os.environ.get("NER_OS_ML_OPENSEARCH_URL")
    if url:
        yield url.rstrip("/")
        return
    settings = Settings.resolve(data_dir=str(tmp_path_factory.mktemp("ml-node")))
    try:
        node = local_node.start(settings, ml_commons=True)
    except NerOsError as error:
        _unavailable(f"no OpenSearch with ML Commons: {error}")
    try:
        yield node.url
    finally:
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


# --- a secured cluster: the security plugin with TLS, generated users and the shipped ner-os roles ---------


@dataclass(frozen=True)
class SecureCluster:
    """A cluster behind the OpenSearch security plugin: its https URL, the CA that signed its
    certificate, and the passwords of the users ``admin``, ``ner_os_loader`` and ``ner_os_searcher``
    (roles as in tools/opensearch-node/security/roles.yml). ``loader_cert``: (certificate, key) whose CN
    is ``ner_os_loader``, or None when there is none to test client-certificate authentication with."""

    url: str
    ca: str
    passwords: dict
    loader_cert: tuple[str, str] | None = None

    def settings(self, user: str | None = "ner_os_loader", **flags) -> Settings:
        """Settings as a user would give them: URL, CA, username, password in ``NER_OS_PASSWORD``."""
        env = {"NER_OS_PASSWORD": self.passwords[user]} if user else {}
        flags = {"opensearch_url": self.url, "ca_certs": self.ca, "timeout_s": 10.0, **flags}
        if user:
            flags.setdefault("username", user)
        return Settings.resolve(env=env, **flags)


@pytest.fixture(scope="session")
def secure_cluster(tmp_path_factory):
    """One secured node for the whole session: ``NER_OS_SECURE_OPENSEARCH_URL`` with ``NER_OS_SECURE_CA``
    and ``NER_OS_SECURE_CREDENTIALS`` (a JSON file ``{"admin": …, "ner_os_loader": …, "ner_os_searcher": …}``),
    and optionally ``NER_OS_SECURE_CLIENT_CERT`` / ``NER_OS_SECURE_CLIENT_KEY`` (CN=ner_os_loader), when set;
    else the local launcher with ``--secure`` (its own data directory), stopped at the end."""
    url = os.environ.get("NER_OS_SECURE_OPENSEARCH_URL")
    if url:
        ca, credentials = os.environ.get("NER_OS_SECURE_CA"), os.environ.get("NER_OS_SECURE_CREDENTIALS")
        if not ca or not credentials:
            pytest.fail("NER_OS_SECURE_OPENSEARCH_URL needs NER_OS_SECURE_CA and NER_OS_SECURE_CREDENTIALS",
                        pytrace=False)
        client_cert, client_key = os.environ.get("NER_OS_SECURE_CLIENT_CERT"), os.environ.get("NER_OS_SECURE_CLIENT_KEY")
        yield SecureCluster(url.rstrip("/"), ca, json.loads(Path(credentials).read_text()),
                            loader_cert=(client_cert, client_key) if client_cert and client_key else None)
        return
    settings = Settings.resolve(env={}, data_dir=str(tmp_path_factory.mktemp("secure-node")))
    try:
        record = local_node.start(settings, secure=True)
    except NerOsError as error:
        _unavailable(f"the secured local node did not start: {error}")
    try:
        loader_cert = tuple(str(path) for path in client_certificate(Path(record.ca).parent, "ner_os_loader"))
        yield SecureCluster(record.url, record.ca, local_node.credentials(record), loader_cert)
    finally:
        local_node.stop(settings)


@pytest.fixture(scope="session")
def secure_admin(secure_cluster):
    """An opensearch-py client of the secured cluster's admin user (set-up and clean-up only)."""
    return connection.client_from_settings(secure_cluster.settings("admin"), wait_s=60)


@pytest.fixture
def secure_index(secure_admin):
    """A unique ``ner-os-test-…`` index name (the ner-os roles cover ``ner-os*`` only); its indices,
    templates and pipelines are deleted after the test by the admin user."""
    name = f"ner-os-test-{uuid.uuid4().hex[:12]}"
    yield name
    secure_admin.indices.delete(index=f"{name}*", ignore_unavailable=True, expand_wildcards="all")
    schema.remove_templates(secure_admin, name)
