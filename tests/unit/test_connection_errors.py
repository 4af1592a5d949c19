"""Connecting fails fast and says what it waited (issue #18, defect 7): a URL that is not one is refused
before any connection, a refused connection is not retried for the whole timeout, and a server that
accepts and never answers is given up on after the time the message states."""

from __future__ import annotations

import re
import socket
import time

import pytest

from ner_os.config import Settings
from ner_os.errors import ClusterError, ConfigError
from ner_os.store import connection

pytestmark = pytest.mark.unit


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("url", ["localhost9200", "127.0.0.1:9200", "ftp://127.0.0.1:9200", "http://", "http:///x",
                                 "http://127.0.0.1:port", "http://127.0.0.1:99999", "user:s3cret@127.0.0.1"])
def test_a_url_that_is_not_an_opensearch_url_is_refused_before_connecting(url, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("connected to a URL that is not one")

    monkeypatch.setattr(connection, "OpenSearch", never)
    with pytest.raises(ConfigError, match="not an OpenSearch URL") as raised:
        connection.client_from_settings(Settings.resolve(env={}, opensearch_url=url, timeout_s=30))
    assert "s3cret" not in str(raised.value) and "\n" not in str(raised.value)


def test_a_refused_connection_fails_fast_and_says_so():
    port = free_port()
    started = time.monotonic()
    with pytest.raises(ClusterError, match="connection refused") as raised:
        connection.client_from_settings(Settings.resolve(env={}, opensearch_url=f"http://127.0.0.1:{port}",
                                                         timeout_s=30))
    assert time.monotonic() - started < 10  # not the 30 s timeout: nothing listens, waiting will not help
    assert f"127.0.0.1:{port}" in str(raised.value) and "\n" not in str(raised.value)


def test_a_silent_server_is_given_up_on_after_the_time_the_message_states():
    with socket.socket() as silent:  # accepts connections (the kernel does) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(ClusterError, match=r"unreachable after (\d+) s") as raised:
            connection.client_from_settings(Settings.resolve(env={}, opensearch_url=url, timeout_s=3))
        waited = time.monotonic() - started
    stated = int(re.search(r"unreachable after (\d+) s", str(raised.value)).group(1))
    assert stated == 3
    assert waited < stated + 1.5, f"waited {waited:.1f} s, the message says {stated} s"
