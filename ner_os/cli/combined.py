"""``ner-os combine``: several types in one query (all of, any of, none of)."""

from __future__ import annotations

import sys

import click

from ner_os import render
from ner_os.cli.options import cluster_options, friendly_errors, model_options, settings_from

TYPE_HELP = (' (repeatable; "DESCRIPTION@THRESHOLD" gives it its own threshold, "like:Nile;DOCID:START-END" '
             'gives it by examples as search --like does)')


@click.command("combine")
@click.option("--all-of", "all_of", multiple=True, metavar="TYPE", help="Each document mentions this type" + TYPE_HELP)
@click.option("--any-of", "any_of", multiple=True, metavar="TYPE", help="Each document mentions one of these" + TYPE_HELP)
@click.option("--none-of", "none_of", multiple=True, metavar="TYPE", help="No document mentions this type" + TYPE_HELP)
@click.option("--threshold", help="Where a type's mentions start, for types without their own: a k-NN score (0.8), "
                                  "a percentile of the type's scores over the index's mentions (p99.5) or standard "
                                  "deviations above their mean (z3) [default: z2.5]")
@click.option("-n", "--size", default=10, show_default=True, help="Documents to return")
@click.option("--filter", "filters", multiple=True, metavar="FIELD=VALUE",
              help="Document field condition, e.g. metadata.lang=en (repeatable)")
@click.option("--mentions", "mentions_per_clause", default=3, show_default=True,
              help="At most this many matched mentions per type and document")
@click.option("--approximate", is_flag=True,
              help="Radial k-NN on the HNSW graph instead of scoring every mention exactly (large indices; "
                   "may miss a mention near a threshold)")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per document")
@cluster_options
@model_options
@friendly_errors
def combine(all_of, any_of, none_of, threshold, size, filters, mentions_per_clause, approximate, as_json, **flags):
    """Documents that mention every --all-of type, at least one --any-of type and no --none-of type,
    e.g. --all-of politician --all-of "political party" --none-of company."""
    from ner_os.client import NerOs
    from ner_os.query import parse_filter_args

    with NerOs(settings_from(**flags)) as ner:
        results = ner.search_combined(all_of, any_of, none_of, threshold=threshold, size=size,
                                      filters=parse_filter_args(filters), approximate=approximate,
                                      mentions_per_clause=mentions_per_clause)
    for line in render.combined_results(results, as_json, sys.stdout.isatty()):
        click.echo(line)
