"""The house: rooms by purpose with no import circle, plugins that use only the faces, small
functions, and the old flat import paths still working for outside plugins."""
import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "benchsr"
FACES = {"benchsr", "benchsr.contracts", "benchsr.nn", "benchsr.data", "benchsr.evaluation"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The benchsr modules `path` imports, at its top or lazily inside a function."""
    found, here = set(), _module_name(path)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:      # relative: resolve it
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            node.module = f"{base}.{node.module}" if node.module else base
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("benchsr"):
            for alias in node.names:        # `from benchsr.run import best` imports a module
                sub = f"{node.module}.{alias.name}"
                found.add(sub if (PKG.parent / (sub.replace(".", "/") + ".py")).is_file()
                          else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("benchsr")}
    return found


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in PKG.rglob("*.py")}


def test_no_import_circle():
    graph, state, path = _graph(), {}, []

    def visit(node):
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt == node or nxt not in graph:
                continue
            if state.get(nxt) == "open":
                raise AssertionError("import circle: " + " -> ".join(path[path.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = "done"
    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_plugins_import_only_the_faces():
    deep = []
    for path in [*(ROOT / "methods").rglob("*.py"), *(ROOT / "datasets").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("benchsr"):
                own = node.module.startswith(("benchsr.methods", "benchsr.datasets"))
                if not own and node.module not in FACES:
                    deep.append(f"{path.relative_to(ROOT)}: from {node.module}")
    assert not deep, deep


def test_small_functions_and_a_short_runner():
    long = []
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                # the body, from its first statement: a CLI command's typer options are its signature
                if node.end_lineno - node.body[0].lineno + 1 > 50:
                    long.append(f"{path.relative_to(ROOT)}:{node.name}")
    assert not long, long
    assert len((PKG / "run" / "runner.py").read_text().splitlines()) <= 220


@pytest.mark.parametrize("old,new", [("benchsr.volumes", "benchsr.data.volumes"),
                                     ("benchsr.gan", "benchsr.nn.gan"),
                                     ("benchsr.runner", "benchsr.run.runner"),
                                     ("benchsr.cli_common", "benchsr.cli.common")])
def test_old_flat_paths_are_the_same_modules(old, new):
    assert importlib.import_module(old) is importlib.import_module(new)

