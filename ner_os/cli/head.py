"""``ner-os head convert``: the NER Retriever paper's projection checkpoint as a ner-os head."""

from __future__ import annotations

import click

from ner_os import render
from ner_os.cli.options import friendly_errors


@click.group()
def head():
    """Projection heads from elsewhere."""


@head.command("convert")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Directory the head is written to")
@click.option("--profile", default="llama-3.1-8b", show_default=True,
              help="Model profile whose value vectors the head reads (its d_v is checked)")
@click.option("--model", help="Local path or hub id of the weights, recorded in the manifest [default: any copy]")
@click.option("--layer", type=int, help="Layer the head was trained on [default: the profile's]")
@friendly_errors
def head_convert(checkpoint, out, profile, model, layer):
    """Convert the NER Retriever reference implementation's projection checkpoint (a PyTorch state dict
    of Linear(1024->500) -> SiLU -> Dropout -> Linear(500->500), Llama-3.1-8B block 17 v_proj) into a
    head directory: then `--profile llama-3.1-8b --head DIR` runs the paper's pipeline."""
    from ner_os.head_convert import convert_checkpoint

    click.echo(render.converted_head(convert_checkpoint(checkpoint, out, profile=profile, model=model, layer=layer)))
