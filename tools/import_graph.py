"""srnas_nni's import graph, checked against the layers of ARCHITECTURE.md.

    python tools/import_graph.py            # cycles, layer violations, NNI imports outside the adapter
    python tools/import_graph.py --edges    # every edge, module -> module
    python tools/import_graph.py --layers   # edges between layers, counted

Every ``import`` and ``from ... import`` statement counts, wherever it is (module level or inside a
function), because a function-level import is a dependency all the same. Exit status 1 when a rule is
broken. ``tests/unit/test_architecture.py`` runs the same checks.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "srnas_nni"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((ROOT / PACKAGE).rglob("*.py"))}


def resolve(current: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = current.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def edges(known: dict[str, Path]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        tree = ast.parse(path.read_text(), str(path))
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = resolve(name, is_package, node)
                targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
            for target in targets:
                # the longest known module that the target names
                while target and target not in known:
                    target = target.rpartition(".")[0]
                if target and target != name and target.startswith(PACKAGE):
                    # `from . import x` of a package's own submodule is an edge to x, not to the package
                    if target == resolve(name, is_package, node) if isinstance(node, ast.ImportFrom) else False:
                        if any(f"{target}.{a.name}" in known for a in node.names):
                            continue
                    graph[name].add(target)
    return graph


#: The layers, bottom first (ARCHITECTURE.md). A module may import modules of its own layer and of the
#: layers beneath it, never above. Keys are top-level names inside the package ("" = the package itself).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("basics", ("", "errors", "registry", "runtime", "presets")),
    ("study", ("study",)),
    ("nni_adapter", ("nni_adapter",)),
    ("models", ("models",)),
    ("evaluation", ("evaluation",)),
    ("spaces", ("spaces",)),
    ("strategies", ("strategies",)),
    ("run", ("run",)),
    ("results", ("results",)),
    ("entry points", ("cli", "__main__", "nni_tuner", "nni_trial", "nni_engine")),
]
#: NNI's public model-space API: the only NNI imports allowed outside the adapter.
PUBLIC_NNI = ("nni.mutable", "nni.nas.nn.pytorch")


def layer_of(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    for index, (_, tops) in enumerate(LAYERS):
        if top in tops:
            return index
    raise KeyError(f"{module}: in no layer of tools/import_graph.py LAYERS")


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """``source -> target`` edges that go up the layers."""
    return [f"{source} ({LAYERS[layer_of(source)][0]}) -> {target} ({LAYERS[layer_of(target)][0]})"
            for source in sorted(graph) for target in sorted(graph[source]) if layer_of(target) > layer_of(source)]


def external_imports(known: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the third-party modules it imports (absolute imports only)."""
    found: dict[str, set[str]] = {}
    for name, path in known.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.setdefault(name, set()).update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.setdefault(name, set()).add(node.module)
    return found


def nni_outside_adapter(known: dict[str, Path]) -> list[str]:
    """Imports of NNI's non-public names outside ``srnas_nni.nni_adapter``."""
    problems = []
    for name, modules in sorted(external_imports(known).items()):
        if name.startswith(f"{PACKAGE}.nni_adapter"):
            continue
        for module in sorted(modules):
            if (module == "nni" or module.startswith("nni.")) and not module.startswith(PUBLIC_NNI):
                problems.append(f"{name} imports {module}")
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    sys.setrecursionlimit(10000)

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def main(argv: list[str]) -> int:
    known = modules()
    graph = edges(known)
    if "--edges" in argv:
        for source in sorted(graph):
            for target in sorted(graph[source]):
                print(f"{source} -> {target}")
        return 0
    if "--layers" in argv:
        counts: dict[tuple[str, str], int] = {}
        for source in graph:
            for target in graph[source]:
                key = (LAYERS[layer_of(source)][0], LAYERS[layer_of(target)][0])
                counts[key] = counts.get(key, 0) + 1
        for (source, target), count in sorted(counts.items()):
            print(f"{source} -> {target}: {count}")
        return 0
    found = cycles(graph)
    for component in found:
        print("cycle: " + " <-> ".join(component))
    upward = layer_violations(graph)
    for edge in upward:
        print("upward import: " + edge)
    nni = nni_outside_adapter(known)
    for problem in nni:
        print("NNI outside the adapter: " + problem)
    if not (found or upward or nni):
        print(f"{len(graph)} modules, {sum(map(len, graph.values()))} imports: no cycle, no upward import, "
              "NNI's private names only in nni_adapter")
    return 1 if found or upward or nni else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
