"""The ``ner-os`` command line: option parsing and echo only, each command one call of the Python API.

    options   the shared flags (connection, model, type query), settings, one-line errors
    cluster   opensearch start|stop|status, templates install
    stages    load, train, eval, export
    preview   spans (what the span detectors find, marked in the text)
    model     model deploy (ML Commons), dashboards export
    search    search, dsl
    combined  combine (several types in one query: all of, any of, none of)
    types     types add|list|remove|refresh
    head      head convert (the NER Retriever paper's checkpoint)
    index     index delete (an index with everything ner-os made for it)

What the commands print is formatted by :mod:`ner_os.render`.
"""

from __future__ import annotations

import click

from ner_os import __version__
from ner_os.cli.cluster import opensearch, templates
from ner_os.cli.combined import combine
from ner_os.cli.head import head
from ner_os.cli.index import index
from ner_os.cli.model import dashboards, model
from ner_os.cli.preview import spans_command
from ner_os.cli.search import dsl, search
from ner_os.cli.stages import eval_command, export_command, load_command, train
from ner_os.cli.types import types_group


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="ner-os")
def cli():
    """Zero-shot named entity retrieval inside OpenSearch.

    Settings come from flags, then NER_OS_* environment variables, then defaults.
    """


for _command in (train, opensearch, templates, load_command, search, dsl, types_group, eval_command, export_command,
                 model, dashboards, spans_command, head, index, combine):
    cli.add_command(_command)


def main():  # console-script entry point
    cli()
