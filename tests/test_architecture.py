"""The import graph keeps the layers one-way: library -> experiments -> report -> CLI (ARCHITECTURE.md).

Every import counts, at module level or inside a function: an import hidden in a function is still a dependency.
"""
import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "monosemantic"
UPPER = ("experiments", "report", "cli")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in (SRC / PACKAGE).rglob("*.py")}


def _imports(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """The package's modules that `path` imports ("from a import b" names a.b when that is a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        found.update(t for t in targets if t == PACKAGE or t.startswith(PACKAGE + "."))
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, name, modules) for name, path in modules.items()}


def _layer(module: str) -> str:
    part = module.split(".")[1] if "." in module else ""
    if part == "__main__":  # `python -m monosemantic` is the command line
        return "cli"
    return part if part in UPPER else "library"


def test_the_graph_is_read(graph):
    # a parser that found nothing would pass every rule below
    assert "monosemantic.sensing" in graph and "monosemantic.errors" in graph["monosemantic.sensing"]
    assert "monosemantic.experiments.toy" in graph["monosemantic.report.demo"]


def test_no_cycles(graph):
    # Tarjan's strongly connected components; a component of more than one module is a cycle
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert cycles == []


ORDER = {"library": 0, "experiments": 1, "report": 2, "cli": 3}


def test_layers_point_one_way(graph):
    upward = [(a, b) for a, deps in graph.items() for b in deps
              if a != PACKAGE and ORDER[_layer(b)] > ORDER[_layer(a)]]
    assert upward == []


def test_no_module_imports_the_package_root(graph):
    # so that the root can re-export the public API without creating cycles
    assert [a for a, deps in graph.items() if PACKAGE in deps] == []


@pytest.mark.parametrize("importer, forbidden", [
    ("monosemantic.dictionary", "monosemantic.toy"),  # dictionaries know no toy model
    ("monosemantic.sensing", "monosemantic.dictionary"),  # sensing takes matrices, not estimators
    ("monosemantic.report.figures", "monosemantic.toy.train"),  # figures train nothing
    ("monosemantic.report.figures", "monosemantic.experiments"),
    ("monosemantic.report.figures", "monosemantic.dictionary"),
    ("monosemantic.report.figures", "monosemantic.optim"),
])
def test_forbidden_imports(graph, importer, forbidden):
    bad = [(a, b) for a, deps in graph.items() for b in deps
           if (a == importer or a.startswith(importer + ".")) and (b == forbidden or b.startswith(forbidden + "."))]
    assert bad == []
