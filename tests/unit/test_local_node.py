import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from ner_os.store import local_node
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
    monkeypatch.setattr(local_node, "LAUNCHER_DIR", tmp_path)
    first = local_node.launcher_hash()
    assert local_node.launcher_hash() == first
    (tmp_path / "src" / "A.java").write_text("class A { int x; }")
    assert local_node.launcher_hash() != first


def test_the_classpath_holds_classes_libraries_and_each_plugin(tmp_path):
    for folder in ("classes", "lib", "plugins/opensearch-knn", "plugins/neural-search"):
        (tmp_path / folder).mkdir(parents=True)
    entries = local_node.launcher_classpath(tmp_path).split(os.pathsep)
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
    assert local_node._java_major_version(str(fake_java)) == major


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
    assert tail[-1] == "line 99" and len(tail) == local_node.LOG_TAIL_LINES
