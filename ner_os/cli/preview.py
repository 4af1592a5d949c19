"""``ner-os spans``: what the span detectors find in a text or a file, marked in the text."""

from __future__ import annotations

import sys

import click

from ner_os import render
from ner_os.cli.options import friendly_errors, model_options, settings_from

DETECTOR_CHOICES = ("union", "encoder", "spacy")  # ner_os.spans.DETECTORS but "given" (kept light: no import)


@click.command("spans")
@click.argument("source", metavar="FILE|TEXT")
@click.option("--spans", "detectors", default="union,spacy", show_default=True,
              help="Comma-separated detectors to show, from union, encoder, spacy")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True,
              help="Texts read from a FILE (JSONL lines with \"text\", or plain lines)")
@model_options
@friendly_errors
def spans_command(source, detectors, limit, **flags):
    """Show the mentions each span detector finds in TEXT, or in the first lines of FILE, marked in
    the text: a document is only found through a mention detected in it. A JSONL line's own
    "mentions" are shown as "given" (the loader keeps them and detects nothing there)."""
    from ner_os.evaluation.plan import parse_choices
    from ner_os.loader.preview import preview_spans

    chosen = parse_choices(detectors, DETECTOR_CHOICES, "span detector")
    previews = preview_spans(source, settings_from(**flags), detectors=chosen, limit=limit)
    for line in render.span_previews(previews, render.terminal_mark(sys.stdout.isatty())):
        click.echo(line)
