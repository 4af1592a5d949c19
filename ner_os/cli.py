"""The ``ner-os`` command line: each command is a thin shell over a function of the Python API."""

from __future__ import annotations

import functools
import sys

import click

from ner_os import __version__
from ner_os.config import Settings
from ner_os.errors import NerOsError
from ner_os.query.core import MENTION_MARGIN


def friendly_errors(command):
    """Turn user-facing errors into one line on stderr and exit code 2, never a stack trace."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except NerOsError as error:
            click.echo(f"Error: {error}", err=True)
            sys.exit(2)
        except ValueError as error:  # settings from the environment that do not parse
            click.echo(f"Error: {error}", err=True)
            sys.exit(2)

    return wrapper


PROMPTED_PASSWORD = "ner_os.prompted_password"  # key in click's context meta


def _prompt_password(context: click.Context, parameter, wanted: bool) -> None:
    if wanted:
        context.meta[PROMPTED_PASSWORD] = click.prompt("Password", hide_input=True, err=True)


def cluster_options(command):
    """The connection flags every command that talks to OpenSearch takes."""
    options = [
        click.option("--url", "opensearch_url", help="OpenSearch URL [env NER_OS_OPENSEARCH_URL; default: a local node]"),
        click.option("--index", help="Index name [env NER_OS_INDEX; default: ner-os]"),
        click.option("--username", help="Basic-auth user [env NER_OS_USERNAME]"),
        click.option("--password-prompt", is_flag=True, expose_value=False, callback=_prompt_password,
                     help="Ask for the basic-auth password [or env NER_OS_PASSWORD; never a flag value, which "
                          "shell history and ps would show]"),
        click.option("--ca-certs", help="CA bundle for https [env NER_OS_CA_CERTS]"),
        click.option("--client-cert", help="Client certificate (PEM) [env NER_OS_CLIENT_CERT]"),
        click.option("--client-key", help="Client key (PEM) [env NER_OS_CLIENT_KEY]"),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def model_options(command):
    """The model flags every command that encodes text takes."""
    options = [
        click.option("--profile", help="Model profile [env NER_OS_PROFILE; default: gemma3-270m]"),
        click.option("--model", help="Local path or hub id overriding the profile's weights [env NER_OS_MODEL]"),
        click.option("--layer", type=int, help="Layer whose value vectors are read [env NER_OS_LAYER]"),
        click.option("--head", help="Projection head directory [env NER_OS_HEAD]"),
        click.option("--backend", type=click.Choice(["onnx", "torch"]), help="Encoder backend [env NER_OS_BACKEND; default: onnx]"),
        click.option("--device", type=click.Choice(["cpu", "cuda"]), help="Where the encoder runs [env NER_OS_DEVICE; default: cpu]"),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="ner-os")
def cli():
    """Zero-shot named entity retrieval inside OpenSearch.

    Settings come from flags, then NER_OS_* environment variables, then defaults.
    """


def settings_from(**flags) -> Settings:
    context = click.get_current_context(silent=True)
    prompted = context.meta.get(PROMPTED_PASSWORD) if context is not None else None
    if prompted is not None:
        flags["password"] = prompted
    return Settings.resolve(**flags)


def _train_config_options(command):
    """One ``--flag`` per field of :class:`ner_os.training.core.TrainConfig`, its default in the help."""
    import dataclasses

    from ner_os.training.core import TrainConfig

    for spec in reversed(dataclasses.fields(TrainConfig)):
        kind = click.Choice(spec.metadata["choices"]) if spec.metadata["choices"] else type(spec.default)
        command = click.option(f"--{spec.name.replace('_', '-')}", spec.name, type=kind,
                               help=f"{spec.metadata['help']} [default: {spec.default}]")(command)
    return command


@cli.command()
@model_options
@click.option("--data", "data_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Few-NERD INTER folder: inter_train_slice1.txt, inter_train_slice2.txt, type_names.json")
@click.option("--out", type=click.Path(file_okay=False),
              help="Directory for the head [default: <data dir of ner-os>/heads/<profile>-L<layer>]")
@click.option("--hold-out-dev", is_flag=True,
              help="Leave the dev types out of training and print their R-Precision after every epoch")
@click.option("--train-sentences", type=int, help="Sentences sampled for training [default: all free of dev types]")
@click.option("--dev-sentences", type=int, help="Sentences sampled for the dev types [default: 2000]")
@_train_config_options
@friendly_errors
def train(data_dir, out, hold_out_dev, train_sentences, dev_sentences, profile, model, layer, head, backend, device,
          **hyper_parameters):
    """Train a projection head contrastively on the Few-NERD INTER train types.

    Value vectors are read once (torch backend) and cached; later runs at the same layer do not
    encode again. Anchors are the type descriptions, positives their mentions, negatives other
    types' mentions. Without --hold-out-dev all 36 train types are used, as for the shipped head.
    """
    from ner_os.training.core import DataPlan, TrainConfig, train_on_fewnerd

    settings = settings_from(profile=profile, model=model, layer=layer, backend=backend, device=device)
    config = TrainConfig(**{name: value for name, value in hyper_parameters.items() if value is not None})
    plan = DataPlan(**{name: value for name, value in (("n_train", train_sentences), ("n_dev", dev_sentences))
                       if value is not None})
    result = train_on_fewnerd(settings, data_dir, config, hold_out_dev=hold_out_dev, plan=plan)
    layer = result.head.encoder["layer"]
    target = out or str(settings.data_path / "heads" / f"{settings.profile}-L{layer}")
    result.head.save(target)
    last = result.history[-1]
    figures = ", ".join(f"{key} {value:.4f}" for key, value in last.items() if key != "epoch")
    click.echo(f"head for {settings.profile} layer {layer} saved to {target} "
               f"({len(result.head.manifest['training']['types'])} types, {result.seconds:.0f} s; {figures})")


@cli.group()
def opensearch():
    """A local OpenSearch 2.19 node with k-NN: the official Docker image when a Docker engine
    answers, otherwise the Maven launcher in tools/opensearch-node (Java 17 + Maven)."""


@opensearch.command("start")
@click.option("--port", type=int, default=0, show_default=True, help="HTTP port; 0 picks a free one")
@friendly_errors
def opensearch_start(port):
    """Start the local node (or report the one already running)."""
    from ner_os.store import local_node

    record = local_node.start(settings_from(), http_port=port)
    click.echo(f"OpenSearch is running at {record.url} ({record.kind}); export NER_OS_OPENSEARCH_URL={record.url}")


@opensearch.command("stop")
@friendly_errors
def opensearch_stop():
    """Stop the local node."""
    from ner_os.store import local_node

    click.echo("stopped the local OpenSearch node" if local_node.stop(settings_from()) else "no local OpenSearch node was running")


@opensearch.command("status")
@friendly_errors
def opensearch_status():
    """Print the local node's URL, version, health and plugins (exit code 1 when none runs)."""
    from ner_os.store import local_node

    node = local_node.status(settings_from())
    if node is None:
        click.echo("no local OpenSearch node is running (start one with: ner-os opensearch start)")
        sys.exit(1)
    click.echo(f"url:     {node.url}\nkind:    {node.kind}\nversion: {node.version}\nhealth:  {node.health}")
    click.echo("plugins: " + ", ".join(node.plugins))


@cli.group()
def templates():
    """Index templates and search pipelines of the document index."""


@templates.command("install")
@cluster_options
@click.option("--dimension", type=int, help="Mention vector size [default: the active head's output size]")
@click.option("--profile", help="Model profile whose head sets the dimension [env NER_OS_PROFILE]")
@click.option("--head", help="Projection head directory whose output size sets the dimension [env NER_OS_HEAD]")
@friendly_errors
def templates_install(dimension, **flags):
    """Install (idempotently) the index templates for --index, and the hybrid search pipelines when
    the cluster has neural-search."""
    from ner_os.store import index

    settings = settings_from(**flags)
    client = index.client_from_settings(settings)
    names = index.install_templates(client, settings, dimension or _head_output_dimension(settings))
    click.echo(f"index template {names.index_template} (components {', '.join(names.component_templates)})")
    click.echo("search pipelines: " + (", ".join(names.search_pipelines.values()) or "none (no neural-search plugin)"))
    from ner_os.errors import ClusterError
    from ner_os.query.core import install_search_template

    try:  # lang-mustache is a module in the official distribution, so _cat/plugins cannot tell
        click.echo(f"search template {install_search_template(client, settings.index)}")
    except ClusterError as error:
        click.echo(f"search template: none ({error})")


def _head_output_dimension(settings: Settings) -> int:
    """The head's output size: the --head directory, else the head shipped for the profile, else the
    profile's raw value size (no head)."""
    from ner_os.head import ProjectionHead, shipped_head_path
    from ner_os.profiles import resolve_profile

    if settings.head and settings.head.lower() != "none":
        return ProjectionHead.load(settings.head).out_dim
    shipped = shipped_head_path(settings.profile) if not settings.head else None
    if shipped is not None:
        return ProjectionHead.load(shipped).out_dim
    profile = resolve_profile(settings.profile)
    if profile.d_v is None:
        raise NerOsError(f"profile {profile.name} does not state its vector size; pass --dimension")
    return profile.d_v


@cli.command("load")
@click.argument("source", metavar="INPUT")
@cluster_options
@model_options
@click.option("--batch-tokens", type=int, help="Padded tokens per encoder batch [env NER_OS_BATCH_TOKENS; default: 2048]")
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
@friendly_errors
def load_command(source, dry_run, shard, resume, rejects_path, allow_rejects, max_line_bytes, progress,
                 replace_index, **flags):
    """Load a JSONL corpus into the index (INPUT: a file, .gz or not, or - for stdin).

    One JSON object per line: "text" (required), "id" (optional; else a hash of the line's content),
    "mentions" (optional [{"start": s, "end": e}] character offsets; given mentions skip detection),
    any other field kept as metadata. Loading the same file again changes nothing; a changed
    document replaces its old mentions. Bad lines go to the reject file with their line number and
    reason, and everything else loads. Exit code 1 when lines were rejected (see --allow-rejects),
    2 on an error.
    """
    from ner_os.loader.records import MAX_LINE_BYTES, parse_shard
    from ner_os.loader.load import load

    summary = load(source, settings_from(**flags), dry_run=dry_run, shard=parse_shard(shard), resume=resume,
                   rejects=rejects_path, max_line_bytes=max_line_bytes or MAX_LINE_BYTES, progress=progress,
                   replace_index=replace_index)
    click.echo(summary.describe())
    if summary.rejected and not allow_rejects:
        sys.exit(1)


def _type_query_options(command):
    """The flags of a type query, shared by ``search`` and ``dsl``."""
    options = [
        click.argument("description"),
        click.option("-n", "--size", default=10, show_default=True, help="Documents per page"),
        click.option("--offset", default=0, show_default=True, help="Documents to skip (the page's start)"),
        click.option("--k", type=int, help="Documents the k-NN search gathers [default: max(100, offset + size)]"),
        click.option("--no-hybrid", is_flag=True, help="k-NN only: no BM25 on the text fused in"),
        click.option("--min-score", type=float,
                     help="Radial search: every mention scoring at least this ((1 + cosine) / 2, 0-1); k-NN only"),
        click.option("--filter", "filters", multiple=True, metavar="FIELD=VALUE",
                     help="Document field condition, e.g. metadata.lang=en or metadata.year>=2000 (repeatable)"),
        click.option("--mentions", "mentions_per_hit", default=3, show_default=True,
                     help="At most this many matched mentions per document"),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _type_query_kwargs(size, offset, k, no_hybrid, min_score, filters, mentions_per_hit) -> dict:
    from ner_os.query.core import parse_filter_args

    return {"size": size, "offset": offset, "k": k, "hybrid": not no_hybrid, "min_score": min_score,
            "filters": parse_filter_args(filters), "mentions_per_hit": mentions_per_hit}


@cli.command()
@_type_query_options
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
    import json

    from ner_os.client import NerOs
    from ner_os.query.core import format_results

    with NerOs(settings_from(**flags)) as ner:
        results = ner.search_type(description, mention_margin=mention_margin,
                                  **_type_query_kwargs(size, offset, k, no_hybrid, min_score, filters, mentions_per_hit))
    if as_json:
        for rank, hit in enumerate(results.hits, start=results.offset + 1):
            click.echo(json.dumps({"rank": rank, **hit.to_dict()}, ensure_ascii=False))
        return
    if sys.stdout.isatty():
        mark = functools.partial(click.style, bold=True, fg="yellow")
    else:
        mark = "[[{}]]".format
    for line in format_results(results, mark):
        click.echo(line)


@cli.command()
@_type_query_options
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

    options = _type_query_kwargs(size, offset, k, no_hybrid, min_score, filters, mentions_per_hit)
    with NerOs(settings_from(**flags)) as ner:
        if template:
            options.pop("hybrid")
            click.echo(ner.template_request(description, **options))
        else:
            click.echo(ner.dsl(description, **options))


@cli.group("types")
def types_group():
    """Registered types: a stored type whose name tags every mention that fits it (mentions.types),
    so Dashboards can filter and count by type with no vector in sight."""


@types_group.command("add")
@click.argument("description")
@click.option("--name", help="Tag written into mentions.types [default: the description]")
@click.option("--min-score", type=float, default=None,
              help="Tag mentions scoring at least this ((1 + cosine) / 2, 0-1) [default: 0.8]")
@cluster_options
@model_options
@friendly_errors
def types_add(description, name, min_score, **flags):
    """Register type DESCRIPTION and tag the index's mentions with it (documents loaded later are
    tagged at load time). Adding a name again replaces its description and threshold."""
    from ner_os.client import NerOs
    from ner_os.registered_types import DEFAULT_MIN_SCORE

    with NerOs(settings_from(**flags)) as ner:
        report = ner.register_type(description, name=name,
                                   min_score=DEFAULT_MIN_SCORE if min_score is None else min_score)
    click.echo(report.describe())


@types_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per type")
@cluster_options
@friendly_errors
def types_list(as_json, **flags):
    """The types registered for the index."""
    import json

    from ner_os.client import NerOs

    with NerOs(settings_from(**flags)) as ner:
        registered = ner.registered_types()
    for item in registered:
        if as_json:
            click.echo(json.dumps({"name": item.name, "description": item.description, "min_score": item.min_score,
                                   "dim": len(item.vector), "updated_at": item.updated_at}, ensure_ascii=False))
        else:
            click.echo(f"{item.name}\tmin-score {item.min_score:g}\t{item.description!r}\t{item.updated_at}")
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
        for report in ner.refresh_types(names):
            click.echo(report.describe())


@cli.command("eval")
@click.option("--data", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Labelled sentences: one token and its tag per line (tag in the last column), blank line between sentences")
@click.option("--format", "data_format", type=click.Choice(["bio", "conll"]), default="bio", show_default=True,
              help="bio (token TAB tag) or conll (space-separated columns); IOB1, IOB2 and IO tags, # comments and -DOCSTART- lines are understood in both")
@click.option("--types", "type_names", required=True, type=click.Path(exists=True, dir_okay=False),
              help="JSON object mapping each label to the plain-words description used as its query")
@click.option("--systems", default="bm25,dense,raw,ner-os,hybrid,ner-os-exact", show_default=True,
              help="Comma-separated, from bm25, dense, raw, ner-os, hybrid, ner-os-exact, raw-exact")
@click.option("--spans", "span_sources", default="gold,detected", show_default=True,
              help="Span sources of the mention systems: gold (the file's), detected (the span detector's), or both")
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
    from ner_os.evaluation.report import markdown
    from ner_os.evaluation.run import evaluate

    result = evaluate(data, type_names, settings=settings_from(**flags), systems=systems, span_sources=span_sources,
                      data_format=data_format, limit=limit, seed=seed, out=out, keep_indexes=keep_indexes,
                      vector_cache=vector_cache, progress=progress, say=lambda message: click.echo(message, err=True),
                      command=" ".join(["ner-os", *sys.argv[1:]]))
    click.echo(markdown(result))


@cli.command("export")
@click.option("--profile", help="Model profile [env NER_OS_PROFILE; default: gemma3-270m]")
@click.option("--model", help="Local path or hub id overriding the profile's weights [env NER_OS_MODEL]")
@click.option("--layer", type=int, help="Block whose v_proj output is exported [env NER_OS_LAYER; default: the profile's]")
@click.option("--dtype", type=click.Choice(["fp32", "fp16", "int8"]), help="Graph precision [env NER_OS_DTYPE; default: fp32]")
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


def main():  # console-script entry point
    cli()
