"""``ner-os search`` and ``ner-os dsl``: a type query, run or printed for Dev Tools."""

from __future__ import annotations

import sys

import click

from ner_os import render
from ner_os.cli.options import (MENTION_MARGIN, cluster_options, friendly_errors, model_options, settings_from,
                                type_query_options)

EMBEDDING = click.option(
    "--embedding", type=click.Choice(["auto", "cluster", "local"]), default="auto", show_default=True,
    help="Where the description becomes a vector: the cluster (ML Commons, after `ner-os model deploy`; no model "
         "loads here), this process, or auto (the cluster when the index's model is deployed)")


def type_query_kwargs(size, offset, k, hybrid, min_score, filters, mentions_per_hit) -> dict:
    """The flags of :func:`ner_os.cli.options.type_query_options` as :meth:`ner_os.client.NerOs.search_type` options."""
    from ner_os.query import parse_filter_args

    return {"size": size, "offset": offset, "k": k, "hybrid": hybrid, "min_score": min_score,
            "filters": parse_filter_args(filters), "mentions_per_hit": mentions_per_hit}


@click.command()
@type_query_options
@click.option("--mention-margin", type=click.FloatRange(0, 1), default=MENTION_MARGIN, show_default=True,
              help="Leave out a document's mentions scoring less than its best one minus this (1: keep all); "
                   "not in radial search")
@click.option("--format", "output_format", type=click.Choice(["table", "jsonl", "csv"]), default=None,
              help="table (readable, the default), jsonl (one JSON object per document: id, score, source, "
                   "mentions) or csv (a header, then id, score, text, mentions as surface:start-end; ...)")
@click.option("--json", "as_json", is_flag=True, help="The same as --format jsonl")
@EMBEDDING
@cluster_options
@model_options
@friendly_errors
def search(description, size, offset, k, hybrid, min_score, filters, mentions_per_hit, mention_margin, output_format,
           as_json, embedding, **flags):
    """Documents that mention an entity of type DESCRIPTION (plain words: "dinosaur", "river in
    Africa"), best first, each with its matched mentions highlighted and scored."""
    from ner_os.client import NerOs

    if as_json and output_format not in (None, "jsonl"):
        raise click.UsageError(f"--json is --format jsonl: it cannot go with --format {output_format}")
    output_format = "jsonl" if as_json else output_format or "table"
    with NerOs(settings_from(**flags), embedding=embedding) as ner:
        results = ner.search_type(description, mention_margin=mention_margin,
                                  **type_query_kwargs(size, offset, k, hybrid, min_score, filters, mentions_per_hit))
    for line in render.search_results(results, output_format, sys.stdout.isatty()):
        click.echo(line)


@click.command()
@type_query_options
@click.option("--template", is_flag=True,
              help="Store the search template (needs lang-mustache) and print the request that sends only the vector")
@EMBEDDING
@cluster_options
@model_options
@friendly_errors
def dsl(description, size, offset, k, hybrid, min_score, filters, mentions_per_hit, template, embedding, **flags):
    """Print the complete query for DESCRIPTION, ready to paste into Dashboards Dev Tools.

    The k-NN query by default; with --hybrid and neural-search the hybrid query naming the index's RRF
    search pipeline; without neural-search the k-NN query is printed (BM25 fusion then happens in ner-os, not in one request). With the model deployed
    in ML Commons (ner-os model deploy) the query holds the plain words (a neural query), no vector."""
    from ner_os.client import NerOs

    options = type_query_kwargs(size, offset, k, hybrid, min_score, filters, mentions_per_hit)
    with NerOs(settings_from(**flags), embedding=embedding) as ner:
        if template:
            options.pop("hybrid")
            click.echo(ner.template_request(description, **options))
        else:
            click.echo(ner.dsl(description, **options))
