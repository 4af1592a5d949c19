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
    from ner_os.query.combined import CombinedResults
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
    """Readable lines: a header (how many documents match, what the score and the ranking are), then per
    hit its rank, score and id, the highlighted text, and the mentions with their scores."""
    if results.error is not None:
        return [f"{results.description!r} failed: {results.error}"]
    if not results.hits:
        return [f"no document of index {results.index!r} mentions a {results.description!r}"]
    fused = results.rank_kind != "knn"
    lines = [results_header(results)]
    for rank, hit in enumerate(results.hits, start=results.offset + 1):
        ranked_by = hit.score if hit.rank_score is None else hit.rank_score
        lines.append(f"{rank}. {hit.score:.4f}  {hit.id}" + (f"  ({results.rank_kind} {ranked_by:.4f})" if fused else ""))
        lines.append("   " + highlight(hit.text.replace("\n", " "), hit.mentions, mark))
        lines.append("   " + ", ".join(f"{m.surface} {m.score:.3f} [{m.start}:{m.end}]" for m in hit.mentions))
    return lines


def results_header(results: TypeResults) -> str:
    """``"dinosaur": 87 documents (knn); score: ...``: the count, the mode, the score's scale and what ranked."""
    from ner_os.query.model import RANK_KINDS, SCORE_SCALE

    ranked = "" if results.rank_kind == "knn" else f"; ranked by {RANK_KINDS[results.rank_kind]}, in brackets"
    return f"{results.description!r}: {documents(results)} ({results.mode}); score: {SCORE_SCALE}{ranked}"


def documents(results: TypeResults) -> str:
    """``87 documents``, ``at least 10,000 documents`` (OpenSearch's count), or the page's size when not counted."""
    if results.total is None:
        return f"{len(results)} document{'s' if len(results) != 1 else ''} shown"
    bound = "at least " if results.total_relation == "gte" else ""
    return f"{bound}{results.total:,} document{'s' if results.total != 1 else ''}"


def terminal_mark(tty: bool) -> Callable[[str], str]:
    """How a matched mention is marked: bold yellow on a terminal, ``[[...]]`` in a pipe or file."""
    return functools.partial(click.style, bold=True, fg="yellow") if tty else "[[{}]]".format


def _query_fields(results: TypeResults, number: int | None) -> dict[str, Any]:
    return {} if number is None else {"query": number, "description": results.description}


def results_json(results: TypeResults, number: int | None = None) -> list[str]:
    """One JSON object per hit: its rank, id, score, rank score, source, mentions and the query's total;
    ``number`` (a query of several): with the query's number and description first; a failed query: one
    object with its ``error``."""
    head = _query_fields(results, number)
    if results.error is not None:
        return [json.dumps({**head, "error": results.error}, ensure_ascii=False)]
    total = {"total": results.total, "total_relation": results.total_relation}
    return [json.dumps({**head, "rank": rank, **hit.to_dict(), **total}, ensure_ascii=False)
            for rank, hit in enumerate(results.hits, start=results.offset + 1)]


RESULT_FORMATS = ("table", "jsonl", "csv")
CSV_COLUMNS = ("id", "score", "rank_score", "total", "total_relation", "text", "mentions")


def results_csv(results: Sequence[TypeResults], numbered: bool = False) -> list[str]:
    """A header, then one CSV row per hit: id, score, rank score, the query's total (and its relation),
    text and its mentions as ``surface:start-end`` joined by ``; `` (fields with commas, quotes or
    newlines quoted as RFC 4180 says); ``numbered``: each row starts with the query's number and
    description. A failed query has no row (the CLI names it on stderr)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow((("query", "description") if numbered else ()) + CSV_COLUMNS)
    for number, result in enumerate(results, start=1):
        for hit in result.hits:
            mentions = "; ".join(f"{m.surface}:{m.start}-{m.end}" for m in hit.mentions)
            rank_score = hit.score if hit.rank_score is None else hit.rank_score
            writer.writerow([*((number, result.description) if numbered else ()), hit.id, f"{hit.score:.6f}",
                             f"{rank_score:.6f}", "" if result.total is None else result.total, result.total_relation,
                             hit.text, mentions])
    return [buffer.getvalue().removesuffix("\n")]


def search_results(results: TypeResults | list[TypeResults], output_format: str, tty: bool = False) -> list[str]:
    """What ``ner-os search`` prints in ``output_format`` (one of :data:`RESULT_FORMATS`) for one query's
    results, or a list of several queries' (numbered from 1: ``[N]`` above each table, ``query`` and
    ``description`` fields in jsonl and csv)."""
    several = isinstance(results, list)  # search_types' answer: numbered, even a batch of one
    batch = results if several else [results]
    if output_format == "jsonl":
        return [line for number, result in enumerate(batch, start=1)
                for line in results_json(result, number if several else None)]
    if output_format == "csv":
        return results_csv(batch, numbered=several)
    if output_format == "table":
        mark = terminal_mark(tty)
        return [line for number, result in enumerate(batch, start=1)
                for line in ([""] if several and number > 1 else []) + ([f"[{number}]"] if several else [])
                + format_results(result, mark)]
    raise ValueError(f"output format {output_format!r}: expected one of {', '.join(RESULT_FORMATS)}")


def combined_results(results: CombinedResults, as_json: bool, tty: bool = False) -> list[str]:
    """What ``ner-os combine`` prints: each clause's threshold, then per document its matched mentions
    by clause (table), or one JSON object per document."""
    if as_json:
        return [json.dumps({"rank": rank, **hit.to_dict()}, ensure_ascii=False)
                for rank, hit in enumerate(results.hits, start=1)]
    mark = terminal_mark(tty)
    lines = [f"{item.label}  min score {score:.4f}" + (f" ({item.threshold.spec()})" if item.threshold.relative else "")
             for item, score in zip(results.clauses, results.thresholds)]
    lines.append(f"{results.total:,} documents match" + (f", the best {len(results)}:" if results.hits else ""))
    for rank, hit in enumerate(results.hits, start=1):
        mentions = [mention for _, matched in hit.matches for mention in matched]
        lines += [f"{rank}. {hit.score:.4f}  {hit.id}", "   " + highlight(hit.text.replace("\n", " "), mentions, mark)]
        lines += [f"   {label}: " + ", ".join(f"{m.surface} {m.score:.3f}" for m in matched)
                  for label, matched in hit.matches]
    return lines


def registered_type_line(item: RegisteredType, as_json: bool = False) -> str:
    if as_json:
        return json.dumps({"name": item.name, "description": item.description, "min_score": item.min_score,
                           "threshold": item.threshold or None, "dim": len(item.vector), "updated_at": item.updated_at},
                          ensure_ascii=False)
    rule = f" ({item.threshold})" if item.threshold else ""
    return f"{item.name}\tmin-score {item.min_score:g}{rule}\t{item.description!r}\t{item.updated_at}"


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



def trained_corpus(trained: Any, settings: Settings) -> list[str]:
    """The lines for a :class:`ner_os.client.TrainedCorpus`: where the head (and detector) went, the dev figures."""
    training = trained.training
    head = training.head.head
    lines = [f"head for {settings.profile} layer {head.encoder['layer']} saved to {trained.path} "
             f"({len(head.manifest['training']['types'])} types, {len(training.split.train)} train / "
             f"{len(training.split.dev)} dev sentences, {training.head.seconds:.0f} s)"]
    if training.dev:
        names = {"trained": "this head", "shipped_head": "shipped head", "raw_vectors": "raw vectors"}
        figures = ", ".join(f"{names.get(k, k)} {v:.4f}" for k, v in training.dev["r_precision"].items())
        lines.append(f"dev R-Precision ({len(training.dev['types'])} types, gold spans): {figures}")
    if trained.detector_path is not None:
        dev = training.detector.record.figures.get("dev", {})
        shown = "; ".join(f"{name} {s['cased']['same_end_recall']:.3f} cased, {s['lower']['same_end_recall']:.3f} lowercased"
                          for name, s in dev.items())
        lines.append(f"span detector saved to {trained.detector_path}" + (f" (dev same-end recall: {shown})" if shown else ""))
    lines.append(f"model card: {trained.card_path}")
    return lines

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


def _marked(text: str, spans: Sequence[Any], mark: Callable[[str], str], start: int = 0, end: int | None = None) -> str:
    """``text[start:end]`` with each span marked; a span inside another (a name in a phrase) is marked
    inside the outer one's mark; a span crossing an earlier one is left plain."""
    end = len(text) if end is None else end
    pieces, cursor = [], start
    ordered = sorted((s for s in spans if start <= s.start and s.end <= end), key=lambda s: (s.start, -s.end))
    for span in ordered:
        if span.start < cursor:
            continue
        inner = [s for s in ordered if s is not span and span.start <= s.start and s.end <= span.end]
        pieces += [text[cursor:span.start], mark(_marked(text, inner, mark, span.start, span.end))]
        cursor = span.end
    return "".join(pieces + [text[cursor:end]])
