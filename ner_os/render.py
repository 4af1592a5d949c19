"""Terminal output: the lines the CLI prints for what the library returns.

Only the CLI uses this module; the library returns objects and leaves their display here. It
imports nothing heavy at run time (the types below are for annotations only), so that the CLI can
import it at start-up and ``ner-os --help`` stays fast.
"""

from __future__ import annotations

import csv
import functools
import io
import json
from typing import TYPE_CHECKING, Any, Callable, Sequence

import click

if TYPE_CHECKING:
    from ner_os.config import Settings
    from ner_os.query.model import MentionMatch, TypeResults
    from ner_os.registered_types import RegisteredType
    from ner_os.store.node.lifecycle import NodeStatus


def highlight(text: str, mentions: Sequence[MentionMatch], mark: Callable[[str], str],
              width: int | None = 300) -> str:
    """The text with each mention's span passed through ``mark`` (spans that overlap a better one are
    left plain); cut to about ``width`` characters around the best mention when longer."""
    chosen: list[MentionMatch] = []
    for mention in mentions:  # best first
        inside = 0 <= mention.start < mention.end <= len(text)
        if inside and all(mention.end <= other.start or mention.start >= other.end for other in chosen):
            chosen.append(mention)
    begin, end = 0, len(text)
    if width is not None and len(text) > width and chosen:
        centre = (chosen[0].start + chosen[0].end) // 2
        begin = max(0, min(centre - width // 2, len(text) - width))
        end = begin + width
    pieces, cursor = [], begin
    for mention in sorted(chosen, key=lambda m: m.start):
        if mention.start < begin or mention.end > end:
            continue
        pieces += [text[cursor:mention.start], mark(text[mention.start:mention.end])]
        cursor = mention.end
    pieces.append(text[cursor:end])
    return ("…" if begin > 0 else "") + "".join(pieces) + ("…" if end < len(text) else "")


def format_results(results: TypeResults, mark: Callable[[str], str]) -> list[str]:
    """Readable lines: rank, score and id, the highlighted text, then the mentions with their scores."""
    if not results.hits:
        return [f"no document of index {results.index!r} mentions a {results.description!r}"]
    lines = []
    for rank, hit in enumerate(results.hits, start=results.offset + 1):
        lines.append(f"{rank}. {hit.score:.4f}  {hit.id}")
        lines.append("   " + highlight(hit.text.replace("\n", " "), hit.mentions, mark))
        lines.append("   " + ", ".join(f"{m.surface} {m.score:.3f} [{m.start}:{m.end}]" for m in hit.mentions))
    return lines


def terminal_mark(tty: bool) -> Callable[[str], str]:
    """How a matched mention is marked: bold yellow on a terminal, ``[[...]]`` in a pipe or file."""
    return functools.partial(click.style, bold=True, fg="yellow") if tty else "[[{}]]".format


def results_json(results: TypeResults) -> list[str]:
    """One JSON object per hit: its rank, id, score, source and mentions."""
    return [json.dumps({"rank": rank, **hit.to_dict()}, ensure_ascii=False)
            for rank, hit in enumerate(results.hits, start=results.offset + 1)]


RESULT_FORMATS = ("table", "jsonl", "csv")
CSV_COLUMNS = ("id", "score", "text", "mentions")


def results_csv(results: TypeResults) -> list[str]:
    """A header, then one CSV row per hit: id, score, text and its mentions as ``surface:start-end``
    joined by ``; `` (fields with commas, quotes or newlines quoted as RFC 4180 says)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for hit in results.hits:
        mentions = "; ".join(f"{m.surface}:{m.start}-{m.end}" for m in hit.mentions)
        writer.writerow([hit.id, f"{hit.score:.6f}", hit.text, mentions])
    return [buffer.getvalue().removesuffix("\n")]


def search_results(results: TypeResults, output_format: str, tty: bool = False) -> list[str]:
    """What ``ner-os search`` prints in ``output_format`` (one of :data:`RESULT_FORMATS`)."""
    if output_format == "jsonl":
        return results_json(results)
    if output_format == "csv":
        return results_csv(results)
    if output_format == "table":
        return format_results(results, terminal_mark(tty))
    raise ValueError(f"output format {output_format!r}: expected one of {', '.join(RESULT_FORMATS)}")


def registered_type_line(item: RegisteredType, as_json: bool = False) -> str:
    if as_json:
        return json.dumps({"name": item.name, "description": item.description, "min_score": item.min_score,
                           "dim": len(item.vector), "updated_at": item.updated_at}, ensure_ascii=False)
    return f"{item.name}\tmin-score {item.min_score:g}\t{item.description!r}\t{item.updated_at}"


def node_status(node: NodeStatus) -> list[str]:
    return [f"url:     {node.url}\nkind:    {node.kind}\nversion: {node.version}\nhealth:  {node.health}",
            "plugins: " + ", ".join(node.plugins)]


def node_started(record: Any) -> list[str]:
    """``record``: a :class:`ner_os.store.node.lifecycle.NodeRecord`. Where the node is and, when secure,
    where its CA and credentials file are: the path, never a password."""
    members = len(record.members) or 1
    extras = ", ".join([*record.features, *([f"{members} nodes"] if members > 1 else [])])
    lines = [f"OpenSearch is running at {record.url} ({record.kind}{', ' + extras if extras else ''}); "
             f"export NER_OS_OPENSEARCH_URL={record.url}"]
    if record.secure:
        lines += [f"CA certificate:   {record.ca}; export NER_OS_CA_CERTS={record.ca}",
                  f"credentials file: {record.credentials} (0600; users admin, ner_os_loader, ner_os_searcher)",
                  "export NER_OS_USERNAME=ner_os_loader and NER_OS_PASSWORD=<its password in that file>"]
    return lines


def installed_templates(installed: Any) -> list[str]:
    """``installed``: a :class:`ner_os.client.InstalledTemplates` (render sits beside the client, not over it)."""
    names = installed.names
    lines = [f"index template {names.index_template} (components {', '.join(names.component_templates)})",
             "search pipelines: " + (", ".join(names.search_pipelines.values()) or "none (no neural-search plugin)")]
    if installed.search_template is not None:
        lines.append(f"search template {installed.search_template}")
    else:
        lines.append(f"search template: none ({installed.search_template_error})")
    return lines


def trained_head(trained: Any, settings: Settings) -> str:
    """One line for a :class:`ner_os.client.TrainedHead`: where the head went, how many types it
    learnt, how long it took, its last figures."""
    result = trained.result
    last = result.history[-1]
    figures = ", ".join(f"{key} {value:.4f}" for key, value in last.items() if key != "epoch")
    return (f"head for {settings.profile} layer {result.head.encoder['layer']} saved to {trained.path} "
            f"({len(result.head.manifest['training']['types'])} types, {result.seconds:.0f} s; {figures})")


def removed_index(removed: Any) -> list[str]:
    """The lines for a :class:`ner_os.store.removal.RemovedIndex`: what ``ner-os index delete`` removed."""
    lines = [f"deleted index {removed.index!r} ({removed.documents} documents) and what was made for it:"]
    lines += [f"  {what}" for what in removed.removed[1:]]
    lines.append(f"  {removed.type_records} registered-type record{'s' if removed.type_records != 1 else ''}")
    return lines


def converted_head(head: Any) -> str:
    """One line for a :class:`ner_os.head.ProjectionHead` converted by ``ner-os head convert``."""
    encoder = head.encoder
    return (f"head for {encoder['profile']} layer {encoder['layer']} ({head.in_dim} -> {head.hidden_dim} -> "
            f"{head.out_dim}) written to {head.manifest['source']}")


def deployed_model(deployed: Any) -> list[str]:
    """``deployed``: a :class:`ner_os.deploy.DeployedModel`: the model, reused or new, and where it is the default."""
    how = "reused" + (", deployed again" if deployed.redeployed else "") if deployed.reused else "registered and deployed"
    lines = [f"ML Commons model {deployed.model_id} ({deployed.name}, {deployed.dim}-d, {how}, {deployed.seconds:.0f} s)"]
    if deployed.index is None:
        lines.append("no index yet: run `ner-os model deploy` again after `ner-os load` to make it the index's default")
    else:
        lines.append(f"index {deployed.index}: _meta.ner_os_model records it; default search pipeline {deployed.pipeline}")
        lines.append(f'try: curl -s -H "Content-Type: application/json" "$NER_OS_OPENSEARCH_URL/{deployed.index}/_search" '
                     f'-d \'{{"query": {{"nested": {{"path": "mentions", "score_mode": "max", "query": {{"neural": '
                     f'{{"mentions.vector": {{"query_text": "dinosaur", "k": 10, "expand_nested_docs": true}}}}}}, '
                     f'"inner_hits": {{"_source": ["mentions.surface"]}}}}}}, "_source": ["text"]}}\'')
    return lines


def span_previews(previews: Sequence[Any], mark: Callable[[str], str]) -> list[str]:
    """Per text (a :class:`ner_os.loader.preview.SpanPreview`), one line per detector: the text with
    the spans it found marked, and how many; ``(none)`` where it found nothing."""
    lines: list[str] = []
    width = max((len(name) for preview in previews for name in preview.spans), default=0)
    for number, preview in enumerate(previews, start=1):
        lines.append(f"{preview.where or f'text {number}'}:")
        for name, spans in preview.spans.items():
            marked = _marked(preview.text.replace("\n", " "), spans, mark) if spans else "(none)"
            lines.append(f"  {name:<{width}}  {len(spans):>2}  {marked}")
    return lines


def _marked(text: str, spans: Sequence[Any], mark: Callable[[str], str]) -> str:
    pieces, cursor = [], 0
    for span in sorted(spans, key=lambda s: s.start):
        if span.start < cursor:
            continue
        pieces += [text[cursor:span.start], mark(text[span.start:span.end])]
        cursor = span.end
    return "".join(pieces + [text[cursor:]])
