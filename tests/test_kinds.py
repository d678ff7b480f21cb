"""Kinds live in their registries (genrobust/kinds/): nothing else compares a kind string or keeps
a set of kind names, so a new strategy, report or test-set kind is declared in one place."""

import ast
import re
from pathlib import Path

import pytest

from genrobust.kinds import REPORTS, STRATEGIES, TEST_SETS, ReportKind, UnknownKind

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "workflow" / "genrobust"
KIND_NAMES = set(STRATEGIES) | set(REPORTS) | set(TEST_SETS)
KIND_SET = re.compile(r"\b[A-Z][A-Z0-9_]*_KINDS?\b")
# a rule file comparing a kind: spec["kind"] in ..., == "fid_table", ...
SMK_COMPARISON = re.compile(r"""\[["']kind["']\]\s*(==|!=|in\b|not in\b)|(==|!=)\s*["'](%s)["']"""
                            % "|".join(sorted(KIND_NAMES)))


def _kind_literals(node) -> set[str]:
    """The kind names a compared value spells: 'a', ('a', 'b'), {'a'}, ['a']."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value} & KIND_NAMES
    if isinstance(node, (ast.Tuple, ast.Set, ast.List)):
        return set().union(*(_kind_literals(e) for e in node.elts)) if node.elts else set()
    return set()


def python_violations(source: str) -> list[tuple[int, str]]:
    """(line, what) of each kind-string comparison or *_KINDS name in one module."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            for i, op in enumerate(node.ops):
                # `"captions" in strategy` asks for a key; `kind in ("a", "b")` compares a kind
                candidates = sides[i + 1:i + 2] if isinstance(op, (ast.In, ast.NotIn)) else sides[i:i + 2]
                for side in candidates:
                    if names := _kind_literals(side):
                        found.append((node.lineno, f"compares a kind: {', '.join(sorted(names))}"))
        elif isinstance(node, ast.Name) and KIND_SET.fullmatch(node.id):
            found.append((node.lineno, f"kind set {node.id}"))
        elif isinstance(node, (ast.ImportFrom)):
            found += [(node.lineno, f"kind set {a.name}") for a in node.names if KIND_SET.fullmatch(a.name)]
    return found


def violations() -> list[str]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if PACKAGE / "kinds" in path.parents:
            continue
        out += [f"{path.relative_to(REPO)}:{line}: {what}" for line, what in python_violations(path.read_text())]
    for path in [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if SMK_COMPARISON.search(line) or KIND_SET.search(line):
                out.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    return out


def test_no_kind_comparison_outside_the_registries():
    found = violations()
    assert not found, "ask genrobust.kinds instead:\n" + "\n".join(found)


def test_the_grep_sees_what_it_forbids():
    src = ("if spec['kind'] == 'fid_table': pass\nif kind in ('img2img', 'x'): pass\nx = ER_KINDS\n"
           "if 'captions' in strategy: pass\nif kind == 'other': pass\n")
    assert [line for line, _ in python_violations(src)] == [1, 2, 3]
    assert SMK_COMPARISON.search('if spec["kind"] in METRIC: pass') and not SMK_COMPARISON.search('kind=spec["kind"],')


def test_registries_name_unknown_kinds_with_a_suggestion():
    with pytest.raises(UnknownKind, match="unknown report kind 'mixture_grd'.*did you mean mixture_grid"):
        REPORTS["mixture_grd"]
    assert "class_labels" in STRATEGIES and "objectnet" in TEST_SETS and "nothing" not in REPORTS
    with pytest.raises(ValueError, match="registered twice"):
        REPORTS.register(ReportKind("fid_table", "metric", (), "x:y"))


def test_every_report_kind_has_a_writer_and_a_caption():
    for name in REPORTS:
        kind = REPORTS[name]
        assert callable(kind.load_writer()), name
        assert (REPO / "workflow" / "report" / f"{name}.rst").is_file(), name


def test_strategy_and_report_kinds_are_those_the_schema_allows():
    import yaml

    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    props = schema["properties"]
    strategy_kinds = props["strategies"]["additionalProperties"]["properties"]["kind"]["enum"]
    report_kinds = props["reports"]["additionalProperties"]["properties"]["kind"]["enum"]
    test_kinds = props["test_sets"]["additionalProperties"]["properties"]["kind"]["enum"]
    assert (set(strategy_kinds), set(report_kinds), set(test_kinds)) == (set(STRATEGIES), set(REPORTS), set(TEST_SETS))


def test_the_registries_are_the_bottom_layer():
    """Every layer may ask the registries, so they import nothing of the library above them."""
    from test_layering import import_graph

    graph = import_graph(PACKAGE)
    kinds = {m for m in graph if m == "genrobust.kinds" or m.startswith("genrobust.kinds.")}
    assert len(kinds) == 5
    for module in kinds:
        assert graph[module] <= kinds | {"genrobust.errors"}, (module, graph[module] - kinds)
    assert graph["genrobust.errors"] == set()
