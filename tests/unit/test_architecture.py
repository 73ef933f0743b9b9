"""The package's layout rules (ARCHITECTURE.md), checked on the source: a change that breaks one fails here."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "srnas_nni"


def _graph_tool():
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "tools" / "import_graph.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tool():
    return _graph_tool()


@pytest.fixture(scope="module")
def graph(tool):
    return tool.edges(tool.modules())


def test_the_import_graph_has_no_cycle_counting_function_level_imports(tool, graph):
    assert tool.cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import(tool, tmp_path, monkeypatch):
    package = tmp_path / "srnas_nni"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from . import b\n")
    (package / "b.py").write_text("def f():\n    from .a import x\n")
    monkeypatch.setattr(tool, "ROOT", tmp_path)
    assert tool.cycles(tool.edges(tool.modules())) == [["srnas_nni.a", "srnas_nni.b"]]


def test_every_module_imports_only_its_own_layer_and_the_layers_beneath(tool, graph):
    assert tool.layer_violations(graph) == []


def test_every_module_is_in_a_layer(tool, graph):
    for module in graph:
        tool.layer_of(module)  # raises KeyError for a module in no layer


def test_nni_private_names_are_imported_only_by_the_adapter(tool):
    assert tool.nni_outside_adapter(tool.modules()) == []


def test_the_study_layer_imports_neither_torch_nor_nni(tool):
    imports = tool.external_imports(tool.modules())
    for module, names in imports.items():
        if module.startswith("srnas_nni.study"):
            assert not {n for n in names if n.split(".")[0] in ("torch", "nni", "lightning", "pytorch_lightning")}, \
                module


def test_no_module_is_over_700_lines():
    long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 700}
    assert long == {}


def test_at_most_eight_modules_sit_loose_at_the_package_root():
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(loose) <= 8, loose


def test_no_test_module_imports_another_test_module():
    tests = ROOT / "tests"
    offenders = []
    for path in tests.rglob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [a.name for a in node.names] if node.level else [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            if any(n.split(".")[-1].startswith("test_") for n in names if n):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_the_nnictl_tuner_entry_imports_neither_torch_nor_nni_nas():
    # NNI's manager gives a tuner process 10 s to connect: the class path users write must import light.
    code = ("import sys, srnas_nni.nni_tuner as t; assert t.OptunaTuner; "
            "print(sorted(m for m in ('torch', 'nni.nas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
