"""Building and running the Maven launcher in ``tools/opensearch-node/``: the build (cached per source
hash and plugin set), the JVM's classpath and environment, and the Java it needs.

A plugin set is a Maven profile of the launcher's pom: ``ml-commons`` (job-scheduler, ML Commons and the
PyTorch natives its ONNX engine needs) and ``security`` (the security plugin). Each combination builds
into its own directory, so a plain node never downloads the 363 MB ML Commons zip.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Iterable, Iterator

from ner_os.config import Settings
from ner_os.errors import ClusterError
from ner_os.resources import launcher_dir

LAUNCHER_DIR = launcher_dir()
LAUNCHER_CLASS = "ner_os.node.LocalNode"
FEATURES = ("ml-commons", "security")  # the pom's optional profiles, in build-directory-name order
# classpath order: job-scheduler and ML Commons before neural-search (it bundles an ml-commons client)
PLUGIN_ORDER = ("opensearch-job-scheduler", "opensearch-ml-plugin", "opensearch-security",
                "neural-search", "opensearch-knn")
PYTORCH_DIR = "pytorch"  # profile ml-commons unpacks libtorch + the DJL JNI here
PYTORCH_VERSION = "2.5.1"  # pom's djl.pytorch.version
LOG_TAIL_LINES = 25
SUPPORTED_JAVA = range(17, 24)  # OpenSearch 2.19 needs 17+; Java 24 removed the security manager 2.x uses


def check_features(features: Iterable[str]) -> tuple[str, ...]:
    """The plugin sets in canonical order; an unknown one is a ClusterError."""
    chosen = set(features)
    unknown = chosen - set(FEATURES)
    if unknown:
        raise ClusterError(f"unknown OpenSearch plugin set(s) {sorted(unknown)}; known: {', '.join(FEATURES)}")
    return tuple(name for name in FEATURES if name in chosen)


def build_dir_for(settings: Settings, features: Iterable[str] = ()) -> Path:
    """``<cache>/opensearch-node/<hash>`` for a plain node, ``<hash>-ml-commons-security`` etc. otherwise."""
    name = "-".join((launcher_hash(), *check_features(features)))
    return settings.cache_path / "opensearch-node" / name


def build_command(mvn: str, build_dir: Path, features: Iterable[str] = ()) -> list[str]:
    command = [mvn, "-q", "-B", "-f", str(LAUNCHER_DIR / "pom.xml"), f"-DnodeBuildDir={build_dir}"]
    profiles = check_features(features)
    if profiles:
        command.append("-P" + ",".join(profiles))
    return command + ["package"]


def build_launcher(settings: Settings, features: Iterable[str] = ()) -> Path:
    """Build ``tools/opensearch-node`` with Maven once per source hash and plugin set; the build directory."""
    if not (LAUNCHER_DIR / "pom.xml").is_file():
        raise ClusterError(f"the OpenSearch launcher sources are missing ({LAUNCHER_DIR}/pom.xml); "
                           "run ner-os from a clone of the repository, or set NER_OS_OPENSEARCH_URL")
    build_dir = build_dir_for(settings, features)
    done_marker = build_dir / "BUILD_OK"
    if done_marker.is_file():
        return build_dir
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ClusterError("no OpenSearch: NER_OS_OPENSEARCH_URL is unset, no Docker engine answers, and Maven "
                           "(mvn) is not installed to build the local node; install Java 17 and Maven, or Docker")
    with _build_lock(build_dir):
        if done_marker.is_file():  # another process built it while this one waited
            return build_dir
        command = build_command(mvn, build_dir, features)
        result = subprocess.run(command, capture_output=True, text=True, env=java_env())
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
    """classes, lib/*, the newest of each library that several plugins bundle in different versions,
    then each unpacked plugin: those of PLUGIN_ORDER in that order, any other after.

    Classpath plugins share one class loader, so the first jar wins: ML Commons bundles commons-lang3
    3.10, and before neural-search's 3.14 it breaks the RRF processor (``Range.of``, 3.13+), whose
    pipeline PUT then hangs. Libraries keep their old methods, so the newest version serves both.
    """
    plugins = [plugin for plugin in sorted((build_dir / "plugins").iterdir()) if plugin.is_dir()]
    rank = {name: position for position, name in enumerate(PLUGIN_ORDER)}
    plugins.sort(key=lambda plugin: (rank.get(plugin.name, len(rank)), plugin.name))
    entries = [build_dir / "classes", build_dir / "lib" / "*", *newest_duplicates(plugins),
               *(plugin / "*" for plugin in plugins)]
    return os.pathsep.join(str(entry) for entry in entries)


_VERSIONED_JAR = re.compile(r"^(?P<name>.+?)-(?P<version>\d+(?:\.\d+)*)(?:[.-][\w.-]*)?\.jar$")


def newest_duplicates(plugins: Iterable[Path]) -> list[Path]:
    """For each library found in several plugin folders in more than one version, its newest jar."""
    found: dict[str, dict[tuple[int, ...], Path]] = {}
    for plugin in plugins:
        for jar in sorted(plugin.glob("*.jar")):
            match = _VERSIONED_JAR.match(jar.name)
            if match:
                version = tuple(int(part) for part in match["version"].split("."))
                found.setdefault(match["name"], {}).setdefault(version, jar)
    return [versions[max(versions)] for _, versions in sorted(found.items()) if len(versions) > 1]


def java_command(java: str, build_dir: Path, heap: str, home: Path, http_port: int, port_file: Path,
                 settings_file: Path | None = None) -> list[str]:
    command = [java, f"-Xms{heap}", f"-Xmx{heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
               "-Dlog4j2.formatMsgNoLookups=true", "-Dlog4j.shutdownHookEnabled=false", "-Dfile.encoding=UTF-8"]
    if settings_file is not None:
        command.append(f"-Dner_os.node.settings={settings_file}")
    return command + ["-cp", launcher_classpath(build_dir), LAUNCHER_CLASS, str(home), str(http_port), str(port_file)]


def java_env(build_dir: Path | None = None) -> dict[str, str]:
    """The JVM's environment; with ML Commons built in, DJL is pointed at the shipped libtorch.

    DJL reads PYTORCH_* from the environment before the system properties ML Commons sets (which
    would ask for PyTorch 1.13.1 and download it).
    """
    env = dict(os.environ)
    env.pop("JAVA_TOOL_OPTIONS", None)  # its "Picked up ..." banner would land in the node's log
    if build_dir is not None and (build_dir / PYTORCH_DIR).is_dir():
        env.update(PYTORCH_LIBRARY_PATH=str(build_dir / PYTORCH_DIR), PYTORCH_VERSION=PYTORCH_VERSION,
                   PYTORCH_FLAVOR="cpu")
    return env


def java_executable() -> str:
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        raise ClusterError("no OpenSearch: NER_OS_OPENSEARCH_URL is unset, no Docker engine answers, and no Java "
                           "is installed to run the local node; install Java 17 and Maven, or Docker")
    major = java_major_version(java)
    if major not in SUPPORTED_JAVA:
        raise ClusterError(f"{java} is Java {major}; the local OpenSearch 2.19 node needs Java 17 to 23 "
                           "(set JAVA_HOME to one)")
    return java


def java_major_version(java: str) -> int:
    banner = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    # 'openjdk version "17.0.15" 2025-04-15' or 'java version "1.8.0_402"'
    quoted = banner.split('"')[1] if '"' in banner else "0"
    parts = quoted.split(".")
    return int(parts[1]) if parts[0] == "1" else int(parts[0].split("-")[0])


@contextlib.contextmanager
def _build_lock(build_dir: Path) -> Iterator[None]:
    build_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(build_dir.parent / f"{build_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
