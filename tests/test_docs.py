"""Every `benchsr` command in the README and docs/ is one the real CLI accepts: its subcommand
and every option exist and their values parse (nothing is run). Commands that need what this
machine lacks say so on their line (`# not run here: ...`)."""
import re
import shlex
from pathlib import Path

import pytest
import typer

try:                      # typer >= 0.20 carries its own click
    from typer import _click as click
except ImportError:       # pragma: no cover
    import click

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PREFIX = re.compile(r"^(?:\$ )?(?:\S*=\S* )*(?:\.venv/bin/benchsr|benchsr|\S*torchrun .*?-m benchsr\.cli)\s")


def _commands() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        fence, joined = False, ""
        for line in page.read_text().splitlines():
            if line.startswith("```"):
                fence = not fence
                continue
            if not fence:
                continue
            joined = f"{joined} {line.strip()}" if joined else line.strip()
            if joined.endswith("\\"):
                joined = joined[:-1].rstrip()
                continue
            for part in joined.split(" && "):
                if PREFIX.match(part.strip()):
                    found.append((page.name, part.strip()))
            joined = ""
    return found


COMMANDS = _commands()


def test_the_docs_have_commands():
    assert len(COMMANDS) > 20
    assert {page for page, _ in COMMANDS} >= {"README.md", "running.md", "infer.md"}


@pytest.mark.parametrize("page,line", COMMANDS, ids=[f"{p}:{i}" for i, (p, _) in enumerate(COMMANDS)])
def test_a_documented_command_parses(page, line):
    from benchsr.cli import app
    group = typer.main.get_command(app)
    text = line.split(" #")[0]
    # a synopsis marks optional parts [like this] and elides with ...
    args = [a.strip("[]") for a in shlex.split(PREFIX.sub("", text, count=1)) if a != "..."]
    assert args, line
    sub = group.get_command(click.Context(group), args[0])
    assert sub is not None, f"{page}: no command {args[0]!r} in: {line}"
    try:
        sub.make_context(args[0], args[1:])
    except click.UsageError as exc:
        pytest.fail(f"{page}: {line}\n  {exc.format_message()}")
