"""``ner-os opensearch …`` (the local node) and ``ner-os templates install``."""

from __future__ import annotations

import sys

import click

from ner_os import render
from ner_os.cli.options import cluster_options, friendly_errors, index_shards_option, settings_from


@click.group()
def opensearch():
    """A local OpenSearch 2.19 node with k-NN: the official Docker image when a Docker engine
    answers, otherwise the Maven launcher in tools/opensearch-node (Java 17 + Maven)."""


@opensearch.command("start")
@click.option("--port", type=int, default=0, show_default=True, help="HTTP port; 0 picks a free one")
@click.option("--secure", is_flag=True,
              help="With the security plugin: TLS on HTTP and transport (a CA and certificates made for the node), "
                   "users admin, ner_os_loader and ner_os_searcher with generated passwords")
@click.option("--nodes", type=click.IntRange(min=1), default=1, show_default=True,
              help="JVMs in one loopback cluster (512 MB heap each); new indices get one replica when more than one")
@click.option("--ml-commons", is_flag=True, help="With ML Commons (local models, neural queries)")
@friendly_errors
def opensearch_start(port, secure, nodes, ml_commons):
    """Start the local node (or report the one already running).

    Options other than --port use the Maven launcher, never Docker. A secure node prints where its
    CA certificate and its credentials file (0600 JSON, one password per user) are, never a password.
    """
    from ner_os.store.node import lifecycle as local_node

    record = local_node.start(settings_from(), http_port=port, secure=secure, nodes=nodes, ml_commons=ml_commons)
    for line in render.node_started(record):
        click.echo(line)


@opensearch.command("stop")
@friendly_errors
def opensearch_stop():
    """Stop the local node."""
    from ner_os.store.node import lifecycle as local_node

    click.echo("stopped the local OpenSearch node" if local_node.stop(settings_from()) else "no local OpenSearch node was running")


@opensearch.command("status")
@friendly_errors
def opensearch_status():
    """Print the local node's URL, version, health and plugins (exit code 1 when none runs)."""
    from ner_os.store.node import lifecycle as local_node

    node = local_node.status(settings_from())
    if node is None:
        click.echo("no local OpenSearch node is running (start one with: ner-os opensearch start)")
        sys.exit(1)
    for line in render.node_status(node):
        click.echo(line)


@click.group()
def templates():
    """Index templates and search pipelines of the document index."""


@templates.command("install")
@cluster_options
@index_shards_option
@click.option("--dimension", type=int, help="Mention vector size [default: the active head's output size]")
@click.option("--profile", help="Model profile whose head sets the dimension [env NER_OS_PROFILE]")
@click.option("--head", help="Projection head directory whose output size sets the dimension [env NER_OS_HEAD]")
@friendly_errors
def templates_install(dimension, **flags):
    """Install (idempotently) the index templates for --index, and the hybrid search pipelines when
    the cluster has neural-search."""
    from ner_os.client import NerOs

    with NerOs(settings_from(**flags)) as ner:
        installed = ner.install_templates(dimension)
    for line in render.installed_templates(installed):
        click.echo(line)
