"""Terminal output: the lines the CLI prints for what the library returns.

Only the CLI uses this module; the library returns objects and leaves their display here. It
imports nothing heavy at run time (the types below are for annotations only), so that the CLI can
import it at start-up and ``ner-os --help`` stays fast.
"""

from __future__ import annotations

import functools
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


def registered_type_line(item: RegisteredType, as_json: bool = False) -> str:
    if as_json:
        return json.dumps({"name": item.name, "description": item.description, "min_score": item.min_score,
                           "dim": len(item.vector), "updated_at": item.updated_at}, ensure_ascii=False)
    return f"{item.name}\tmin-score {item.min_score:g}\t{item.description!r}\t{item.updated_at}"


def node_status(node: NodeStatus) -> list[str]:
    return [f"url:     {node.url}\nkind:    {node.kind}\nversion: {node.version}\nhealth:  {node.health}",
            "plugins: " + ", ".join(node.plugins)]


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
