"""A local OpenSearch 2.19 node for users who have none: the official image when a Docker engine
answers, otherwise the Maven launcher in ``tools/opensearch-node/`` (the genuine server, its
modules and the k-NN / neural-search plugins, started in one JVM).

One node per data directory: ``<data_dir>/opensearch/node.json`` records how it was started (pid
or container, port, URL); ``start`` reuses a live node and cleans a stale record, under a file lock
so two concurrent starts never make two nodes. The launcher's build is cached under
``<cache_dir>/opensearch-node/<hash of its sources>``, so only the first start runs Maven.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from ner_os.config import Settings
from ner_os.errors import ClusterError

OPENSEARCH_VERSION = "2.19.1"
DOCKER_IMAGE = f"opensearchproject/opensearch:{OPENSEARCH_VERSION}"
DOCKER_CONTAINER = "ner-os-opensearch"
DOCKER_VOLUME = "ner-os-opensearch-data"
LAUNCHER_DIR = Path(__file__).resolve().parents[2] / "tools" / "opensearch-node"
LAUNCHER_CLASS = "ner_os.node.LocalNode"
LAUNCHER_FAILURE_PREFIX = "ner-os local node failed to start: "  # LocalNode.FAILURE_PREFIX
HEAP = "1g"
START_TIMEOUT_S = 180.0  # a cold JVM start takes ~25 s on 2 busy cores; leave room
STOP_TIMEOUT_S = 30.0
LOG_TAIL_LINES = 25
SUPPORTED_JAVA = range(17, 24)  # OpenSearch 2.19 needs 17+; Java 24 removed the security manager 2.x uses


@dataclass(frozen=True)
class NodeRecord:
    """What ``node.json`` holds about a started node."""

    kind: str  # "launcher" or "docker"
    url: str | None  # None until the node has reported its port
    pid: int | None = None  # launcher: the JVM's process id
    container: str | None = None  # docker: the container name
    log: str | None = None


@dataclass(frozen=True)
class NodeStatus:
    url: str
    kind: str
    version: str
    plugins: list[str]
    health: str


def node_dir(settings: Settings) -> Path:
    return settings.data_path / "opensearch"


def _record_path(settings: Settings) -> Path:
    return node_dir(settings) / "node.json"


# --- public API -------------------------------------------------------------------------------


def ensure_cluster_url(settings: Settings) -> str:
    """The cluster to talk to: ``settings.opensearch_url`` if set, else the local node (started if needed)."""
    if settings.opensearch_url:
        return settings.opensearch_url.rstrip("/")
    return start(settings).url


def start(settings: Settings, http_port: int = 0, timeout_s: float = START_TIMEOUT_S) -> NodeRecord:
    """Start the local node, or return the one already running. ``http_port`` 0: a free port."""
    with _locked(settings):
        running = _live_record(settings)
        if running is not None:
            if running.url is None:  # started by another process that gave up waiting: wait here
                running = _await_launcher(settings, running, timeout_s)
            return running
        if docker_engine_answers():
            return _start_docker(settings, http_port, timeout_s)
        return _start_launcher(settings, http_port, timeout_s)


def stop(settings: Settings) -> bool:
    """Stop the local node; False when none was running."""
    with _locked(settings):
        record = _live_record(settings)
        if record is None:
            return False
        if record.kind == "docker":
            _docker("rm", "-f", record.container or DOCKER_CONTAINER, check=False)
        else:
            _terminate(record.pid)
        _record_path(settings).unlink(missing_ok=True)
        return True


def running(settings: Settings) -> NodeRecord | None:
    """The record of the local node if one is running (a stale record is cleaned), else None."""
    return _live_record(settings)


def status(settings: Settings) -> NodeStatus | None:
    """URL, version, plugins and health of the running local node; None when none runs."""
    record = _live_record(settings)
    if record is None or record.url is None:
        return None
    return describe_cluster(record.url, record.kind)


def describe_cluster(url: str, kind: str = "remote") -> NodeStatus:
    info = _get_json(url, "/")
    plugins = sorted({row["component"] for row in _get_json(url, "/_cat/plugins?format=json")})
    health = _get_json(url, "/_cluster/health")["status"]
    return NodeStatus(url=url, kind=kind, version=info["version"]["number"], plugins=plugins, health=health)


def docker_engine_answers(timeout_s: float = 5.0) -> bool:
    """True when a ``docker`` client is installed and its engine replies."""
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=timeout_s).returncode == 0
    except (subprocess.TimeoutExpired, OSError):
        return False


def build_launcher(settings: Settings) -> Path:
    """Build ``tools/opensearch-node`` with Maven once per source hash; the build directory."""
    if not (LAUNCHER_DIR / "pom.xml").is_file():
        raise ClusterError(f"the OpenSearch launcher sources are missing ({LAUNCHER_DIR}/pom.xml); "
                           "run ner-os from a clone of the repository, or set NER_OS_OPENSEARCH_URL")
    build_dir = settings.cache_path / "opensearch-node" / launcher_hash()
    done_marker = build_dir / "BUILD_OK"
    if done_marker.is_file():
        return build_dir
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ClusterError("no OpenSearch: NER_OS_OPENSEARCH_URL is unset, no Docker engine answers, and Maven "
                           "(mvn) is not installed to build the local node; install Java 17 and Maven, or Docker")
    command = [mvn, "-q", "-B", "-f", str(LAUNCHER_DIR / "pom.xml"), f"-DnodeBuildDir={build_dir}", "package"]
    result = subprocess.run(command, capture_output=True, text=True, env=_java_env())
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-LOG_TAIL_LINES:])
        raise ClusterError(f"building the OpenSearch launcher failed ({' '.join(command)}):\n{tail}")
    done_marker.write_text("ok\n")
    return build_dir


def launcher_hash() -> str:
    """Hash of the launcher's pom and sources: a changed source gets a fresh build directory."""
    digest = hashlib.sha256()
    sources = [LAUNCHER_DIR / "pom.xml", *sorted((LAUNCHER_DIR / "src").rglob("*"))]
    for path in sources:
        if path.is_file():
            digest.update(str(path.relative_to(LAUNCHER_DIR)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def launcher_classpath(build_dir: Path) -> str:
    entries = [build_dir / "classes", build_dir / "lib" / "*"]
    entries += [plugin / "*" for plugin in sorted((build_dir / "plugins").iterdir()) if plugin.is_dir()]
    return os.pathsep.join(str(entry) for entry in entries)


# --- the Maven launcher -----------------------------------------------------------------------


def _start_launcher(settings: Settings, http_port: int, timeout_s: float) -> NodeRecord:
    java = _java_executable()
    build_dir = build_launcher(settings)
    home = node_dir(settings) / "launcher"
    home.mkdir(parents=True, exist_ok=True)
    port_file = home / "http.port"
    port_file.unlink(missing_ok=True)
    log_path = node_dir(settings) / "node.log"
    command = [
        java, f"-Xms{HEAP}", f"-Xmx{HEAP}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
        "-Dlog4j2.formatMsgNoLookups=true", "-Dlog4j.shutdownHookEnabled=false", "-Dfile.encoding=UTF-8",
        "-cp", launcher_classpath(build_dir), LAUNCHER_CLASS, str(home), str(http_port), str(port_file),
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, env=_java_env())  # detached: outlives this process
    record = NodeRecord(kind="launcher", url=None, pid=process.pid, log=str(log_path))
    _write_record(settings, record)
    return _await_launcher(settings, record, timeout_s, process)


def _await_launcher(settings: Settings, record: NodeRecord, timeout_s: float,
                    process: subprocess.Popen | None = None) -> NodeRecord:
    port_file = node_dir(settings) / "launcher" / "http.port"
    deadline = time.monotonic() + timeout_s
    while not port_file.is_file():
        if not _alive(record, process):
            _record_path(settings).unlink(missing_ok=True)
            raise ClusterError("the local OpenSearch node exited while starting:\n" + _log_tail(record.log))
        if time.monotonic() > deadline:
            raise ClusterError(f"the local OpenSearch node did not open its HTTP port within {timeout_s:.0f} s "
                               f"(pid {record.pid}, log {record.log})")
        time.sleep(0.25)
    url = f"http://127.0.0.1:{int(port_file.read_text().strip())}"
    _wait_for_yellow(url, deadline, record, process)
    ready = NodeRecord(kind="launcher", url=url, pid=record.pid, log=record.log)
    _write_record(settings, ready)
    return ready


def _java_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("JAVA_TOOL_OPTIONS", None)  # its "Picked up ..." banner would land in the node's log
    return env


def _java_executable() -> str:
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        raise ClusterError("no OpenSearch: NER_OS_OPENSEARCH_URL is unset, no Docker engine answers, and no Java "
                           "is installed to run the local node; install Java 17 and Maven, or Docker")
    major = _java_major_version(java)
    if major not in SUPPORTED_JAVA:
        raise ClusterError(f"{java} is Java {major}; the local OpenSearch 2.19 node needs Java 17 to 23 "
                           "(set JAVA_HOME to one)")
    return java


def _java_major_version(java: str) -> int:
    banner = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    # 'openjdk version "17.0.15" 2025-04-15' or 'java version "1.8.0_402"'
    quoted = banner.split('"')[1] if '"' in banner else "0"
    parts = quoted.split(".")
    return int(parts[1]) if parts[0] == "1" else int(parts[0].split("-")[0])


def _launcher_alive(pid: int | None) -> bool:
    """True when ``pid`` runs our launcher (not a recycled pid of some other program)."""
    if pid is None:
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        try:
            return LAUNCHER_CLASS.encode() in cmdline.read_bytes() and not _is_zombie(pid)
        except OSError:
            return False
    try:  # no /proc (macOS): fall back to "some process has this pid"
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def _terminate(pid: int | None) -> None:
    if not _launcher_alive(pid):
        return
    os.kill(pid, signal.SIGTERM)  # the launcher's shutdown hook closes the node cleanly
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while _launcher_alive(pid):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it when this process started it
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.2)


# --- Docker -----------------------------------------------------------------------------------


def _start_docker(settings: Settings, http_port: int, timeout_s: float) -> NodeRecord:
    port = http_port or _free_port()
    _docker("rm", "-f", DOCKER_CONTAINER, check=False)
    _docker(
        "run", "-d", "--name", DOCKER_CONTAINER, "-p", f"127.0.0.1:{port}:9200",
        "-e", "discovery.type=single-node", "-e", "DISABLE_SECURITY_PLUGIN=true",
        "-e", "DISABLE_INSTALL_DEMO_CONFIG=true", "-e", f"OPENSEARCH_JAVA_OPTS=-Xms{HEAP} -Xmx{HEAP}",
        "-e", "cluster.routing.allocation.disk.threshold_enabled=false",
        "-v", f"{DOCKER_VOLUME}:/usr/share/opensearch/data", DOCKER_IMAGE,
    )
    record = NodeRecord(kind="docker", url=f"http://127.0.0.1:{port}", container=DOCKER_CONTAINER)
    _write_record(settings, record)
    _wait_for_yellow(record.url, time.monotonic() + timeout_s, record)
    return record


def _docker(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["docker", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise ClusterError(f"docker {args[0]} failed: {result.stderr.strip()}")
    return result


def _docker_container_running(name: str | None) -> bool:
    if shutil.which("docker") is None:
        return False
    result = _docker("inspect", "-f", "{{.State.Running}}", name or DOCKER_CONTAINER, check=False)
    return result.returncode == 0 and result.stdout.strip() == "true"


def _docker_log_tail(name: str | None) -> str:
    result = _docker("logs", "--tail", str(LOG_TAIL_LINES), name or DOCKER_CONTAINER, check=False)
    return (result.stdout + result.stderr).strip()


# --- shared helpers ---------------------------------------------------------------------------


def _wait_for_yellow(url: str, deadline: float, record: NodeRecord, process: subprocess.Popen | None = None) -> None:
    last_error = "no answer"
    while time.monotonic() < deadline:
        if not _alive(record, process):
            tail = _log_tail(record.log) if record.kind == "launcher" else _docker_log_tail(record.container)
            raise ClusterError(f"the local OpenSearch node ({record.kind}) died while starting; last log lines:\n{tail}")
        try:
            _get_json(url, "/_cluster/health?wait_for_status=yellow&timeout=5s", timeout_s=10)
            return
        except ClusterError as error:
            last_error = str(error)
            time.sleep(0.5)
    raise ClusterError(f"the local OpenSearch node at {url} did not reach yellow health in time ({last_error})")


def _get_json(url: str, path: str, timeout_s: float = 10.0):
    try:
        with urllib.request.urlopen(url.rstrip("/") + path, timeout=timeout_s) as response:
            return json.load(response)
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise ClusterError(f"{url}{path}: {error}") from None


def _live_record(settings: Settings) -> NodeRecord | None:
    """The record of a node that is still running; a stale record is deleted."""
    path = _record_path(settings)
    if not path.is_file():
        return None
    try:
        record = NodeRecord(**json.loads(path.read_text()))
    except (ValueError, TypeError):
        path.unlink(missing_ok=True)
        return None
    if not _alive(record):
        path.unlink(missing_ok=True)
        return None
    return record


def _alive(record: NodeRecord, process: subprocess.Popen | None = None) -> bool:
    if process is not None:  # just started here: right after the fork its cmdline is still Python's
        return process.poll() is None
    if record.kind == "docker":
        return _docker_container_running(record.container)
    return _launcher_alive(record.pid)


def _write_record(settings: Settings, record: NodeRecord) -> None:
    path = _record_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(record), indent=2) + "\n")
    tmp.replace(path)


@contextlib.contextmanager
def _locked(settings: Settings) -> Iterator[None]:
    lock_path = node_dir(settings) / "lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _log_tail(log: str | None) -> str:
    """The launcher's one-line failure reason when it wrote one, else the last lines of its log."""
    if not log or not Path(log).is_file():
        return "(no log)"
    lines = Path(log).read_text(errors="replace").splitlines()
    reasons = [line for line in lines if line.startswith(LAUNCHER_FAILURE_PREFIX)]
    if reasons:
        return reasons[-1] + f" (full log: {log})"
    return "\n".join(lines[-LOG_TAIL_LINES:])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
