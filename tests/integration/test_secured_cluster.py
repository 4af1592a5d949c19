"""A secured cluster: the OpenSearch security plugin (the ``secure_cluster`` session fixture: one local
node started with ``--secure``, or the cluster ``NER_OS_SECURE_OPENSEARCH_URL`` names), https with its
CA, HTTP basic auth and client certificates, and the least-privilege roles of
``tools/opensearch-node/security/roles.yml``.

Every command runs as a user would run it (the CLI, its flags and ``NER_OS_PASSWORD``); only the model
is swapped for the encoder tests' tiny random-initialised one. The ``leaks`` fixture gathers every
output, log record and exception text, and every file the commands wrote (checkpoints, reject files,
logs), and fails the test when any user's password (or its base64 forms) appears in them.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from opensearchpy import exceptions as os_errors

from ner_os.cli import cli
from ner_os.config import Settings
from ner_os.errors import ClusterError
from ner_os.loader import load
from ner_os.mentions.embedder import MentionEmbedder
from ner_os.spans import NoDetector
from ner_os.store.connection import client_from_settings
from ner_os.store.node.certificates import make_certificates

pytestmark = pytest.mark.integration

LOADER, SEARCHER = "ner_os_loader", "ner_os_searcher"


@pytest.fixture(scope="module")
def embedder(tmp_path_factory):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
    from test_encoder_tiny import tiny_encoder  # the encoder tests' tiny random-initialised model

    return MentionEmbedder(tiny_encoder("llama", tmp_path_factory), None)


@pytest.fixture
def tiny_model(monkeypatch, embedder):
    """The CLI's commands build their embedder from the settings: give them the tiny model instead."""
    monkeypatch.setattr(MentionEmbedder, "from_settings", classmethod(lambda cls, settings, **options: embedder))
    return embedder


class Leaks:
    """Everything the commands of one test said or wrote, checked for every user's password."""

    def __init__(self, cluster, roots):
        self.secrets = set()
        for user, password in cluster.passwords.items():
            self.secrets |= {password, base64.b64encode(f"{user}:{password}".encode()).decode(),
                             base64.b64encode(password.encode()).decode()}
        self.roots, self.texts = roots, []

    def add(self, *texts: str) -> None:
        self.texts.extend(texts)

    def check(self) -> int:
        """Fail on a leak; the number of texts and files looked at."""
        files = [path for root in self.roots for path in root.rglob("*") if path.is_file()]
        texts = self.texts + [path.read_text(errors="replace") for path in files]
        for text in texts:
            for secret in self.secrets:
                assert secret not in text, f"a credential leaked into: {text[:300]!r}"
        return len(texts)


@pytest.fixture
def leaks(secure_cluster, tmp_path, caplog):
    """The test's :class:`Leaks`, checked after it (with every log record, DEBUG included)."""
    caplog.set_level(logging.DEBUG)  # opensearch-py's and urllib3's request traces included
    gathered = Leaks(secure_cluster, [tmp_path])
    yield gathered
    gathered.add(caplog.text)
    assert gathered.check() > 0


def corpus(path: Path, count: int, bad_lines: int = 0, prefix: str = "d") -> Path:
    lines = [json.dumps({"id": f"{prefix}{i}", "text": f"Ada met Charles in London {i}",
                         "mentions": [{"start": 0, "end": 3}, {"start": 8, "end": 15}]}) for i in range(count)]
    lines += ['{"id": "broken", "text": '] * bad_lines
    path.write_text("\n".join(lines) + "\n")
    return path


def as_user(cluster, user: str | None, index: str, data_dir: Path, password: str | None = None):
    """(flags, environment) of a command run as ``user`` (None: anonymous), its password in the environment."""
    flags = ["--url", cluster.url, "--index", index, "--ca-certs", cluster.ca]
    env = {"NER_OS_DATA_DIR": str(data_dir), "NER_OS_PASSWORD": None, "NER_OS_USERNAME": None,
           "NER_OS_OPENSEARCH_URL": None}
    if user is not None:
        flags += ["--username", user]
        env["NER_OS_PASSWORD"] = cluster.passwords[user] if password is None else password
    return flags, env


def invoke(leaks: Leaks, args: list[str], env: dict, **options):
    result = CliRunner().invoke(cli, args, env=env, **options)
    leaks.add(result.output, repr(result.exception) if result.exception else "")
    return result


def one_line_error(result, *wanted: str) -> str:
    """The command failed with exit code 2 and one ``Error:`` line on stderr, no traceback."""
    assert result.exit_code == 2, result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    for text in wanted:
        assert text in lines[0], lines[0]
    return lines[0]


def loaded(cluster, index: str, data_dir: Path, tmp_path: Path, embedder, count: int = 12) -> Path:
    """``count`` documents in ``index``, loaded by the loader user."""
    settings = cluster.settings(LOADER, index=index, data_dir=str(data_dir))
    summary = load(corpus(tmp_path / "seed.jsonl", count), settings, embedder=embedder, detector=NoDetector(),
                   progress=False)
    assert summary.documents == count and summary.rejected == 0
    return tmp_path / "seed.jsonl"


def test_the_loader_installs_templates_loads_registers_types_and_searches_leaking_no_credential(
        secure_cluster, secure_admin, secure_index, tiny_model, leaks, tmp_path):
    flags, env = as_user(secure_cluster, LOADER, secure_index, tmp_path / "data")
    installed = invoke(leaks, ["templates", "install", "--dimension", str(tiny_model.dim), *flags], env)
    assert installed.exit_code == 0, installed.output
    assert f"index template {secure_index}" in installed.output
    source = corpus(tmp_path / "corpus.jsonl", 30, bad_lines=1)
    first = invoke(leaks, ["load", str(source), "--progress", *flags], env)
    assert first.exit_code == 1, first.output  # the bad line is rejected, the rest loads
    assert "30 documents" in first.output and (tmp_path / "corpus.rejects.jsonl").is_file()
    added = invoke(leaks, ["types", "add", "a person", "--name", "person", "--min-score", "0.01", *flags], env)
    assert added.exit_code == 0, added.output
    listed = invoke(leaks, ["types", "list", *flags], env)
    assert listed.exit_code == 0 and listed.output.startswith("person\t"), listed.output
    more = corpus(tmp_path / "more.jsonl", 5)
    tagged = invoke(leaks, ["load", str(more), *flags], env)  # tagged at load time with the registered type
    assert tagged.exit_code == 0, tagged.output
    found = invoke(leaks, ["search", "a person", "-n", "3", "--json", *flags], env)
    assert found.exit_code == 0, found.output
    assert len(found.stdout.strip().splitlines()) == 3
    template = invoke(leaks, ["dsl", "a person", "--template", *flags], env)  # stores the search template
    assert template.exit_code == 0 and "search template" not in template.stderr, template.output
    removed = invoke(leaks, ["types", "remove", "person", *flags], env)
    assert removed.exit_code == 0, removed.output
    secure_admin.indices.refresh(index=secure_index)
    assert secure_admin.count(index=secure_index)["count"] == 30
    assert any(path.is_file() for path in (tmp_path / "data").rglob("*"))  # the checkpoints are grepped too


def test_a_client_certificate_authenticates_the_loader_without_a_password(
        secure_cluster, secure_admin, secure_index, embedder, leaks, tmp_path):
    if secure_cluster.loader_cert is None:
        pytest.skip("no client certificate for ner_os_loader (NER_OS_SECURE_CLIENT_CERT / _KEY)")
    cert, key = secure_cluster.loader_cert
    settings = Settings.resolve(env={}, opensearch_url=secure_cluster.url, index=secure_index, ca_certs=secure_cluster.ca,
                                client_cert=cert, client_key=key, data_dir=str(tmp_path / "data"), timeout_s=10.0)
    summary = load(corpus(tmp_path / "c.jsonl", 8), settings, embedder=embedder, detector=NoDetector(), progress=False)
    assert summary.documents == 8
    secure_admin.indices.refresh(index=secure_index)
    assert secure_admin.count(index=secure_index)["count"] == 8
    who = client_from_settings(settings).transport.perform_request("GET", "/_plugins/_security/authinfo")
    assert who["user_name"] == LOADER and who["principal"] == "CN=ner_os_loader"
    leaks.add(summary.describe(), json.dumps(settings.describe()))


def test_the_searcher_searches_but_can_neither_write_nor_delete(
        secure_cluster, secure_admin, secure_index, tiny_model, leaks, tmp_path):
    seed = loaded(secure_cluster, secure_index, tmp_path / "seed-data", tmp_path, tiny_model)
    flags, env = as_user(secure_cluster, SEARCHER, secure_index, tmp_path / "data")
    found = invoke(leaks, ["search", "a person", "-n", "5", "--json", *flags], env)
    assert found.exit_code == 0, found.output
    assert len(found.stdout.strip().splitlines()) == 5
    refused = {
        "load": invoke(leaks, ["load", str(corpus(tmp_path / "new.jsonl", 3, prefix="new")), *flags], env),
        "load --replace-index": invoke(leaks, ["load", str(seed), "--replace-index", *flags], env),
        "types add": invoke(leaks, ["types", "add", "a city", *flags], env),
        "templates install": invoke(leaks, ["templates", "install", "--dimension", str(tiny_model.dim), *flags], env),
    }
    for command, result in refused.items():
        message = one_line_error(result, "security_exception", "no permissions for [", f"User [name={SEARCHER}")
        print(f"{command}: {message}")
    assert "refused writes" in refused["load"].stderr  # the load stopped: no line rejected for a missing right
    assert not (tmp_path / "new.rejects.jsonl").is_file() or not (tmp_path / "new.rejects.jsonl").read_text().strip()
    searcher = client_from_settings(secure_cluster.settings(SEARCHER))
    for attempt in (lambda: searcher.delete(index=secure_index, id="d0"),
                    lambda: searcher.index(index=secure_index, id="x", body={"text": "x"}),
                    lambda: searcher.indices.delete(index=secure_index),
                    lambda: searcher.delete_by_query(index=secure_index, body={"query": {"match_all": {}}})):
        with pytest.raises(os_errors.AuthorizationException) as error:
            attempt()
        leaks.add(str(error.value))
    secure_admin.indices.refresh(index=secure_index)
    assert secure_admin.count(index=secure_index)["count"] == 12  # nothing written, nothing deleted
    loader_flags, loader_env = as_user(secure_cluster, LOADER, secure_index, tmp_path / "data")
    rerun = invoke(leaks, ["load", str(tmp_path / "new.jsonl"), *loader_flags], loader_env)  # same checkpoints
    assert rerun.exit_code == 0 and rerun.output.startswith("3 documents"), rerun.output  # none was skipped
    secure_admin.indices.refresh(index=secure_index)
    assert secure_admin.count(index=secure_index)["count"] == 12 + 3


def test_anonymous_requests_are_refused(secure_cluster, secure_index, tiny_model, leaks, tmp_path):
    flags, env = as_user(secure_cluster, None, secure_index, tmp_path / "data")
    for args in (["types", "list", *flags], ["search", "a person", *flags],
                 ["load", str(corpus(tmp_path / "a.jsonl", 2)), *flags]):
        one_line_error(invoke(leaks, args, env), "refused the credentials (HTTP 401)")
    with pytest.raises(ClusterError, match=r"refused the credentials \(HTTP 401\)") as error:
        client_from_settings(secure_cluster.settings(None))
    leaks.add(str(error.value))


def test_a_wrong_password_is_a_one_line_error_that_does_not_repeat_it(
        secure_cluster, secure_index, tiny_model, leaks, tmp_path):
    wrong = secure_cluster.passwords[LOADER] + "x"
    flags, env = as_user(secure_cluster, LOADER, secure_index, tmp_path / "data", password=wrong)
    for args in (["load", str(corpus(tmp_path / "w.jsonl", 2)), *flags], ["types", "list", *flags],
                 ["templates", "install", "--dimension", "8", *flags]):
        result = invoke(leaks, args, env)
        message = one_line_error(result, "refused the credentials (HTTP 401)", "NER_OS_PASSWORD")
        assert wrong not in result.output and wrong not in message
    with pytest.raises(ClusterError) as error:
        client_from_settings(Settings.resolve(env={"NER_OS_PASSWORD": wrong}, opensearch_url=secure_cluster.url,
                                              username=LOADER, ca_certs=secure_cluster.ca, timeout_s=10.0))
    assert "\n" not in str(error.value) and wrong not in str(error.value)
    leaks.add(str(error.value))


def test_a_server_certificate_from_another_ca_fails_the_handshake(secure_cluster, leaks, tmp_path):
    other = make_certificates(tmp_path / "other-ca")
    with pytest.raises(ClusterError, match="TLS handshake") as error:
        client_from_settings(secure_cluster.settings(LOADER, ca_certs=str(other.ca)))
    leaks.add(str(error.value))


def test_credentials_in_the_url_are_masked_in_errors():
    password = "Sup3r-s3cret-pw!"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"https://{LOADER}:{password}@127.0.0.1:{port}"
    with pytest.raises(ClusterError, match=r"https://\*\*\*@127\.0\.0\.1") as error:
        client_from_settings(Settings.resolve(env={}, opensearch_url=url, timeout_s=1.0))
    assert password not in str(error.value)


def test_the_cli_takes_the_password_from_a_prompt_or_the_environment_never_a_flag(
        secure_cluster, secure_admin, secure_index, leaks, tmp_path):
    flags, env = as_user(secure_cluster, LOADER, secure_index, tmp_path / "data")
    install = ["templates", "install", "--dimension", "8", *flags]
    password = env.pop("NER_OS_PASSWORD")
    prompted = invoke(leaks, install + ["--password-prompt"], {**env, "NER_OS_PASSWORD": None}, input=password + "\n")
    assert prompted.exit_code == 0, prompted.output
    assert "Password" in prompted.output and f"index template {secure_index}" in prompted.output
    assert secure_admin.indices.exists_index_template(name=secure_index)
    from_env = invoke(leaks, install, {**env, "NER_OS_PASSWORD": password})
    assert from_env.exit_code == 0, from_env.output
    wrong = invoke(leaks, install + ["--password-prompt"], {**env, "NER_OS_PASSWORD": None}, input="not-it\n")
    assert wrong.exit_code == 2 and "refused the credentials" in wrong.output and "not-it" not in wrong.stderr
    as_flag = CliRunner().invoke(cli, install + ["--password", "anything"], env=env)
    assert as_flag.exit_code == 2 and "No such option" in as_flag.output
