"""The official OpenSearch image as the local node, when a Docker engine answers (plain node only)."""

from __future__ import annotations

import shutil
import subprocess

from ner_os.errors import ClusterError

OPENSEARCH_VERSION = "2.19.1"
DOCKER_IMAGE = f"opensearchproject/opensearch:{OPENSEARCH_VERSION}"
DOCKER_CONTAINER = "ner-os-opensearch"
DOCKER_VOLUME = "ner-os-opensearch-data"


def docker_engine_answers(timeout_s: float = 5.0) -> bool:
    """True when a ``docker`` client is installed and its engine replies."""
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=timeout_s).returncode == 0
    except (subprocess.TimeoutExpired, OSError):
        return False


def run_container(port: int, heap: str) -> None:
    docker("rm", "-f", DOCKER_CONTAINER, check=False)
    docker(
        "run", "-d", "--name", DOCKER_CONTAINER, "-p", f"127.0.0.1:{port}:9200",
        "-e", "discovery.type=single-node", "-e", "DISABLE_SECURITY_PLUGIN=true",
        "-e", "DISABLE_INSTALL_DEMO_CONFIG=true", "-e", f"OPENSEARCH_JAVA_OPTS=-Xms{heap} -Xmx{heap}",
        "-e", "cluster.routing.allocation.disk.threshold_enabled=false",
        "-v", f"{DOCKER_VOLUME}:/usr/share/opensearch/data", DOCKER_IMAGE,
    )


def remove(name: str | None) -> None:
    docker("rm", "-f", name or DOCKER_CONTAINER, check=False)


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["docker", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise ClusterError(f"docker {args[0]} failed: {result.stderr.strip()}")
    return result


def container_running(name: str | None) -> bool:
    if shutil.which("docker") is None:
        return False
    result = docker("inspect", "-f", "{{.State.Running}}", name or DOCKER_CONTAINER, check=False)
    return result.returncode == 0 and result.stdout.strip() == "true"


def log_tail(name: str | None, lines: int) -> str:
    result = docker("logs", "--tail", str(lines), name or DOCKER_CONTAINER, check=False)
    return (result.stdout + result.stderr).strip()
