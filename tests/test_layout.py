"""The layout of ``src/``: the rules that keep the house easy to change, checked on every run.

Read from the source (the AST), not by importing it: a rule broken in a module no test imports is
still found.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from keeperhub_scheduler.runs import RunStatus

PACKAGE = "keeperhub_scheduler"
ROOT = Path(__file__).resolve().parent.parent / "src" / PACKAGE

# The engine runs schedules; the operator's layers are built on it, never the other way round.
ENGINE = ("runs", "db", "dispatcher", "executor", "transport", "keeperhub", "telemetry")
OPERATOR = ("management", "api", "cli", "dev", "ui", "processes")

# Status words that are another vocabulary's, spelled the same (file, word: why).
OTHER_WORDS = {
    ("dev/standin.py", "running"): "KeeperHub's answer to the execute call",
    ("dispatcher/loop.py", "pending"): "the name of a field of the pass's log line",
    ("dispatcher/loop.py", "skipped"): "the name of a field of the pass's log line",
    ("dispatcher/loop.py", "failed"): "the name of a field of a log line (runs the queue refused)",
}


def modules() -> Iterator[tuple[str, Path]]:
    """Every module of the package, by its dotted name (``keeperhub_scheduler.db.store``)."""
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def imports(name: str, path: Path, *, runtime_only: bool = True) -> set[str]:
    """The package's modules ``name`` imports (``if TYPE_CHECKING:`` blocks left out: they are
    annotations, never executed)."""
    found: set[str] = set()
    known = {module for module, _ in modules()}
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]

    def visit(node: ast.AST) -> None:
        if runtime_only and isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # from .x import y: relative to the module's package
                parent = ".".join(package[: len(package) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            # ``from a import b`` imports the module a.b when there is one, else a name of a.
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in known else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree(path))
    return {module for module in found if module in known and module != name}


def graph() -> dict[str, set[str]]:
    return {name: imports(name, path) for name, path in modules()}


def test_the_package_root_holds_at_most_eight_modules() -> None:
    root = sorted(path.name for path in ROOT.glob("*.py"))
    assert len(root) <= 8, root


def test_no_import_cycle() -> None:
    edges = graph()
    cycles: list[list[str]] = []
    state: dict[str, str] = {}

    def walk(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for target in sorted(edges[node]):
            if state.get(target) == "open":
                cycles.append([*trail[trail.index(target) :], target])
            elif target not in state:
                walk(target, [*trail, target])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            walk(node, [node])
    assert cycles == []


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_the_engine_never_imports_the_operators_layers() -> None:
    upward = {
        (name, target)
        for name, path in modules()
        if layer(name) in ENGINE
        for target in imports(name, path, runtime_only=False)
        if layer(target) in OPERATOR
    }
    assert upward == set()


def test_no_module_outside_transport_names_sqs() -> None:
    """Code outside ``transport/`` sees only the ``Transport`` protocol and the factory; the
    settings (``config``) are where a transport's variables live."""
    named: list[tuple[str, str]] = []
    for name, path in modules():
        if layer(name) == "transport" or name.endswith(".config"):
            continue
        for node in ast.walk(tree(path)):
            words: list[str] = []
            if isinstance(node, ast.Name):
                words = [node.id]
            elif isinstance(node, ast.Attribute):
                words = [node.attr]
            elif isinstance(node, ast.alias):
                words = [node.name, node.asname or ""]
            elif isinstance(node, ast.ImportFrom):
                words = [node.module or ""]
            named += [(relative(path), word) for word in words if "sqs" in word.lower()]
    assert named == []


def test_no_dialect_is_asked_for_outside_db() -> None:
    asked = [
        relative(path)
        for name, path in modules()
        if layer(name) != "db" and "dialect.name" in path.read_text()
    ]
    assert asked == []


def test_status_words_are_written_only_in_the_run_vocabulary_and_the_migrations() -> None:
    words = {status.value for status in RunStatus}
    written = []
    for name, path in modules():
        if name == f"{PACKAGE}.runs" or ".db.migrations" in name:
            continue
        for node in ast.walk(tree(path)):
            if isinstance(node, ast.Constant) and node.value in words:
                key = (relative(path), node.value)
                if key not in OTHER_WORDS:
                    written.append((*key, node.lineno))
    assert written == []


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("keeperhub_scheduler.dispatcher.claim", "keeperhub_scheduler.db.store"),
        ("keeperhub_scheduler.processes", "keeperhub_scheduler.transport"),
    ],
)
def test_the_import_reader_sees_what_python_imports(module: str, expected: str) -> None:
    """The rules above are only as good as the import reader they use."""
    path = dict(modules())[module]
    assert expected in imports(module, path)
