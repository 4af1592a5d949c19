"""A secured cluster: https with a CA bundle, HTTP basic auth and a client certificate.

The OpenSearch security plugin is not among the launcher's classpath plugins (it needs its own
keystores, a security index initialised by ``securityadmin`` and demo configuration that the Maven
artifacts do not set up in one step), so the TLS and authentication checks run in a loopback TLS
proxy (``local_proxies.TlsAuthProxy``) that requires the client certificate at the handshake and the
basic-auth header on every request, then forwards to the real session node. Everything ner-os sends
is thus a real request answered by OpenSearch; only the security layer is the proxy's.

Secrets come from ``NER_OS_PASSWORD`` or ``--password-prompt``, never from a flag value; none of them
may appear in logs, errors, progress output, the settings' description or the checkpoint file.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from ner_os.cli import cli
from ner_os.config import Settings
from ner_os.errors import ClusterError
from ner_os.store.connection import client_from_settings
from ner_os.loader import load
from ner_os.spans import NoDetector

pytestmark = pytest.mark.integration

sys.path.insert(0, str(Path(__file__).resolve().parent))
from local_proxies import TlsAuthProxy, make_certificates  # noqa: E402

USERNAME = "loader"
PASSWORD = "Sup3r-s3cret-pw!"
SECRETS = (PASSWORD, base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode(),
           base64.b64encode(PASSWORD.encode()).decode())


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, f"a credential leaked into: {text[:300]!r}"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    return make_certificates(tmp_path_factory.mktemp("certificates"))


@pytest.fixture(scope="module")
def proxy(opensearch_url, certificates):
    with TlsAuthProxy(opensearch_url, certificates, USERNAME, PASSWORD) as running:
        yield running


@pytest.fixture(scope="module")
def embedder(tmp_path_factory):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
    from test_encoder_tiny import tiny_encoder  # the encoder tests' tiny random-initialised model

    from ner_os.mentions.embedder import MentionEmbedder

    return MentionEmbedder(tiny_encoder("llama", tmp_path_factory), None)


def secured(proxy, certificates, **overrides) -> Settings:
    flags = dict(opensearch_url=proxy.url, username=USERNAME, ca_certs=str(certificates.ca),
                 client_cert=str(certificates.client_cert), client_key=str(certificates.client_key), timeout_s=10.0)
    flags.update(overrides)
    return Settings.resolve(env={"NER_OS_PASSWORD": PASSWORD}, **{k: v for k, v in flags.items() if v is not None})


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_load_over_https_with_ca_basic_auth_and_client_certificate_leaks_no_secret(
        proxy, certificates, client, fresh_index, embedder, tmp_path, caplog, capsys):
    caplog.set_level(logging.DEBUG)  # opensearch-py's request traces included
    settings = secured(proxy, certificates, index=fresh_index, data_dir=str(tmp_path / "data"))
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "text": f"Ada met Charles in London {i}",
                                          "mentions": [{"start": 0, "end": 3}]}) + "\n" for i in range(30)))
    summary = load(corpus, settings, embedder=embedder, detector=NoDetector(), progress=True)
    assert summary.documents == 30 and summary.rejected == 0
    client.indices.refresh(index=fresh_index)
    assert client.count(index=fresh_index)["count"] == 30
    assert proxy.client_subjects and set(proxy.client_subjects) == {"ner-os-test-client"}
    captured = capsys.readouterr()
    assert "load" in captured.err  # the progress bar did write
    checkpoints = [path.read_text() for path in (tmp_path / "data").rglob("*") if path.is_file()]
    assert checkpoints
    assert_no_secret(caplog.text, captured.out, captured.err, summary.describe(), json.dumps(summary.to_json()),
                     json.dumps(settings.describe()), repr(settings), *checkpoints)
    assert settings.describe()["password"] == "***"


def test_a_wrong_password_is_a_one_line_error_that_does_not_repeat_it(proxy, certificates):
    refused_before = proxy.refused_auth
    started = time.monotonic()
    with pytest.raises(ClusterError, match=r"refused the credentials \(HTTP 401\)") as error:
        client_from_settings(Settings.resolve(env={"NER_OS_PASSWORD": PASSWORD + "x"}, **{
            **secured(proxy, certificates).describe(), "password": None}))
    assert time.monotonic() - started < 5 and proxy.refused_auth > refused_before
    assert "\n" not in str(error.value)
    assert_no_secret(str(error.value))
    assert PASSWORD + "x" not in str(error.value)


def test_a_server_certificate_from_another_ca_fails_the_handshake(proxy, certificates):
    with pytest.raises(ClusterError, match="TLS handshake") as error:
        client_from_settings(secured(proxy, certificates, ca_certs=str(certificates.other_ca)))
    assert_no_secret(str(error.value))


def test_without_a_client_certificate_nothing_reaches_the_cluster(proxy, certificates):
    seen = len(proxy.client_subjects)
    started = time.monotonic()
    with pytest.raises(ClusterError) as error:
        client_from_settings(secured(proxy, certificates, timeout_s=3.0, client_cert="", client_key=""))
    assert time.monotonic() - started < 30
    assert len(proxy.client_subjects) == seen  # no request got past the handshake
    assert_no_secret(str(error.value))


def test_credentials_in_the_url_are_masked_in_errors():
    url = f"https://{USERNAME}:{PASSWORD}@127.0.0.1:{closed_port()}"
    with pytest.raises(ClusterError, match=r"https://\*\*\*@127\.0\.0\.1") as error:
        client_from_settings(Settings.resolve(env={}, opensearch_url=url, timeout_s=1.0))
    assert_no_secret(str(error.value))


def cli_flags(proxy, certificates, index):
    return ["templates", "install", "--dimension", "8", "--url", proxy.url, "--index", index,
            "--username", USERNAME, "--ca-certs", str(certificates.ca), "--client-cert", str(certificates.client_cert),
            "--client-key", str(certificates.client_key)]


def test_the_cli_takes_the_password_from_a_prompt_or_the_environment_never_a_flag(
        proxy, certificates, client, fresh_index):
    runner = CliRunner()
    flags = cli_flags(proxy, certificates, fresh_index)
    prompted = runner.invoke(cli, flags + ["--password-prompt"], input=PASSWORD + "\n", env={"NER_OS_PASSWORD": None})
    assert prompted.exit_code == 0, prompted.output
    assert "Password" in prompted.output and f"index template {fresh_index}" in prompted.output
    assert client.indices.exists_index_template(name=fresh_index)
    from_env = runner.invoke(cli, flags, env={"NER_OS_PASSWORD": PASSWORD})
    assert from_env.exit_code == 0, from_env.output
    wrong = runner.invoke(cli, flags + ["--password-prompt"], input="not-it\n", env={"NER_OS_PASSWORD": None})
    assert wrong.exit_code == 2 and "refused the credentials" in wrong.output and "not-it" not in wrong.output
    as_flag = runner.invoke(cli, flags + ["--password", PASSWORD])
    assert as_flag.exit_code == 2 and "No such option" in as_flag.output
    assert_no_secret(prompted.output, from_env.output, wrong.output, as_flag.output)
