"""The ``ner-os`` command line: each command is a thin shell over a function of the Python API."""

from __future__ import annotations

import functools
import sys

import click

from ner_os import __version__
from ner_os.config import Settings
from ner_os.errors import NerOsError


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

    return wrapper


def cluster_options(command):
    """The connection flags every command that talks to OpenSearch takes."""
    options = [
        click.option("--url", "opensearch_url", help="OpenSearch URL [env NER_OS_OPENSEARCH_URL; default: a local node]"),
        click.option("--index", help="Index name [env NER_OS_INDEX; default: ner-os]"),
        click.option("--username", help="Basic-auth user [env NER_OS_USERNAME]"),
        click.option("--ca-certs", help="CA bundle for https [env NER_OS_CA_CERTS]"),
        click.option("--client-cert", help="Client certificate (PEM) [env NER_OS_CLIENT_CERT]"),
        click.option("--client-key", help="Client key (PEM) [env NER_OS_CLIENT_KEY]"),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def model_options(command):
    """The model flags every command that encodes text takes."""
    options = [
        click.option("--profile", help="Model profile [env NER_OS_PROFILE; default: gemma3-270m]"),
        click.option("--model", help="Local path or hub id overriding the profile's weights [env NER_OS_MODEL]"),
        click.option("--layer", type=int, help="Layer whose value vectors are read [env NER_OS_LAYER]"),
        click.option("--head", help="Projection head directory [env NER_OS_HEAD]"),
        click.option("--backend", type=click.Choice(["onnx", "torch"]), help="Encoder backend [env NER_OS_BACKEND; default: onnx]"),
        click.option("--device", type=click.Choice(["cpu", "cuda"]), help="Where the encoder runs [env NER_OS_DEVICE; default: cpu]"),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="ner-os")
def cli():
    """Zero-shot named entity retrieval inside OpenSearch.

    Settings come from flags, then NER_OS_* environment variables, then defaults.
    """


def settings_from(**flags) -> Settings:
    return Settings.resolve(**flags)


def main():  # console-script entry point
    cli()
