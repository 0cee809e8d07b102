"""The package's shape: no import cycle between its modules, no module too long to read at once."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "src" / "tcwebhook"
LONGEST = 600
# Data models: one class per Tradecloud document or config section, read by looking up a name
# (config.py also holds the loader of its models).
MODELS = {"contract/models.py", "config.py"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(path: Path, modules: set[str]) -> set[str]:
    """The package's modules this file imports, at any depth, except under ``if TYPE_CHECKING``."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking_only(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    # "import a.b.c" also runs a and a.b: every enclosing package counts.
    result: set[str] = set()
    for target in found:
        parts = target.split(".")
        result.update(m for i in range(1, len(parts) + 1) if (m := ".".join(parts[:i])) in modules)
    result.discard(name)
    return result


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: imports(path, set(files)) for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return groups


def package_cycle_free(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph without the edges from a package ``__init__`` to its own submodules.

    A package importing its children to re-export them is how a package shows its public
    names; a cycle only counts when a module needs a module that (through others) needs it.
    """
    return {
        name: {t for t in targets if not t.startswith(name + ".")} for name, targets in graph.items()
    }


class TestImports:
    """No module of tcwebhook needs, through any chain of imports, a module that needs it."""

    def test_graph_is_read(self) -> None:
        graph = import_graph()
        assert "tcwebhook.receiver.app" in graph
        assert "tcwebhook.config" in graph["tcwebhook.receiver.app"]

    def test_finds_a_cycle(self) -> None:
        assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]

    def test_no_cycle(self) -> None:
        found = cycles(package_cycle_free(import_graph()))
        assert found == [], "import cycles: " + "; ".join(" ↔ ".join(g) for g in found)


class TestModuleSize:
    """Modules stay short enough to read in one sitting; data models are the exception."""

    @pytest.mark.parametrize(
        "path",
        [p for p in sorted(PACKAGE.rglob("*.py")) if str(p.relative_to(PACKAGE)) not in MODELS],
        ids=lambda p: str(p.relative_to(PACKAGE)),
    )
    def test_short(self, path: Path) -> None:
        lines = len(path.read_text(encoding="utf-8").splitlines())
        assert lines <= LONGEST, f"{path.relative_to(PACKAGE)} has {lines} lines (at most {LONGEST})"
