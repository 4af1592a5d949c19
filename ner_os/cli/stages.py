"""``ner-os load``, ``train``, ``eval`` and ``export``: the commands that read corpora and build models.

Each calls one library function (imported when the command runs, so that ``--help`` loads no model
code) and prints what it returns.
"""

from __future__ import annotations

import dataclasses
import functools
import sys

import click

from ner_os import render
from ner_os.cli.options import cluster_options, friendly_errors, index_shards_option, model_options, settings_from
from ner_os.training.fit import TrainConfig  # its fields are the train command's flags

EXIT_REJECTS = 1  # ner-os load: lines were rejected
EXIT_BROKEN_INPUT = 3  # ner-os load: the input breaks off; what came before it is loaded


def train_config_options(command):
    """One ``--flag`` per field of :class:`ner_os.training.fit.TrainConfig`, its default in the help."""
    for spec in reversed(dataclasses.fields(TrainConfig)):
        kind = click.Choice(spec.metadata["choices"]) if spec.metadata["choices"] else type(spec.default)
        command = click.option(f"--{spec.name.replace('_', '-')}", spec.name, type=kind,
                               help=f"{spec.metadata['help']} [default: {spec.default}]")(command)
    return command


@click.command()
@model_options
@click.option("--data", "data_path", required=True, type=click.Path(exists=True),
              help="A labelled file (one token and its tag per line, as ner-os eval reads; with --types), or the "
                   "Few-NERD INTER folder: inter_train_slice1.txt, inter_train_slice2.txt, type_names.json")
@click.option("--types", "type_names", type=click.Path(exists=True, dir_okay=False),
              help="With a data file: JSON object mapping each label to the plain-words description it is trained on")
@click.option("--format", "data_format", type=click.Choice(["bio", "conll"]), default="bio", show_default=True,
              help="With a data file: bio (token TAB tag) or conll (space-separated columns), as ner-os eval")
@click.option("--spans", is_flag=True,
              help="With a data file: also train the span detector on its gold spans (saved in <out>/spans; "
                   "--head <out> then uses it)")
@click.option("--dev-share", type=click.FloatRange(0, 1, max_open=True), default=0.2, show_default=True,
              help="With a data file: share of its sentences held out (seeded) and measured; 0: none")
@click.option("--dev-seed", type=int, default=13, show_default=True, help="With a data file: seed of the dev share")
@click.option("--out", type=click.Path(file_okay=False),
              help="Directory for the head [default: <data dir of ner-os>/heads/<profile>-L<layer>, with a data "
                   "file <data dir of ner-os>/heads/<file stem>-<profile>-L<layer>]")
@click.option("--hold-out-dev", is_flag=True,
              help="Few-NERD: leave the dev types out of training and print their R-Precision after every epoch")
@click.option("--train-sentences", type=int,
              help="Few-NERD: sentences sampled for training [default: all free of dev types]")
@click.option("--dev-sentences", type=int, help="Few-NERD: sentences sampled for the dev types [default: 2000]")
@train_config_options
@friendly_errors
def train(data_path, type_names, data_format, spans, dev_share, dev_seed, out, hold_out_dev, train_sentences,
          dev_sentences, profile, model, layer, head, backend, device, **hyper_parameters):
    """Train a projection head contrastively: on a labelled file of your own, or on Few-NERD INTER.

    \b
    ner-os train --data FILE --types NAMES.json [--format bio|conll] [--spans]
    ner-os train --data FEWNERD_FOLDER [--hold-out-dev]

    Anchors are the type descriptions, positives their mentions, negatives other types' mentions;
    value vectors are read once and cached, so later runs do not encode again. With a file, a seeded
    --dev-share of its sentences is held out and measured, training runs at least 100 steps unless
    --epochs is given (a small file makes short epochs), and a MODEL_CARD.md is written beside the
    head; use the result with --head OUT on load (with --replace-index on an existing index), search
    and eval. On Few-NERD without --hold-out-dev all 36 train types are used, as for the shipped head.
    """
    from pathlib import Path

    settings = settings_from(profile=profile, model=model, layer=layer, backend=backend, device=device)
    config = TrainConfig(**{name: value for name, value in hyper_parameters.items() if value is not None})
    if Path(data_path).is_dir():
        if type_names or spans:
            raise click.UsageError("--types and --spans go with a data file; a folder is read as Few-NERD INTER")
        _train_on_fewnerd(settings, data_path, out, config, hold_out_dev, train_sentences, dev_sentences)
        return
    if not type_names:
        raise click.UsageError(f"{data_path}: a data file needs --types NAMES.json (label -> description)")
    if hold_out_dev or train_sentences is not None or dev_sentences is not None:
        raise click.UsageError("--hold-out-dev, --train-sentences and --dev-sentences are for the Few-NERD folder; "
                               "a data file holds out --dev-share of its sentences")
    from ner_os.client import train_on_corpus
    from ner_os.config import redacted_command
    from ner_os.training.corpus import MIN_STEPS

    trained = train_on_corpus(settings, data_path, type_names, format=data_format, spans=spans, out=out, config=config,
                              dev_share=dev_share, dev_seed=dev_seed,
                              min_steps=0 if hyper_parameters["epochs"] is not None else MIN_STEPS,
                              command=redacted_command(["ner-os", *sys.argv[1:]]))
    for line in render.trained_corpus(trained, settings):
        click.echo(line)


def _train_on_fewnerd(settings, data_dir, out, config, hold_out_dev, train_sentences, dev_sentences) -> None:
    from ner_os.client import train_head
    from ner_os.training import DataPlan

    plan = DataPlan(**{name: value for name, value in (("n_train", train_sentences), ("n_dev", dev_sentences))
                       if value is not None})
    trained = train_head(settings, data_dir, out=out, config=config, plan=plan, hold_out_dev=hold_out_dev)
    click.echo(render.trained_head(trained, settings))


@click.command("load")
@click.argument("source", metavar="INPUT")
@cluster_options
@model_options
@index_shards_option
@click.option("--batch-tokens", type=int, help="Padded tokens per encoder batch [env NER_OS_BATCH_TOKENS; default: 2048]")
@click.option("--spans", type=click.Choice(["union", "encoder", "spacy", "given"]),
              help="Span detector for documents without given mentions: union (encoder + spaCy), encoder (read "
                   "from the loader's own forward pass), spacy, or given (detect nothing) [env NER_OS_SPANS; "
                   "default: union where a detector ships for the profile and layer (gemma3-270m, 15), else spacy]")
@click.option("--dry-run", is_flag=True, help="Read, check, detect and encode, but write nothing (needs no cluster)")
@click.option("--shard", default="0/1", show_default=True,
              help="i/N: load lines i+1, i+1+N, ... only, so that N workers (processes, GPUs, hosts) load the file once")
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="Continue after the checkpoint an earlier run of this input into this index left")
@click.option("--rejects", "rejects_path", type=click.Path(dir_okay=False),
              help="Where rejected lines are listed [default: <input>.rejects.jsonl beside the input]")
@click.option("--allow-rejects", is_flag=True, help="Exit 0 even when lines were rejected")
@click.option("--max-line-bytes", type=int, help="Longer lines are rejected [default: 8 MiB]")
@click.option("--progress/--no-progress", default=None, help="Progress bar [default: on a terminal]")
@click.option("--replace-index", is_flag=True,
              help="Delete the index first, keeping its registered types (re-embedded): after changing the "
                   "head or model")
@click.option("--deploy/--no-deploy", "deploy", default=None,
              help="Deploy the type encoder in ML Commons afterwards (ner-os model deploy) [default: when the "
                   "cluster has ML Commons]")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: this process; ray: Ray Data, the encoder on an actor pool across the Ray cluster's "
                   "machines and GPUs (pip install 'ner-os[ray]'; no --shard, and a rerun encodes again)")
@click.option("--ray-address", help="With --engine ray: the Ray cluster (e.g. auto, ray://head:10001) [default: a "
                                    "local Ray]")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="With --engine ray: encoder actors, each loading the model once")
@click.option("--gpus-per-worker", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="With --engine ray: GPUs per encoder actor (the encoder then runs on CUDA)")
@friendly_errors
def load_command(source, dry_run, shard, resume, rejects_path, allow_rejects, max_line_bytes, progress,
                 replace_index, deploy, engine, ray_address, workers, gpus_per_worker, **flags):
    """Load a JSONL corpus into the index (INPUT: a file, .gz or not, or - for stdin).

    One JSON object per line: "text" (required), "id" (optional; else a hash of the line's content),
    "mentions" (optional [{"start": s, "end": e}] character offsets; given mentions skip detection),
    any other field kept as metadata. Loading the same file again changes nothing; a changed
    document replaces its old mentions. Bad lines go to the reject file with their line number and
    reason, and everything else loads.

    \b
    Exit codes:
      0  every line loaded
      1  lines rejected, listed in the reject file (0 with --allow-rejects)
      2  an error: bad input path, options or settings, an unreachable or refusing cluster; nothing
         or only part was loaded (run the load again to resume)
      3  the input breaks off (a truncated or corrupt gzip): the lines before the break are loaded,
         the rest is missing
    """
    from ner_os.errors import BrokenInputError
    from ner_os.loader.records import MAX_LINE_BYTES, parse_shard
    from ner_os.loader import load

    if engine == "ray":  # the same load on Ray Data (ner_os.ray): the same documents, ids and rejects
        from ner_os.ray import load_file

        load = functools.partial(load_file, ray_address=ray_address, workers=workers, gpus_per_worker=gpus_per_worker)
    try:
        summary = load(source, settings_from(**flags), dry_run=dry_run, shard=parse_shard(shard), resume=resume,
                       rejects=rejects_path, max_line_bytes=max_line_bytes or MAX_LINE_BYTES, progress=progress,
                       replace_index=replace_index)
    except BrokenInputError as error:
        click.echo(error.summary.describe())
        click.echo(f"Error: {error}", err=True)
        sys.exit(EXIT_BROKEN_INPUT)
    click.echo(summary.describe())
    if not dry_run and deploy is not False:
        from ner_os.deploy import deploy_after_load

        deployed = deploy_after_load(settings_from(**flags), required=deploy is True)
        for line in render.deployed_model(deployed) if deployed is not None else []:
            click.echo(line)
    if summary.rejected and not allow_rejects:
        sys.exit(EXIT_REJECTS)


@click.command("eval")
@click.option("--data", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Labelled sentences: one token and its tag per line (tag in the last column), blank line between sentences")
@click.option("--format", "data_format", type=click.Choice(["bio", "conll"]), default="bio", show_default=True,
              help="bio (token TAB tag) or conll (space-separated columns); IOB1, IOB2 and IO tags, # comments and -DOCSTART- lines are understood in both")
@click.option("--types", "type_names", required=True, type=click.Path(exists=True, dir_okay=False),
              help="JSON object mapping each label to the plain-words description used as its query")
@click.option("--systems", default="bm25,dense,raw,ner-os,hybrid,ner-os-exact", show_default=True,
              help="Comma-separated, from bm25, dense, raw, ner-os, hybrid, ner-os-exact, raw-exact")
@click.option("--spans", "span_sources", default="gold,detected", show_default=True,
              help="Span sources of the mention systems: gold (the file's; or given), detected (the span detector's, "
                   "as --spans of load: env NER_OS_SPANS, default union where it fits), or a detector's name (union, encoder, spacy) "
                   "for detected spans from that detector")
@click.option("--limit", type=click.IntRange(min=1), help="Evaluate a seeded random sample of this many sentences")
@click.option("--seed", default=0, show_default=True, help="Seed of the --limit sample")
@click.option("--out", type=click.Path(file_okay=False), help="Directory for eval.md, eval.json and eval-r-precision.png")
@click.option("--keep-indexes", is_flag=True, help="Leave the eval's indexes in the cluster (named <index>-eval-<run id>-*)")
@click.option("--vector-cache", is_flag=True,
              help="Keep the sentences' token vectors under the cache dir (about 1 KB per token), so that a rerun "
                   "with another head, span source or index setting does not encode again")
@click.option("--progress/--no-progress", default=None, help="Progress bars [default: on a terminal]")
@cluster_options
@model_options
@friendly_errors
def eval_command(data, data_format, type_names, systems, span_sources, limit, seed, out, keep_indexes, vector_cache,
                 progress, **flags):
    """Retrieval quality of ner-os against BM25 and a sentence embedder on labelled data.

    Each sentence of DATA becomes a document; a document is relevant to a type when it holds a gold
    mention of that type, and the type's description (from --types) is the query. Every system
    ranks the same documents in the same OpenSearch (fresh indexes, deleted afterwards), and
    R-Precision, P@10, Recall@100 and MAP are printed per system, macro-averaged over the types.
    """
    from ner_os.config import redacted_command
    from ner_os.evaluation.report import markdown
    from ner_os.evaluation.run import evaluate

    result = evaluate(data, type_names, settings=settings_from(**flags), systems=systems, span_sources=span_sources,
                      data_format=data_format, limit=limit, seed=seed, out=out, keep_indexes=keep_indexes,
                      vector_cache=vector_cache, progress=progress, say=lambda message: click.echo(message, err=True),
                      command=redacted_command(["ner-os", *sys.argv[1:]]))
    click.echo(markdown(result))


@click.command("export")
@click.option("--profile", help="Model profile [env NER_OS_PROFILE; default: gemma3-270m]")
@click.option("--model", help="Local path or hub id overriding the profile's weights [env NER_OS_MODEL]")
@click.option("--layer", type=int, help="Block whose v_proj output is exported [env NER_OS_LAYER; default: the profile's]")
@click.option("--dtype", type=click.Choice(["fp32", "fp16", "int8"]), help="Graph precision [env NER_OS_DTYPE; default: int8 for a profile's "
              "own weights and layer on a CPU where measured (gemma3-270m), else fp32]")
@click.option("--out", type=click.Path(file_okay=False), help="Export directory [default: <cache dir>/exports/...]")
@click.option("--force", is_flag=True, help="Rebuild even when a matching export exists")
@friendly_errors
def export_command(out, force, **flags):
    """Export the encoder truncated after block L's v_proj to ONNX (graph, tokenizer, manifest.json).

    Prints the export directory. The runtime builds the export it needs by itself; this command
    builds one ahead of time or into a directory of your choice.
    """
    from ner_os.encoder.export import export_encoder

    click.echo(export_encoder(settings_from(**flags), out=out, force=force))
