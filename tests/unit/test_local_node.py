import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from ner_os.store.node import build as node_build
from ner_os.store.node import lifecycle as local_node
from ner_os.cli import cli
from ner_os.config import Settings
from ner_os.errors import ClusterError

pytestmark = pytest.mark.unit


@pytest.fixture
def settings(tmp_path):
    return Settings.resolve(env={}, data_dir=str(tmp_path / "data"), cache_dir=str(tmp_path / "cache"))


def _write_record(settings, **fields):
    path = local_node.node_dir(settings) / "node.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"kind": "launcher", "url": "http://127.0.0.1:1", **fields}))
    return path


def test_a_record_whose_pid_is_not_the_launcher_is_stale_and_cleaned(settings):
    path = _write_record(settings, pid=os.getpid())  # this pytest process: alive, but no launcher
    assert local_node.running(settings) is None
    assert not path.exists()


def test_a_record_of_an_exited_process_is_stale_and_cleaned(settings):
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    path = _write_record(settings, pid=finished.pid)
    assert local_node.running(settings) is None and not path.exists()


def test_an_unreadable_record_is_cleaned(settings):
    path = local_node.node_dir(settings) / "node.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert local_node.running(settings) is None and not path.exists()


def test_a_live_launcher_record_is_reused(settings):
    # a process whose command line names the launcher class counts as the running node
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", local_node.LAUNCHER_CLASS])
    try:
        deadline = time.monotonic() + 10
        while local_node.LAUNCHER_CLASS.encode() not in Path(f"/proc/{sleeper.pid}/cmdline").read_bytes():
            assert time.monotonic() < deadline  # until the child has exec'd
            time.sleep(0.05)
        _write_record(settings, pid=sleeper.pid)
        record = local_node.running(settings)
        assert record is not None and record.pid == sleeper.pid
        assert local_node.start(settings).url == "http://127.0.0.1:1"  # never a second node
    finally:
        sleeper.kill()
        sleeper.wait()


def test_ensure_cluster_url_prefers_the_configured_url_and_starts_nothing(settings):
    assert local_node.ensure_cluster_url(settings.replace(opensearch_url="https://os:9200/")) == "https://os:9200"
    assert not local_node.node_dir(settings).exists()


def test_no_docker_and_no_java_is_a_readable_error(settings, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(ClusterError, match="no Docker engine answers, and no Java"):
        local_node.start(settings)


def test_no_maven_and_no_cached_build_is_a_readable_error(settings, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ClusterError, match=r"Maven \(mvn\) is not installed"):
        local_node.build_launcher(settings)


def test_the_launcher_hash_follows_its_sources(monkeypatch, tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "pom.xml").write_text("<project/>")
    (tmp_path / "src" / "A.java").write_text("class A {}")
    monkeypatch.setattr(node_build, "LAUNCHER_DIR", tmp_path)
    first = node_build.launcher_hash()
    assert node_build.launcher_hash() == first
    (tmp_path / "src" / "A.java").write_text("class A { int x; }")
    assert node_build.launcher_hash() != first


def test_the_classpath_holds_classes_libraries_and_each_plugin(tmp_path):
    for folder in ("classes", "lib", "plugins/opensearch-knn", "plugins/neural-search"):
        (tmp_path / folder).mkdir(parents=True)
    entries = node_build.launcher_classpath(tmp_path).split(os.pathsep)
    assert entries == [str(tmp_path / "classes"), str(tmp_path / "lib" / "*"),
                       str(tmp_path / "plugins" / "neural-search" / "*"), str(tmp_path / "plugins" / "opensearch-knn" / "*")]


@pytest.mark.parametrize("banner, major", [
    ('openjdk version "17.0.15" 2025-04-15', 17),
    ('openjdk version "25" 2025-09-16', 25),
    ('java version "1.8.0_402"', 8),
    ('openjdk version "21-ea" 2023-09-19', 21),
])
def test_java_major_version_parses_the_banner(tmp_path, banner, major):
    fake_java = tmp_path / "java"
    fake_java.write_text(f"#!/bin/sh\necho '{banner}' >&2\n")
    fake_java.chmod(0o755)
    assert node_build.java_major_version(str(fake_java)) == major


def test_cli_status_without_a_node_says_so_and_exits_1(settings):
    result = CliRunner().invoke(cli, ["opensearch", "status"], env={"NER_OS_DATA_DIR": settings.data_dir})
    assert result.exit_code == 1
    assert "no local OpenSearch node is running" in result.output


def test_cli_stop_without_a_node_says_so(settings):
    result = CliRunner().invoke(cli, ["opensearch", "stop"], env={"NER_OS_DATA_DIR": settings.data_dir})
    assert result.exit_code == 0 and "no local OpenSearch node was running" in result.output


def test_a_launcher_failure_shows_its_one_line_reason_not_the_stack_trace(tmp_path):
    log = tmp_path / "node.log"
    log.write_text("[INFO] starting\njava.net.BindException: Address already in use\n\tat io.netty...\n"
                   f"{local_node.LAUNCHER_FAILURE_PREFIX}BindHttpException: Failed to bind\n[INFO] closed\n")
    assert local_node._log_tail(str(log)) == (
        f"{local_node.LAUNCHER_FAILURE_PREFIX}BindHttpException: Failed to bind (full log: {log})")


def test_without_a_reason_line_the_log_tail_is_shown(tmp_path):
    log = tmp_path / "node.log"
    log.write_text("\n".join(f"line {i}" for i in range(100)) + "\n")
    tail = local_node._log_tail(str(log)).splitlines()
    assert tail[-1] == "line 99" and len(tail) == node_build.LOG_TAIL_LINES


# --- plugin sets, node settings, security files (ner_os.store.node.build / node_config / node_security) ---

from ner_os.store.node import config as node_config  # noqa: E402
from ner_os.store.node import security as node_security  # noqa: E402


def test_each_plugin_set_builds_into_its_own_directory_with_its_maven_profile(settings):
    plain = node_build.build_dir_for(settings)
    assert plain.name == node_build.launcher_hash()  # a plain node's build directory is as before
    both = node_build.build_dir_for(settings, ["security", "ml-commons"])
    assert both.name == f"{node_build.launcher_hash()}-ml-commons-security"
    command = node_build.build_command("mvn", both, ["security", "ml-commons"])
    assert "-Pml-commons,security" in command and command[-1] == "package"
    assert not any(arg.startswith("-P") for arg in node_build.build_command("mvn", plain))
    with pytest.raises(ClusterError, match="unknown OpenSearch plugin set"):
        node_build.build_dir_for(settings, ["sql"])


def test_ml_commons_and_job_scheduler_come_before_neural_search_on_the_classpath(tmp_path):
    for name in ("neural-search", "opensearch-knn", "opensearch-ml-plugin", "opensearch-job-scheduler",
                 "opensearch-security", "zz-other"):
        (tmp_path / "plugins" / name).mkdir(parents=True)
    plugins = [Path(entry).parent.name for entry in node_build.launcher_classpath(tmp_path).split(os.pathsep)[2:]]
    assert plugins == ["opensearch-job-scheduler", "opensearch-ml-plugin", "opensearch-security",
                       "neural-search", "opensearch-knn", "zz-other"]


def test_the_jvm_is_pointed_at_the_shipped_libtorch_only_when_it_is_built_in(tmp_path):
    assert "PYTORCH_LIBRARY_PATH" not in node_build.java_env(tmp_path)
    (tmp_path / node_build.PYTORCH_DIR).mkdir()
    env = node_build.java_env(tmp_path)
    assert env["PYTORCH_LIBRARY_PATH"] == str(tmp_path / "pytorch") and env["PYTORCH_VERSION"] == "2.5.1"


def test_the_java_command_names_the_settings_overlay(tmp_path):
    (tmp_path / "plugins").mkdir()
    command = node_build.java_command("java", tmp_path, "512m", tmp_path / "home", 0, tmp_path / "p", tmp_path / "s.json")
    assert "-Xmx512m" in command and f"-Dner_os.node.settings={tmp_path / 's.json'}" in command
    assert command[-4:] == [node_build.LAUNCHER_CLASS, str(tmp_path / "home"), "0", str(tmp_path / "p")]


def test_a_plain_node_gets_no_overlay_and_ml_commons_its_single_node_settings():
    assert node_config.node_settings() == {}
    ml = node_config.node_settings(ml_commons=True)
    assert ml["plugins.ml_commons.only_run_on_ml_node"] is False
    assert ml["plugins.ml_commons.native_memory_threshold"] == 100
    assert ml["plugins.ml_commons.allow_registering_model_via_local_file"] is True


def test_secure_settings_use_tls_on_both_layers_and_name_the_admin_and_node_dns():
    secure = node_config.node_settings(secure=True)
    for layer in ("transport", "http"):
        assert secure[f"plugins.security.ssl.{layer}.pemcert_filepath"] == "certs/node.pem"
        assert secure[f"plugins.security.ssl.{layer}.pemtrustedcas_filepath"] == "certs/ca.pem"
    assert secure["plugins.security.ssl.http.enabled"] is True
    assert secure["plugins.security.authcz.admin_dn"] == ["CN=admin"]
    assert secure["plugins.security.nodes_dn"] == ["CN=node"]


def test_a_cluster_member_drops_single_node_discovery_and_seeds_every_transport_port(tmp_path):
    members = [node_config.ClusterMember(f"ner-os-{i}", 9300 + i) for i in (1, 2, 3)]
    overlay = node_config.node_settings(member=members[1], members=members)
    assert overlay["ner_os.unset"] == ["discovery.type"]
    assert overlay["node.name"] == "ner-os-2" and overlay["transport.port"] == 9302
    assert overlay["discovery.seed_hosts"] == ["127.0.0.1:9301", "127.0.0.1:9302", "127.0.0.1:9303"]
    assert overlay["cluster.initial_cluster_manager_nodes"] == ["ner-os-1", "ner-os-2", "ner-os-3"]
    path = node_config.write_settings(tmp_path / "s.json", overlay)
    assert json.loads(path.read_text()) == overlay


def test_credentials_are_random_kept_across_restarts_and_private(tmp_path):
    path = tmp_path / "credentials.json"
    first = node_security.ensure_credentials(path)
    assert set(first) == {"admin", "ner_os_loader", "ner_os_searcher"}
    assert len(set(first.values())) == 3 and all(len(password) >= 20 for password in first.values())
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert node_security.ensure_credentials(path) == first  # the security index keeps the first hashes


def test_internal_users_hold_only_bcrypt_hashes_of_our_users(tmp_path):
    import bcrypt

    passwords = node_security.ensure_credentials(tmp_path / "credentials.json")
    rendered = node_security.render_internal_users(passwords)
    users = json.loads(rendered)
    assert set(users) == {"_meta", *passwords}
    for user, password in passwords.items():
        assert password not in rendered
        assert bcrypt.checkpw(password.encode(), users[user]["hash"].encode())


def test_the_security_config_replaces_the_demo_users_and_ships_the_ner_os_roles(tmp_path):
    plugin_config = tmp_path / "build" / "plugins" / "opensearch-security" / "config"
    plugin_config.mkdir(parents=True)
    (plugin_config / "internal_users.yml").write_text("admin:\n  hash: demo-admin-hash\n")
    (plugin_config / "action_groups.yml").write_text("_meta: {type: actiongroups, config_version: 2}\n")
    target = tmp_path / "home" / "config" / "opensearch-security"
    node_security.write_security_config(target, tmp_path / "build", {"admin": "x" * 24})
    assert "demo-admin-hash" not in (target / "internal_users.yml").read_text()
    assert (target / "action_groups.yml").is_file()
    roles = (target / "roles.yml").read_text()
    assert "ner_os_loader:" in roles and "ner_os_searcher:" in roles
    assert '"ner-os*"' in roles and "indices:admin/delete" not in roles


def test_a_running_node_of_another_kind_is_not_reused(settings):
    record = local_node.NodeRecord(kind="launcher", url="http://127.0.0.1:1", pid=1, features=["ml-commons"])
    local_node._check_same_kind(record, ["ml-commons"], 1)
    with pytest.raises(ClusterError, match="already running .*ml-commons"):
        local_node._check_same_kind(record, [], 1)
    with pytest.raises(ClusterError, match=r"asked for \(ml-commons, 3 node"):
        local_node._check_same_kind(record, ["ml-commons"], 3)


def test_an_old_record_without_the_new_fields_still_reads(settings):
    _write_record(settings, pid=os.getpid())
    record = local_node.NodeRecord(**json.loads((local_node.node_dir(settings) / "node.json").read_text()))
    assert record.features == [] and record.members == [] and not record.secure


def test_kill_node_names_the_running_nodes(settings):
    with pytest.raises(ClusterError, match="no running local node named 'ner-os-9'"):
        local_node.kill_node(settings, "ner-os-9")


def test_credentials_of_a_node_without_security_is_a_readable_error():
    with pytest.raises(ClusterError, match="without the security plugin"):
        local_node.credentials(local_node.NodeRecord(kind="launcher", url="http://127.0.0.1:1"))


def test_members_get_their_own_homes_and_keep_their_transport_ports(tmp_path):
    assert node_config.plan_members(tmp_path, 1) == [(tmp_path / "launcher", None)]
    plan = node_config.plan_members(tmp_path, 3)
    assert [home for home, _ in plan] == [tmp_path / "cluster-3" / f"ner-os-{i}" for i in (1, 2, 3)]
    ports = [member.transport_port for _, member in plan]
    assert len(set(ports)) == 3
    assert [member.transport_port for _, member in node_config.plan_members(tmp_path, 3)] == ports


def test_opensearch_start_passes_secure_nodes_and_ml_commons_and_prints_paths_never_a_password(tmp_path, monkeypatch):
    credentials_file = tmp_path / "credentials.json"
    passwords = node_security.ensure_credentials(credentials_file)
    asked = {}

    def fake_start(settings, http_port=0, **options):
        asked.update(options, http_port=http_port)
        return local_node.NodeRecord(kind="launcher", url="https://127.0.0.1:9", pid=1, features=["security"],
                                     ca=str(tmp_path / "ca.pem"), credentials=str(credentials_file),
                                     members=[{"name": f"ner-os-{i}"} for i in (1, 2, 3)])

    monkeypatch.setattr(local_node, "start", fake_start)
    result = CliRunner().invoke(cli, ["opensearch", "start", "--secure", "--nodes", "3", "--ml-commons"])
    assert result.exit_code == 0, result.output
    assert asked == {"secure": True, "nodes": 3, "ml_commons": True, "http_port": 0}
    assert "https://127.0.0.1:9" in result.output and "3 nodes" in result.output
    assert str(tmp_path / "ca.pem") in result.output and str(credentials_file) in result.output
    assert not any(password in result.output for password in passwords.values())


def test_a_client_certificate_names_its_user_and_is_signed_by_the_node_ca(tmp_path):
    from cryptography import x509

    from ner_os.store.node.certificates import client_certificate, make_certificates

    made = make_certificates(tmp_path)
    cert_path, key_path = client_certificate(tmp_path, "ner_os_loader")
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    ca = x509.load_pem_x509_certificate(made.ca.read_bytes())
    assert cert.subject.rfc4514_string() == "CN=ner_os_loader" and cert.issuer == ca.subject
    cert.verify_directly_issued_by(ca)
    assert key_path.stat().st_mode & 0o777 == 0o600
    assert client_certificate(tmp_path, "ner_os_loader") == (cert_path, key_path)
    assert cert_path.read_bytes() == client_certificate(tmp_path, "ner_os_loader")[0].read_bytes()  # made once


def test_the_newest_of_a_library_bundled_twice_comes_first_on_the_classpath(tmp_path):
    # ML Commons bundles commons-lang3 3.10; neural-search's RRF processor needs 3.14's Range.of
    for plugin, jar in (("opensearch-ml-plugin", "commons-lang3-3.10.jar"), ("neural-search", "commons-lang3-3.14.0.jar"),
                        ("neural-search", "javassist-3.29.2-GA.jar"), ("opensearch-ml-plugin", "javassist-3.28.0-GA.jar"),
                        ("opensearch-ml-plugin", "gson-2.11.0.jar"), ("neural-search", "gson-2.11.0.jar")):
        (tmp_path / "plugins" / plugin).mkdir(parents=True, exist_ok=True)
        (tmp_path / "plugins" / plugin / jar).write_bytes(b"")
    entries = node_build.launcher_classpath(tmp_path).split(os.pathsep)
    assert entries[2:4] == [str(tmp_path / "plugins" / "neural-search" / "commons-lang3-3.14.0.jar"),
                            str(tmp_path / "plugins" / "neural-search" / "javassist-3.29.2-GA.jar")]
    assert [Path(entry).parent.name for entry in entries[4:]] == ["opensearch-ml-plugin", "neural-search"]
