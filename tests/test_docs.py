"""Every `benchsr` command in the README and docs/ is one the real CLI accepts (its subcommand
and every option exist and their values parse), and one that a test runs: some test invokes its
subcommand with at least the options it shows (at smoke size, on the test's own files). Commands
that need what this machine lacks say so on their line (`# not run here: ...`)."""
import ast
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


# ---- every documented command is one that a test runs -------------------------------------------
# Read statically from the tests' own invocations (`CliRunner().invoke(app, [...])`,
# `[sys.executable, "-m", "benchsr.cli", ...]`, helpers that prepend a subcommand): a documented
# command is covered when some test runs its subcommand with at least the options it shows.

def _subcommands():
    from benchsr.cli import app
    group = typer.main.get_command(app)
    ctx = click.Context(group)
    return {name: group.get_command(ctx, name) for name in group.list_commands(ctx)}


def _param_names(sub, args) -> set[str]:
    """The names of the options among `args`, as the subcommand knows them (--no-wait: wait)."""
    by_opt = {o: p.name for p in sub.params for o in (*p.opts, *p.secondary_opts)}
    return {by_opt.get(a.split("=")[0], a.split("=")[0]) for a in args if a.startswith("-")}


def _strings(node, lists) -> list:
    """The string constants of a list literal, in order, with `*NAME` expanded where NAME is a
    list literal of the same file; anything else is None (a value only known at run time)."""
    out = []
    for item in node.elts:
        if isinstance(item, ast.Constant) and isinstance(item.value, str):
            out.append(item.value)
        elif isinstance(item, ast.Starred) and isinstance(item.value, ast.Name) \
                and item.value.id in lists:
            out.extend(_strings(lists[item.value.id], lists))
        elif isinstance(item, ast.Starred) and isinstance(item.value, ast.Name):
            out.append(("*", item.value.id))
        else:
            out.append(None)
    return out


def _invocations(subs) -> list[tuple[str, set[str]]]:
    found = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        tree = ast.parse(path.read_text())
        lists = {t.id: n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                 and isinstance(n.value, ast.List) for t in n.targets if isinstance(t, ast.Name)}
        helpers = {}                    # def helper(args): ... [..., "run", ..., *args]
        for fn in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
            for node in (n for n in ast.walk(fn) if isinstance(n, ast.List)):
                words = _strings(node, lists)
                cmd = next((w for w in words if isinstance(w, str) and w in subs), None)
                star = next((w[1] for w in words if isinstance(w, tuple)), None)
                params = [a.arg for a in (*fn.args.args, fn.args.vararg) if a is not None]
                if cmd and star in params:
                    helpers[fn.name] = (cmd, words)
        for node in ast.walk(tree):
            words = _strings(node, lists) if isinstance(node, ast.List) else None
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in helpers:
                cmd, base = helpers[node.func.id]     # helper([...]) or helper("a", "--b")
                given = node.args[0] if node.args and isinstance(node.args[0], ast.List) \
                    else ast.List(elts=node.args)
                words = [*base, *_strings(given, lists)]
            if not words:
                continue
            words = [w for w in words if isinstance(w, str)]
            cmd = next((w for w in words if w in subs), None)
            if cmd and (words[0] == cmd or "benchsr.cli" in words or "benchsr" in words):
                rest = words[words.index(cmd) + 1:]
                found.append((cmd, _param_names(subs[cmd], rest)))
    return found


def test_every_documented_command_is_run_by_a_test():
    subs = _subcommands()
    runs = _invocations(subs)
    missing = []
    for page, line in COMMANDS:
        text, _, comment = line.partition(" #")
        if "not run here:" in comment:
            assert comment.split("not run here:", 1)[1].strip(), f"{page}: no reason: {line}"
            continue
        args = [a.strip("[]") for a in shlex.split(PREFIX.sub("", text, count=1)) if a != "..."]
        wanted = _param_names(subs[args[0]], args[1:])
        if not any(cmd == args[0] and wanted <= opts for cmd, opts in runs):
            missing.append(f"{page}: {line}")
    assert not missing, "\n".join(["documented, run by no test:", *missing])
