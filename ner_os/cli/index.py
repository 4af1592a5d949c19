"""``ner-os index delete``: an index with everything ner-os made for it."""

from __future__ import annotations

import click

from ner_os import render
from ner_os.cli.options import connection_options, friendly_errors, settings_from


@click.group()
def index():
    """The document index as a whole."""


@index.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Delete without asking")
@connection_options
@friendly_errors
def index_delete(name, yes, **flags):
    """Delete index NAME and what ner-os made for it: its index and component templates, search
    pipelines, stored search template and registered-type records. Asks first unless --yes."""
    from ner_os.client import NerOs

    if not yes:
        click.confirm(f"Delete index {name!r}, its documents and the templates, pipelines and types made for it?",
                      abort=True, err=True)
    with NerOs(settings_from(index=name, **flags)) as ner:
        for line in render.removed_index(ner.delete_index(name)):
            click.echo(line)
