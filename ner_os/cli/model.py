"""``ner-os model deploy`` (the type encoder inside ML Commons) and ``ner-os dashboards export``."""

from __future__ import annotations

import click

from ner_os import render
from ner_os.cli.options import cluster_options, friendly_errors, model_options, settings_from


@click.group()
def model():
    """The type encoder inside OpenSearch (ML Commons): descriptions become vectors on the cluster."""


@model.command("deploy")
@cluster_options
@model_options
@click.option("--rebuild", is_flag=True, help="Build the type-vector graph again even when the cache holds it")
@friendly_errors
def model_deploy(rebuild, **flags):
    """Register and deploy the type-vector model in ML Commons and make it the --index's default.

    One ONNX graph (token ids -> value vectors of the layer -> the last token -> the head -> a unit
    vector) with a tokenizer that reads a description as `ner-os search` does. Idempotent: a model
    with the same content hash is reused. The index's mapping _meta records the model id and its
    default search pipeline names it, so that a neural query with only plain words works (curl,
    Dev Tools, Discover)."""
    from ner_os.deploy import deploy_type_model

    for line in render.deployed_model(deploy_type_model(settings_from(**flags), force_build=rebuild)):
        click.echo(line)


@click.group()
def dashboards():
    """OpenSearch Dashboards saved objects for the index."""


@dashboards.command("export")
@click.option("--index", help="Index name [env NER_OS_INDEX; default: ner-os]")
@click.option("--type", "type_description", default="dinosaur", show_default=True,
              help="The plain-words type of the saved search whose filter is the neural query")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the ndjson here [default: stdout]")
@friendly_errors
def dashboards_export(index, type_description, out):
    """The saved objects (index pattern, saved searches) for --index as ndjson, ready for
    Dashboards Management -> Saved objects -> Import."""
    from ner_os.query.dashboards import saved_objects_ndjson

    text = saved_objects_ndjson(settings_from(index=index).index, type_description)
    if out:
        with open(out, "w", encoding="utf-8") as handle:
            handle.write(text)
        click.echo(f"wrote the saved objects for index {settings_from(index=index).index} to {out}")
    else:
        click.echo(text, nl=False)
