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


LIKE = click.option("--like", multiple=True, metavar="EXAMPLE",
                    help="An entity of the type (repeatable): a surface (--like Nile), a mention in the index "
                         "(DOCID:START-END) or HIT:N, the N-th hit of the last result on the index")
MORE_LIKE = click.option("--more-like", multiple=True, metavar="N,N",
                         help="Hits of the last result that are right (e.g. 1,3): the type moves towards them")
LESS_LIKE = click.option("--less-like", multiple=True, metavar="N,N",
                         help="Hits of the last result that are wrong (e.g. 2); moving the type away from them did "
                              "not help on the dev folds, so by default they move nothing (docs/queries.md)")


def search_query_options(command):
    return type_query_options(command, description_required=False, several=True)


BATCH = click.option("--batch", "batch", type=click.Path(dir_okay=False, allow_dash=True), metavar="FILE",
                     help="Queries to run with the descriptions given, one per line: a description, or a JSON "
                          "object of search options ({\"description\": \"river\", \"size\": 5}); - reads stdin")


@click.command()
@search_query_options
@LIKE
@MORE_LIKE
@LESS_LIKE
@BATCH
@click.option("--mention-margin", type=click.FloatRange(0, 1), default=MENTION_MARGIN, show_default=True,
              help="Leave out a document's mentions scoring less than its best one minus this (1: keep all); "
                   "not in radial search")
@click.option("--format", "output_format", type=click.Choice(["table", "jsonl", "csv"]), default=None,
              help="table (readable, the default: a header with the documents matching), jsonl (one JSON object "
                   "per document: rank, id, score, rank_score, source, mentions, total, total_relation) or csv (a "
                   "header, then id, score, rank_score, total, total_relation, text, mentions as surface:start-end; "
                   "...); several queries add their number and description")
@click.option("--json", "as_json", is_flag=True, help="The same as --format jsonl")
@EMBEDDING
@cluster_options
@model_options
@friendly_errors
def search(description, like, more_like, less_like, batch, size, offset, k, hybrid, min_score, filters,
           mentions_per_hit, mention_margin, output_format, as_json, embedding, **flags):
    """Documents that mention an entity of type DESCRIPTION (plain words: "dinosaur", "river in
    Africa"), best first, each with its matched mentions highlighted and scored. Several phrasings
    separated by | ("river in Africa | African river") are searched as one type (docs/queries.md).

    Several DESCRIPTIONs (or --batch FILE) run as a batch over one _msearch, each with its own result,
    numbered; a query that fails is named and the exit status is 1. Every hit's score is its best
    mention's k-NN score, (1 + cosine) / 2, in every mode; hybrid mode ranks by RRF (shown in brackets).

    Examples stand for the description or join it (--like Nile --like Danube ["river"]); --more-like and
    --less-like refine the type with hits of the last result, which every single search keeps per index."""
    from ner_os.client import NerOs
    from ner_os.client.batch import read_batch
    from ner_os.client.last_result import search_with_last

    if as_json and output_format not in (None, "jsonl"):
        raise click.UsageError(f"--json is --format jsonl: it cannot go with --format {output_format}")
    output_format = "jsonl" if as_json else output_format or "table"
    queries = list(description) + (read_batch(batch, sys.stdin.read().splitlines() if batch == "-" else None)
                                   if batch else [])
    several = batch is not None or len(queries) > 1
    if several and (like or more_like or less_like):
        raise click.UsageError("--like, --more-like and --less-like go with one query; in a --batch file give "
                               'examples as JSON: {"examples": ["Nile", "Danube"]}')
    options = {"mention_margin": mention_margin,
               **type_query_kwargs(size, offset, k, hybrid, min_score, filters, mentions_per_hit)}
    with NerOs(settings_from(**flags), embedding=embedding) as ner:
        results = (ner.search_types(queries, **options) if several else
                   search_with_last(ner, queries[0] if queries else None, like, more_like, less_like, **options))
    for line in render.search_results(results, output_format, sys.stdout.isatty()):
        click.echo(line)
    failed = [f"query {number} ({result.description!r}) failed: {result.error}"
              for number, result in enumerate(results if several else [], start=1) if result.error is not None]
    for line in failed if output_format == "csv" else []:
        click.echo(line, err=True)
    if failed:
        raise SystemExit(1)


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
