"""``ner-os search`` and ``ner-os dsl``: a type query, run or printed for Dev Tools."""

from __future__ import annotations

import sys

import click

from ner_os import render
from ner_os.cli.options import (MENTION_MARGIN, cluster_options, friendly_errors, model_options, settings_from,
                                type_query_options)


def type_query_kwargs(size, offset, k, no_hybrid, min_score, filters, mentions_per_hit) -> dict:
    """The flags of :func:`ner_os.cli.options.type_query_options` as :meth:`ner_os.client.NerOs.search_type` options."""
    from ner_os.query import parse_filter_args

    return {"size": size, "offset": offset, "k": k, "hybrid": not no_hybrid, "min_score": min_score,
            "filters": parse_filter_args(filters), "mentions_per_hit": mentions_per_hit}


@click.command()
@type_query_options
@click.option("--mention-margin", type=click.FloatRange(0, 1), default=MENTION_MARGIN, show_default=True,
              help="Leave out a document's mentions scoring less than its best one minus this (1: keep all); "
                   "not in radial search")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per document (id, score, source, mentions)")
@cluster_options
@model_options
@friendly_errors
def search(description, size, offset, k, no_hybrid, min_score, filters, mentions_per_hit, mention_margin, as_json,
           **flags):
    """Documents that mention an entity of type DESCRIPTION (plain words: "dinosaur", "river in
    Africa"), best first, each with its matched mentions highlighted and scored."""
    from ner_os.client import NerOs

    with NerOs(settings_from(**flags)) as ner:
        results = ner.search_type(description, mention_margin=mention_margin,
                                  **type_query_kwargs(size, offset, k, no_hybrid, min_score, filters, mentions_per_hit))
    if as_json:
        lines = render.results_json(results)
    else:
        lines = render.format_results(results, render.terminal_mark(sys.stdout.isatty()))
    for line in lines:
        click.echo(line)


@click.command()
@type_query_options
@click.option("--template", is_flag=True,
              help="Store the search template (needs lang-mustache) and print the request that sends only the vector")
@cluster_options
@model_options
@friendly_errors
def dsl(description, size, offset, k, no_hybrid, min_score, filters, mentions_per_hit, template, **flags):
    """Print the complete query for DESCRIPTION, ready to paste into Dashboards Dev Tools.

    With neural-search the hybrid query names the index's RRF search pipeline; without it the k-NN
    query is printed (BM25 fusion then happens in ner-os, not in one request)."""
    from ner_os.client import NerOs

    options = type_query_kwargs(size, offset, k, no_hybrid, min_score, filters, mentions_per_hit)
    with NerOs(settings_from(**flags)) as ner:
        if template:
            options.pop("hybrid")
            click.echo(ner.template_request(description, **options))
        else:
            click.echo(ner.dsl(description, **options))
