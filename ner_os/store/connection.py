"""The connection to OpenSearch: the client, reachability, the plugins a cluster has, and error wording."""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping

from opensearchpy import OpenSearch
from opensearchpy import exceptions as os_errors

from ner_os.config import Settings, redacted_url
from ner_os.errors import ClusterError, ConfigError
from ner_os.store.node.lifecycle import ensure_cluster_url


def client_from_settings(settings: Settings, wait_s: float | None = None) -> OpenSearch:
    """A client for the configured cluster (or the local node, started when no URL is set), checked
    to answer within ``wait_s`` seconds (default ``settings.timeout_s``)."""
    if settings.password and not settings.username:
        raise ConfigError("a password is set (NER_OS_PASSWORD) but no username (--username / NER_OS_USERNAME)")
    url = ensure_cluster_url(settings)
    auth = (settings.username, settings.password or "") if settings.username else None
    client = OpenSearch(
        hosts=[url],
        http_auth=auth,
        verify_certs=settings.verify_certs,
        ssl_show_warn=settings.verify_certs,
        ca_certs=settings.ca_certs,
        client_cert=settings.client_cert,
        client_key=settings.client_key,
        timeout=settings.timeout_s,
        max_retries=3,
        retry_on_timeout=True,
    )
    wait_until_reachable(client, url, settings.timeout_s if wait_s is None else wait_s)
    return client


def wait_until_reachable(client: OpenSearch, url: str, wait_s: float) -> dict:
    """``GET /`` until it answers; ``ClusterError`` after ``wait_s`` or at once on TLS/auth refusal."""
    url = redacted_url(url)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return client.info(request_timeout=max(1.0, min(5.0, wait_s)))
        except os_errors.SSLError as error:
            raise ClusterError(f"TLS handshake with {url} failed ({error.info or error}); "
                               "check --ca-certs / NER_OS_CA_CERTS or NER_OS_VERIFY_CERTS") from None
        except (os_errors.AuthenticationException, os_errors.AuthorizationException) as error:
            raise ClusterError(f"{url} refused the credentials (HTTP {error.status_code}); "
                               "check --username / NER_OS_USERNAME and NER_OS_PASSWORD") from None
        except os_errors.TransportError as error:  # connection refused, timeout, 503 while starting
            if time.monotonic() >= deadline:
                raise ClusterError(f"OpenSearch at {url} is unreachable after {wait_s:.0f} s: {reason(error)}") from None
            time.sleep(1.0)


def cluster_plugins(client: OpenSearch) -> set[str]:
    """Plugin names of the cluster's nodes, lower case (``opensearch-knn``, or the class name of a
    classpath plugin such as ``org.opensearch.knn.plugin.knnplugin`` on the local launcher)."""
    rows = client.cat.plugins(format="json")
    return {row["component"].lower() for row in rows}


def has_knn(client: OpenSearch) -> bool:
    return any("knn" in name for name in cluster_plugins(client))


def has_neural_search(client: OpenSearch) -> bool:
    """True when the ``hybrid`` query and the normalization / RRF search processors are available."""
    return any("neural" in name for name in cluster_plugins(client))


def require_knn(client: OpenSearch) -> None:
    if not has_knn(client):
        raise ClusterError("the cluster has no k-NN plugin (opensearch-knn); ner-os needs it for mention vectors")


def call(what: str, function: Callable, *args, **kwargs):
    """``function(*args, **kwargs)``; a refusal by the cluster is one ``ClusterError``: "<what> failed: <reason>"."""
    try:
        return function(*args, **kwargs)
    except os_errors.TransportError as error:
        raise ClusterError(f"{what} failed: {reason(error)}") from None


def ignore_missing(function: Callable, *args, **kwargs) -> None:
    """``function(*args, **kwargs)``, where a 404 (nothing to delete) is no error."""
    try:
        function(*args, **kwargs)
    except os_errors.NotFoundError:
        pass


def reason(error: Any) -> str:
    """What the cluster said, in one line: ``type: reason`` (with its cause when given) of a
    ``TransportError``, of its body, or of an error object from a response (an msearch item's)."""
    if isinstance(error, os_errors.TransportError):
        if isinstance(error.info, Mapping) and isinstance(error.info.get("error"), Mapping):
            return _root_reason(error.info["error"])
        return str(error.error if error.error not in (None, "N/A") else error)
    if isinstance(error, Mapping):
        root = error.get("error", error)
        if isinstance(root, Mapping):
            return _root_reason(root)
    return str(error)


def _root_reason(root: Mapping) -> str:
    said = f"{root.get('type')}: {root.get('reason')}"
    caused = root.get("caused_by")
    if isinstance(caused, Mapping) and caused.get("reason"):
        said += f" ({caused.get('type')}: {caused.get('reason')})"
    return said
