"""What every command shares: one-line errors, the connection and model flags, the type-query flags,
and the settings they resolve to."""

from __future__ import annotations

import functools
import sys

import click

from ner_os.config import Settings
from ner_os.errors import NerOsError

PROMPTED_PASSWORD = "ner_os.prompted_password"  # key in click's context meta
# the --mention-margin default: ner_os.query.MENTION_MARGIN (tests/unit/test_cli.py keeps them equal),
# written out so that the CLI starts without importing the query stage (numpy, opensearch-py)
MENTION_MARGIN = 0.1


def friendly_errors(command):
    """Turn user-facing errors into one line on stderr and exit code 2, never a stack trace."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except NerOsError as error:
            click.echo(f"Error: {error}", err=True)
            sys.exit(2)
        except ValueError as error:  # settings from the environment that do not parse
            click.echo(f"Error: {error}", err=True)
            sys.exit(2)
        except Exception as error:  # noqa: BLE001 - a cluster's refusal (403) that reached the command
            refused = _cluster_refusal(error)
            if refused is None:
                raise
            click.echo(f"Error: {refused}", err=True)
            sys.exit(2)

    return wrapper


def _cluster_refusal(error: Exception):
    """The one-line ``ClusterError`` for an opensearch-py error, else None (opensearch-py is imported
    only when it is already loaded: an error of its own means it is)."""
    if "opensearchpy" not in sys.modules:
        return None
    from ner_os.store.connection import refusal

    return refusal(error)


def _prompt_password(context: click.Context, parameter, wanted: bool) -> None:
    if wanted:
        context.meta[PROMPTED_PASSWORD] = click.prompt("Password", hide_input=True, err=True)


def _apply(options, command):
    for option in reversed(options):
        command = option(command)
    return command


def cluster_options(command, with_index: bool = True):
    """The connection flags every command that talks to OpenSearch takes (``--index`` unless it names the
    index as an argument: :func:`connection_options`)."""
    return _apply([
        click.option("--url", "opensearch_url", help="OpenSearch URL [env NER_OS_OPENSEARCH_URL; default: a local node]"),
        *([click.option("--index", help="Index name [env NER_OS_INDEX; default: ner-os]")] if with_index else []),
        click.option("--username", help="Basic-auth user [env NER_OS_USERNAME]"),
        click.option("--password-prompt", is_flag=True, expose_value=False, callback=_prompt_password,
                     help="Ask for the basic-auth password [or env NER_OS_PASSWORD; never a flag value, which "
                          "shell history and ps would show]"),
        click.option("--ca-certs", help="CA bundle for https [env NER_OS_CA_CERTS]"),
        click.option("--client-cert", help="Client certificate (PEM) [env NER_OS_CLIENT_CERT]"),
        click.option("--client-key", help="Client key (PEM) [env NER_OS_CLIENT_KEY]"),
    ], command)


def index_shards_option(command):
    """``--index-shards``, for the commands that create a document index or its templates."""
    return click.option("--index-shards", type=click.IntRange(1, 1024),  # schema.MAX_SHARDS
                        help="Primary shards of a new index; k-NN searches each shard's graphs, so more shards "
                             "keep recall at scale (see docs/benchmarks.md, Scale) [env NER_OS_INDEX_SHARDS; "
                             "default: 1]")(command)


def connection_options(command):
    """:func:`cluster_options` without ``--index``."""
    return cluster_options(command, with_index=False)


def model_options(command):
    """The model flags every command that encodes text takes."""
    return _apply([
        click.option("--profile", help="Model profile [env NER_OS_PROFILE; default: gemma3-270m]"),
        click.option("--model", help="Local path or hub id overriding the profile's weights [env NER_OS_MODEL]"),
        click.option("--layer", type=int, help="Layer whose value vectors are read [env NER_OS_LAYER]"),
        click.option("--head", help="Projection head directory [env NER_OS_HEAD]"),
        click.option("--backend", type=click.Choice(["onnx", "torch"]), help="Encoder backend [env NER_OS_BACKEND; default: onnx]"),
        click.option("--device", type=click.Choice(["cpu", "cuda"]), help="Where the encoder runs [env NER_OS_DEVICE; default: cpu]"),
    ], command)


def type_query_options(command, description_required: bool = True, several: bool = False):
    """The flags of a type query, shared by ``search`` (where examples can stand for the description, and
    ``several``: descriptions, a tuple) and ``dsl``."""
    return _apply([
        click.argument("description", required=description_required, nargs=-1 if several else 1),
        click.option("-n", "--size", default=10, show_default=True, help="Documents per page"),
        click.option("--offset", default=0, show_default=True, help="Documents to skip (the page's start)"),
        click.option("--k", type=int, help="Documents the k-NN search gathers per shard [default: 200 split over "
                                           "the index's shards, at least 100 each, and at least offset + size]"),
        click.option("--hybrid/--no-hybrid", "hybrid", default=False,
                     help="Fuse BM25 on the text (stopwords dropped, every word required) with the k-NN "
                          "ranking by RRF [default: k-NN alone, which never ruins a type]"),
        click.option("--min-score", type=float,
                     help="Radial search: every mention scoring at least this ((1 + cosine) / 2, 0-1); k-NN only"),
        click.option("--filter", "filters", multiple=True, metavar="FIELD=VALUE",
                     help="Document field condition, e.g. metadata.lang=en or metadata.year>=2000 (repeatable)"),
        click.option("--mentions", "mentions_per_hit", default=3, show_default=True,
                     help="At most this many matched mentions per document"),
    ], command)


def settings_from(**flags) -> Settings:
    """The settings of the flags given, the environment and the defaults (and a prompted password)."""
    context = click.get_current_context(silent=True)
    prompted = context.meta.get(PROMPTED_PASSWORD) if context is not None else None
    if prompted is not None:
        flags["password"] = prompted
    return Settings.resolve(**flags)
