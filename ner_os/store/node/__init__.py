"""A local OpenSearch for trying things out and for the tests: one node, a secured node, or a small
cluster, run by the Maven launcher in tools/opensearch-node/ (or Docker where an engine answers).

lifecycle: start/stop/status/kill; build: the launcher's Maven build and Java command; config: the
settings of each node; security: users, roles and the security plugin's files; certificates: the CA
and node/admin certificates; docker: the Docker path.
"""
