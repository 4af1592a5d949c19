"""A local OpenSearch 2.19 node for users who have none: the official image when a Docker engine
answers, otherwise the Maven launcher in ``tools/opensearch-node/`` (the genuine server, its
modules and the k-NN / neural-search plugins, started in one JVM; optionally ML Commons, the
security plugin, or several JVMs forming one cluster).

One node (or cluster) per data directory: ``<data_dir>/opensearch/node.json`` records how it was
started (pids or container, port, URL); ``start`` reuses a live node and cleans a stale record, under
a file lock so two concurrent starts never make two nodes. The launcher's build is cached under
``<cache_dir>/opensearch-node/<hash of its sources>[-<plugin sets>]``, so only the first start runs Maven.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Iterator

from ner_os.config import Settings
from ner_os.errors import ClusterError
from ner_os.store.node import config as node_config, docker as node_docker, security as node_security
from ner_os.store.node.docker import DOCKER_CONTAINER, DOCKER_IMAGE, docker_engine_answers
from ner_os.store.node.build import (LAUNCHER_CLASS, LOG_TAIL_LINES, build_launcher, java_command, java_env,
                                     java_executable, launcher_hash)

LAUNCHER_FAILURE_PREFIX = "ner-os local node failed to start: "  # LocalNode.FAILURE_PREFIX
HEAP = "1g"
CLUSTER_HEAP = "512m"  # each JVM of a multi-node cluster
START_TIMEOUT_S = 180.0  # a cold JVM start takes ~25 s on 2 busy cores; leave room
STOP_TIMEOUT_S = 30.0

__all__ = ["NodeRecord", "NodeStatus", "start", "stop", "running", "status", "kill_node", "credentials",
           "describe_cluster", "ensure_cluster_url", "docker_engine_answers", "build_launcher", "launcher_hash",
           "DOCKER_IMAGE", "HEAP"]


@dataclass(frozen=True)
class NodeRecord:
    """What ``node.json`` holds about a started node (or cluster)."""

    kind: str  # "launcher" or "docker"
    url: str | None  # None until the node has reported its port; https:// when secure
    pid: int | None = None  # launcher: the (first) JVM's process id
    container: str | None = None  # docker: the container name
    log: str | None = None
    features: list[str] = field(default_factory=list)  # plugin sets: "ml-commons", "security"
    ca: str | None = None  # secure: the CA certificate (PEM) that signed the node's certificate
    credentials: str | None = None  # secure: the 0600 JSON file of the generated users' passwords
    members: list[dict] = field(default_factory=list)  # nodes > 1: {"name", "pid", "log", "home", "transport_port"}

    @property
    def secure(self) -> bool:
        return "security" in self.features


@dataclass(frozen=True)
class NodeStatus:
    url: str
    kind: str
    version: str
    plugins: list[str]
    health: str
    nodes: int = 1


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


def start(settings: Settings, http_port: int = 0, timeout_s: float = START_TIMEOUT_S, *,
          ml_commons: bool = False, secure: bool = False, nodes: int = 1) -> NodeRecord:
    """Start the local node, or return the one already running. ``http_port`` 0: a free port.

    ``ml_commons``: with ML Commons (local models, ``neural`` queries). ``secure``: the security plugin
    with TLS and generated users (see :func:`credentials`). ``nodes``: that many JVMs in one cluster.
    Options other than the defaults always use the Maven launcher, never Docker.
    """
    features = [name for name, wanted in (("ml-commons", ml_commons), ("security", secure)) if wanted]
    if nodes < 1:
        raise ClusterError(f"a local cluster needs at least one node, not {nodes}")
    with _locked(settings):
        running_record = _live_record(settings)
        if running_record is not None:
            _check_same_kind(running_record, features, nodes)
            if running_record.url is None:  # started by another process that gave up waiting: wait here
                running_record = _await_launcher(settings, running_record, timeout_s)
            return running_record
        if not features and nodes == 1 and docker_engine_answers():
            return _start_docker(settings, http_port, timeout_s)
        return _start_launcher(settings, http_port, timeout_s, features, nodes)


def stop(settings: Settings) -> bool:
    """Stop the local node (every JVM of a cluster); False when none was running."""
    with _locked(settings):
        record = _live_record(settings)
        if record is None:
            return False
        if record.kind == "docker":
            node_docker.remove(record.container)
        else:
            for pid in _pids(record):
                _terminate(pid)
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
    return describe_cluster(record.url, record.kind, _access(record))


def kill_node(settings: Settings, name: str) -> int:
    """SIGKILL one JVM of the running local cluster by node name (fault tests); its pid."""
    record = _live_record(settings)
    members = {member["name"]: member for member in (record.members if record else [])}
    if name not in members:
        raise ClusterError(f"no running local node named {name!r} (running: {', '.join(members) or 'none'})")
    pid = members[name]["pid"]
    if _launcher_alive(pid):
        os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    return pid


def credentials(record: NodeRecord) -> dict[str, str]:
    """The generated users of a secure node: ``{"admin": ..., "ner_os_loader": ..., "ner_os_searcher": ...}``."""
    if not record.credentials:
        raise ClusterError("this local node runs without the security plugin: it has no users")
    return node_security.read_credentials(Path(record.credentials))


def describe_cluster(url: str, kind: str = "remote", access: tuple | None = None) -> NodeStatus:
    info = _get_json(url, "/", access=access)
    plugins = sorted({row["component"] for row in _get_json(url, "/_cat/plugins?format=json", access=access)})
    health = _get_json(url, "/_cluster/health", access=access)
    return NodeStatus(url=url, kind=kind, version=info["version"]["number"], plugins=plugins,
                      health=health["status"], nodes=health.get("number_of_nodes", 1))


# --- the Maven launcher -----------------------------------------------------------------------


def _check_same_kind(record: NodeRecord, features: list[str], nodes: int) -> None:
    have_nodes = max(1, len(record.members))
    if record.kind == "docker" and not features and nodes == 1:
        return
    if sorted(record.features) != sorted(features) or have_nodes != nodes:
        have = ", ".join(record.features) or "no optional plugins"
        want = ", ".join(features) or "no optional plugins"
        raise ClusterError(f"a local OpenSearch node is already running ({have}, {have_nodes} node(s)) at "
                           f"{record.url}, not the one asked for ({want}, {nodes} node(s)); stop it first "
                           "(ner-os opensearch stop)")


def _start_launcher(settings: Settings, http_port: int, timeout_s: float, features: list[str],
                    nodes: int) -> NodeRecord:
    java = java_executable()
    build_dir = build_launcher(settings, features)
    secure = "security" in features
    plan = node_config.plan_members(node_dir(settings), nodes)
    all_members = [member for _, member in plan if member is not None]
    members, ca, credentials_path = [], None, None
    for index, (home, member) in enumerate(plan):
        home.mkdir(parents=True, exist_ok=True)
        if secure:
            ca, credentials_path = node_security.prepare_home(home, build_dir, node_dir(settings))
        overlay = node_config.node_settings(ml_commons="ml-commons" in features, secure=secure,
                                            member=member, members=all_members)
        settings_file = node_config.write_settings(home / "ner-os-node.json", overlay) if overlay else None
        port_file = home / "http.port"
        port_file.unlink(missing_ok=True)
        log_path = home.parent / "node.log" if member is None else home / "node.log"
        command = java_command(java, build_dir, CLUSTER_HEAP if member else HEAP, home,
                               http_port if index == 0 else 0, port_file, settings_file)
        with open(log_path, "wb") as log:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True, env=java_env(build_dir))  # outlives this process
        members.append({"name": member.name if member else "ner-os-local", "pid": process.pid,
                        "log": str(log_path), "home": str(home),
                        "transport_port": member.transport_port if member else None})
    record = NodeRecord(kind="launcher", url=None, pid=members[0]["pid"], log=members[0]["log"],
                        features=features, ca=str(ca) if ca else None,
                        credentials=str(credentials_path) if credentials_path else None,
                        members=members if nodes > 1 else [])
    _write_record(settings, record)
    return _await_launcher(settings, record, timeout_s, process if nodes == 1 else None)


def _await_launcher(settings: Settings, record: NodeRecord, timeout_s: float,
                    process: subprocess.Popen | None = None) -> NodeRecord:
    homes = [Path(member["home"]) for member in record.members] or [node_dir(settings) / "launcher"]
    port_file = homes[0] / "http.port"
    deadline = time.monotonic() + timeout_s
    while not port_file.is_file():
        if not _alive(record, process):
            _record_path(settings).unlink(missing_ok=True)
            raise ClusterError("the local OpenSearch node exited while starting:\n" + _log_tail(record.log))
        if time.monotonic() > deadline:
            raise ClusterError(f"the local OpenSearch node did not open its HTTP port within {timeout_s:.0f} s "
                               f"(pid {record.pid}, log {record.log})")
        time.sleep(0.25)
    scheme = "https" if record.secure else "http"
    url = f"{scheme}://127.0.0.1:{int(port_file.read_text().strip())}"
    nodes = max(1, len(record.members))
    _wait_for_health(url, deadline, record, process, _access(record), nodes)
    ready = replace(record, url=url)
    _write_record(settings, ready)
    return ready


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


def _pids(record: NodeRecord) -> list[int]:
    return [member["pid"] for member in record.members] or ([record.pid] if record.pid else [])


# --- Docker -----------------------------------------------------------------------------------


def _start_docker(settings: Settings, http_port: int, timeout_s: float) -> NodeRecord:
    port = http_port or node_config.free_port()
    node_docker.run_container(port, HEAP)
    record = NodeRecord(kind="docker", url=f"http://127.0.0.1:{port}", container=DOCKER_CONTAINER)
    _write_record(settings, record)
    _wait_for_health(record.url, time.monotonic() + timeout_s, record)
    return record


# --- shared helpers ---------------------------------------------------------------------------


def _access(record: NodeRecord) -> tuple[str, str, str] | None:
    """(CA path, user, password) of the admin user for a secure node; None otherwise."""
    if not record.secure or not record.credentials or not Path(record.credentials).is_file():
        return None
    return record.ca, node_security.ADMIN_USER, credentials(record)[node_security.ADMIN_USER]


def _wait_for_health(url: str, deadline: float, record: NodeRecord, process: subprocess.Popen | None = None,
                     access: tuple | None = None, nodes: int = 1) -> None:
    last_error = "no answer"
    query = "wait_for_status=yellow&timeout=5s" + (f"&wait_for_nodes={nodes}" if nodes > 1 else "")
    while time.monotonic() < deadline:
        if not _alive(record, process):
            tail = _log_tail(record.log) if record.kind == "launcher" else node_docker.log_tail(record.container, LOG_TAIL_LINES)
            raise ClusterError(f"the local OpenSearch node ({record.kind}) died while starting; last log lines:\n{tail}")
        try:
            health = _get_json(url, f"/_cluster/health?{query}", timeout_s=10, access=access)
            if not health.get("timed_out"):
                return
        except ClusterError as error:
            last_error = str(error)
        time.sleep(0.5)
    raise ClusterError(f"the local OpenSearch node at {url} did not reach yellow health in time ({last_error})")


def _get_json(url: str, path: str, timeout_s: float = 10.0, access: tuple | None = None):
    request = urllib.request.Request(url.rstrip("/") + path)
    context = None
    if access is not None:
        ca, user, password = access
        context = ssl.create_default_context(cafile=ca)
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s, context=context) as response:
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
    """A cluster counts as running while any of its JVMs runs (kill_node leaves the others)."""
    if process is not None:  # just started here: right after the fork its cmdline is still Python's
        return process.poll() is None
    if record.kind == "docker":
        return node_docker.container_running(record.container)
    return any(_launcher_alive(pid) for pid in _pids(record))


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
