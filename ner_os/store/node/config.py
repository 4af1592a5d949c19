"""The node settings ner-os lays over the launcher's single-node defaults (``-Dner_os.node.settings``).

Pure functions: each returns a flat settings mapping; :func:`write_settings` writes one as JSON.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from pathlib import Path

CLUSTER_NAME = "ner-os-local"
UNSET_KEY = "ner_os.unset"  # LocalNode.UNSET_KEY: defaults to drop

# ML Commons on one small node: models may run on data nodes; its memory and disk circuit breakers
# (90 % native, 85 % heap, 5 GB free disk) would refuse deploys on a shared laptop or CI runner.
ML_COMMONS_SETTINGS = {
    "plugins.ml_commons.only_run_on_ml_node": False,
    "plugins.ml_commons.native_memory_threshold": 100,
    "plugins.ml_commons.jvm_heap_memory_threshold": 100,
    "plugins.ml_commons.disk_free_space_threshold": "0b",
    "plugins.ml_commons.allow_registering_model_via_local_file": True,
    "plugins.ml_commons.allow_registering_model_via_url": True,
    "plugins.ml_commons.model_access_control_enabled": False,
}


@dataclass(frozen=True)
class ClusterMember:
    """One JVM of a multi-node local cluster."""

    name: str
    transport_port: int


def ml_commons_settings() -> dict:
    return dict(ML_COMMONS_SETTINGS)


def security_settings(certs_dir: str = "certs") -> dict:
    """TLS on transport and HTTP with the ner-os CA (paths relative to the node's config dir), client
    certificates optional, the security index initialised from ``config/opensearch-security/``."""
    pem = {"pemcert_filepath": f"{certs_dir}/node.pem", "pemkey_filepath": f"{certs_dir}/node-key.pem",
           "pemtrustedcas_filepath": f"{certs_dir}/ca.pem"}
    settings: dict = {f"plugins.security.ssl.{layer}.{key}": value for layer in ("transport", "http")
                      for key, value in pem.items()}
    settings.update({
        "plugins.security.ssl.http.enabled": True,
        "plugins.security.ssl.http.clientauth_mode": "OPTIONAL",
        "plugins.security.ssl.transport.enforce_hostname_verification": False,
        "plugins.security.allow_default_init_securityindex": True,
        "plugins.security.authcz.admin_dn": ["CN=admin"],
        "plugins.security.nodes_dn": ["CN=node"],
        "plugins.security.audit.type": "noop",
        "plugins.security.restapi.roles_enabled": ["all_access"],
        "plugins.security.allow_unsafe_democertificates": False,
    })
    return settings


def cluster_settings(member: ClusterMember, members: list[ClusterMember]) -> dict:
    """One member of a loopback cluster: discovery over the members' transport ports, all of them
    eligible cluster managers (and data nodes), the single-node discovery default dropped."""
    return {
        UNSET_KEY: ["discovery.type"],
        "node.name": member.name,
        "transport.port": member.transport_port,
        "discovery.seed_hosts": [f"127.0.0.1:{other.transport_port}" for other in members],
        "cluster.initial_cluster_manager_nodes": [other.name for other in members],
    }


def node_settings(*, ml_commons: bool = False, secure: bool = False, member: ClusterMember | None = None,
                  members: list[ClusterMember] | None = None) -> dict:
    """Everything one node needs on top of the launcher's defaults; {} for a plain single node."""
    settings: dict = {}
    if ml_commons:
        settings.update(ml_commons_settings())
    if secure:
        settings.update(security_settings())
    if member is not None:
        settings.update(cluster_settings(member, members or [member]))
    return settings


def write_settings(path: Path, settings: dict) -> Path:
    """The overlay file the launcher reads (``.json``: OpenSearch picks the parser by the extension)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
    return path


def plan_members(root: Path, nodes: int) -> list[tuple[Path, ClusterMember | None]]:
    """(home, member) per JVM: ``root/launcher`` for one node (no member: single-node discovery), else
    ``root/cluster-<n>/ner-os-<i>`` with transport ports kept in ``transport-ports.json``."""
    if nodes == 1:
        return [(root / "launcher", None)]
    cluster = root / f"cluster-{nodes}"
    names = [f"ner-os-{index}" for index in range(1, nodes + 1)]
    members = [ClusterMember(name, port) for name, port in zip(names, _transport_ports(cluster, len(names)))]
    return [(cluster / member.name, member) for member in members]


def _transport_ports(cluster: Path, count: int) -> list[int]:
    """Transport ports are part of the cluster's discovery: keep them across restarts while still free."""
    saved = cluster / "transport-ports.json"
    ports = json.loads(saved.read_text()) if saved.is_file() else []
    if len(ports) != count or not all(port_free(port) for port in ports):
        ports = [free_port() for _ in range(count)]
        cluster.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(ports) + "\n")
    return ports


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
