"""Write docs/cli.md from the CLI's own --help texts: `python tools/gen_cli_docs.py`.

tests/unit/test_cli_docs.py fails when docs/cli.md and the CLI drift apart.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

DOCS_PATH = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
WIDTH = 100


def render_cli_reference() -> str:
    from ner_os.cli import cli

    sections = [
        "# CLI reference\n",
        "Generated from `--help` by `python tools/gen_cli_docs.py`; a test fails when it drifts.\n",
    ]
    # the group's own context settings (-h as well as --help), as when the CLI runs: click caches a
    # command's help option, so rendering without them would depend on what ran before
    root = click.Context(cli, info_name="ner-os", terminal_width=WIDTH, max_content_width=WIDTH, **cli.context_settings)
    for path, command, ctx in _walk(cli, root):
        title = " ".join(path)
        sections.append(f"## `{title}`\n\n```\n{command.get_help(ctx).rstrip()}\n```\n")
    return "\n".join(sections)


def _walk(command, ctx, path=("ner-os",)):
    yield path, command, ctx
    if isinstance(command, click.Group):
        for name in sorted(command.list_commands(ctx)):
            sub = command.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            sub_ctx = click.Context(sub, info_name=name, parent=ctx, terminal_width=WIDTH, max_content_width=WIDTH)
            yield from _walk(sub, sub_ctx, path + (name,))


if __name__ == "__main__":
    DOCS_PATH.write_text(render_cli_reference(), encoding="utf-8")
    print(f"wrote {DOCS_PATH}", file=sys.stderr)
