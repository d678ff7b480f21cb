"""The library's modules form layers: no import cycle, at module or function level.

A cycle is what let planning code grow into one knot (config <-> checks <-> captions ...): each
module then needs the whole knot to be read or tested. Function-level imports count too, since a
deferred import is the usual way such a cycle is hidden rather than removed.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "workflow" / "genrobust"


def module_names(package: Path) -> dict[str, Path]:
    names = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _imported(node, module: str, is_package: bool, known) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = module.split(".") if is_package else module.split(".")[:-1]
    if node.level:
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    submodules = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in known]
    # `from pkg import module` needs the module; `from pkg import name` needs pkg itself
    return submodules if len(submodules) == len(node.names) else [target, *submodules]


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports anywhere in its body."""
    known = module_names(package)
    graph = {}
    for module, path in known.items():
        nodes = ast.walk(ast.parse(path.read_text(), filename=str(path)))
        imports = (node for node in nodes if isinstance(node, (ast.Import, ast.ImportFrom)))
        targets = {
            target
            for node in imports
            for target in _imported(node, module, path.name == "__init__.py", known)
        }
        # a submodule always runs its package's __init__ first: not a dependency of its own
        graph[module] = {
            t for t in targets if t in known and t != module and not module.startswith(t + ".")
        }
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as [a, b, ..., a], or [] when the graph is layered."""
    state, path = {}, []

    def visit(module):
        state[module] = "open"
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                return path[path.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[module] = "done"
        path.pop()
        return []

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            return cycle
    return []


def test_library_has_no_import_cycle():
    graph = import_graph(PACKAGE)
    assert len(graph) > 50 and "genrobust.validation" in graph
    assert {"genrobust.config", "genrobust.checks"} <= graph["genrobust.validation"]
    cycle = find_cycle(graph)
    assert not cycle, "import cycle: " + " -> ".join(cycle)


def test_cycle_finder_sees_function_level_and_package_imports(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg import b\n")
    (package / "b.py").write_text("def f():\n    from .sub import c\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "c.py").write_text("from ..a import name\n")
    cycle = find_cycle(import_graph(package))
    assert cycle[0] == cycle[-1] and set(cycle) == {"pkg.a", "pkg.b", "pkg.sub.c"}
    (package / "sub" / "c.py").write_text("from pkg import sub\n")  # its own package: no edge
    assert find_cycle(import_graph(package)) == []


def test_modules_and_functions_stay_readable():
    """A module a reader can hold (~500 lines) and functions that do one thing (<= 80 lines)."""
    too_long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text()
        if len(source.splitlines()) > 520:
            too_long.append(f"{path.relative_to(PACKAGE)}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 80:
                too_long.append(f"{path.relative_to(PACKAGE)}: {node.name} has {node.end_lineno - node.lineno + 1} lines")
    assert not too_long, "split these:\n" + "\n".join(too_long)
