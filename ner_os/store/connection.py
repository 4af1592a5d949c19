"""The connection to OpenSearch: the client, reachability, the plugins a cluster has, and error wording."""

from __future__ import annotations

import socket
import time
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from opensearchpy import OpenSearch
from opensearchpy import exceptions as os_errors

from ner_os.config import Settings, redacted_url
from ner_os.errors import ClusterError, ConfigError
from ner_os.store.node.lifecycle import ensure_cluster_url

REFUSED_GRACE_S = 2.0  # a refused connection is retried this long (a node binding its port), not the whole timeout


def client_from_settings(settings: Settings, wait_s: float | None = None) -> OpenSearch:
    """A client for the configured cluster (or the local node, started when no URL is set), checked
    to answer within ``wait_s`` seconds (default ``settings.timeout_s``)."""
    check_credentials(settings)
    if settings.opensearch_url:
        check_url(settings.opensearch_url)
    url = ensure_cluster_url(settings)
    client = OpenSearch(**client_options(settings, url))
    wait_until_reachable(client, url, settings.timeout_s if wait_s is None else wait_s)
    return client


def check_credentials(settings: Settings) -> None:
    if settings.password and not settings.username:
        raise ConfigError("a password is set (NER_OS_PASSWORD) but no username (--username / NER_OS_USERNAME)")


def client_options(settings: Settings, url: str) -> dict[str, Any]:
    """The keyword arguments of an ``OpenSearch`` (or ``AsyncOpenSearch``) client for ``url``: credentials,
    TLS, timeout and retries from the settings."""
    check_credentials(settings)
    return {"hosts": [url], "http_auth": (settings.username, settings.password or "") if settings.username else None,
            "verify_certs": settings.verify_certs, "ssl_show_warn": settings.verify_certs,
            "ca_certs": settings.ca_certs, "client_cert": settings.client_cert, "client_key": settings.client_key,
            "timeout": settings.timeout_s, "max_retries": 3, "retry_on_timeout": True}


def check_url(url: str) -> None:
    """Refuse, before any connection, a URL that cannot be an OpenSearch endpoint: it needs http or
    https, a host, and a port (when given) in 1-65535."""
    parts = urlsplit(url.strip())
    problem = None
    if parts.scheme not in ("http", "https"):
        problem = "it needs http:// or https://"
    elif not parts.hostname:
        problem = "it names no host"
    else:
        try:
            port = parts.port
        except ValueError:
            port = -1
        if port is not None and not 0 < port < 65536:
            problem = "its port is not a number in 1-65535"
    if problem:
        shown = redacted_url(url)
        shown = "***@" + shown.rsplit("@", 1)[1] if "@" in shown and "***@" not in shown else shown
        raise ConfigError(f"--url {shown!r} is not an OpenSearch URL: {problem} (e.g. http://localhost:9200)")


def wait_until_reachable(client: OpenSearch, url: str, wait_s: float) -> dict:
    """``GET /`` until it answers; ``ClusterError`` after ``wait_s`` (the message gives the seconds
    waited), at once on TLS/auth refusal, and within ``REFUSED_GRACE_S`` when the connection is
    refused or the host name does not resolve (waiting will not make a server appear)."""
    url = redacted_url(url)
    started = time.monotonic()
    deadline = started + wait_s
    attempts = 1 + int(getattr(getattr(client, "transport", None), "max_retries", 0) or 0)
    while True:
        # the client retries a timed-out request: each attempt gets its share of the time left
        request_timeout = max(0.2, min(5.0, (deadline - time.monotonic()) / attempts))
        try:
            return client.info(request_timeout=request_timeout)
        except os_errors.SSLError as error:
            raise ClusterError(f"TLS handshake with {url} failed ({error.info or error}); "
                               "check --ca-certs / NER_OS_CA_CERTS or NER_OS_VERIFY_CERTS") from None
        except (os_errors.AuthenticationException, os_errors.AuthorizationException) as error:
            raise ClusterError(f"{url} refused the credentials (HTTP {error.status_code}); "
                               "check --username / NER_OS_USERNAME and NER_OS_PASSWORD") from None
        except os_errors.TransportError as error:  # connection refused, timeout, 503 while starting
            waited = time.monotonic() - started
            refused = _refusal(error)
            if refused and waited >= min(wait_s, REFUSED_GRACE_S):
                raise ClusterError(f"OpenSearch at {url} is unreachable: {refused} (is it running, and is "
                                   "that its address?)") from None
            if time.monotonic() >= deadline:
                raise ClusterError(f"OpenSearch at {url} is unreachable after {waited:.0f} s: {reason(error)}") from None
            time.sleep(max(0.0, min(0.25 if refused else 1.0, deadline - time.monotonic())))


def _refusal(error: os_errors.TransportError) -> str | None:
    """"connection refused" or "the host name does not resolve" when that is what failed, else None."""
    seen = error.info if isinstance(error.info, BaseException) else None
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
        if isinstance(seen, socket.gaierror):
            return "the host name does not resolve"
        seen = seen.__cause__ or seen.__context__
    return None


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


def refusal(error: BaseException) -> ClusterError | None:
    """A refusal by the cluster that no stage turned into a ``ClusterError`` (a 403 for a user whose
    role lacks a permission, above all) as one; None for any other exception."""
    if isinstance(error, (os_errors.AuthenticationException, os_errors.AuthorizationException)):
        return ClusterError(f"OpenSearch refused the request (HTTP {error.status_code} {reason(error)}); the "
                            "user's role must grant it (see docs/secured-cluster.md)")
    if isinstance(error, os_errors.TransportError):
        return ClusterError(f"an OpenSearch request failed: {reason(error)}")
    return None


def ignore_missing(function: Callable, *args, **kwargs) -> bool:
    """``function(*args, **kwargs)``, where a 404 (nothing to delete) is no error: False then, else True."""
    try:
        function(*args, **kwargs)
    except os_errors.NotFoundError:
        return False
    return True


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
