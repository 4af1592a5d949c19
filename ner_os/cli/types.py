"""``ner-os types …``: registered types, whose names tag the mentions that fit them."""

from __future__ import annotations

import click

from ner_os import render
from ner_os.cli.options import cluster_options, friendly_errors, model_options, settings_from


@click.group("types")
def types_group():
    """Registered types: a stored type whose name tags every mention that fits it (mentions.types),
    so Dashboards can filter and count by type with no vector in sight."""


@types_group.command("add")
@click.argument("description")
@click.option("--name", help="Tag written into mentions.types [default: the description]")
@click.option("--min-score", type=float, default=None,
              help="Tag mentions scoring at least this bare k-NN score ((1 + cosine) / 2, 0-1)")
@click.option("--threshold", default=None,
              help="Tag mentions above a threshold relative to the index: a percentile of the type's scores over "
                   "the index's mentions (p99.5) or standard deviations above their mean (z3) [default: z2.5; "
                   "0.8 on an index of under 20 mentions]")
@cluster_options
@model_options
@friendly_errors
def types_add(description, name, min_score, threshold, **flags):
    """Register type DESCRIPTION and tag the index's mentions with it (documents loaded later are
    tagged at load time, with the score the threshold came to). Adding a name again replaces its
    description and threshold; `types refresh` places a relative threshold again."""
    from ner_os.client import NerOs

    with NerOs(settings_from(**flags)) as ner:
        report = ner.register_type(description, name=name, min_score=min_score, threshold=threshold)
    click.echo(report.describe())


@types_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per type")
@cluster_options
@friendly_errors
def types_list(as_json, **flags):
    """The types registered for the index."""
    from ner_os.client import NerOs

    with NerOs(settings_from(**flags)) as ner:
        registered = ner.registered_types()
    for item in registered:
        click.echo(render.registered_type_line(item, as_json))
    if not registered and not as_json:
        click.echo("no type registered", err=True)


@types_group.command("remove")
@click.argument("name")
@cluster_options
@friendly_errors
def types_remove(name, **flags):
    """Unregister type NAME and remove its tag from every mention."""
    from ner_os.client import NerOs

    with NerOs(settings_from(**flags)) as ner:
        click.echo(ner.remove_type(name).describe("untagged"))


@types_group.command("refresh")
@click.argument("names", nargs=-1)
@cluster_options
@model_options
@friendly_errors
def types_refresh(names, **flags):
    """Re-embed the registered types (all, or NAMES) with the current model and re-tag every mention."""
    from ner_os.client import NerOs

    with NerOs(settings_from(**flags)) as ner:
        reports = ner.refresh_types(names)
    for report in reports:
        click.echo(report.describe())
