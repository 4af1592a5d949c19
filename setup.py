"""Packaging beyond pyproject.toml: the top-level data folders mapped into the wheel.

``index_templates/`` and ``tools/opensearch-node/`` stay where the design puts them and ship as the
data packages ``ner_os.index_templates`` and ``ner_os.opensearch_node`` (read via ner_os.resources).
"""

from setuptools import find_packages, setup

DATA_PACKAGES = {"ner_os.index_templates": "index_templates", "ner_os.opensearch_node": "tools/opensearch-node"}

setup(
    packages=find_packages(include=["ner_os", "ner_os.*"]) + list(DATA_PACKAGES),
    package_dir=DATA_PACKAGES,
    package_data={
        "ner_os": ["heads/**/*", "samples/*"],
        "ner_os.index_templates": ["*.json", "dashboards/*", "search_templates/*", "*.md"],
        "ner_os.opensearch_node": ["pom.xml", "src/**/*", "security/*"],
    },
)
