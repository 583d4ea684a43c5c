"""Layers point one way: the library (ticklake) and the simulator (itick_sim) never import the Dagster layer, and
inside the library every import goes down a floor (commands, quality, datasets, sources | storage, dictionary,
configuration).

The contracts live in pyproject.toml and `python3 dev.py test` runs `lint-imports`; these tests show the check
passes on the tree and would catch a library module that imports the Dagster layer, or one that climbs a floor.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(tree: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([str(LINT), "--no-cache"], cwd=tree, env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def test_the_tree_keeps_the_contracts():
    out = _lint(ROOT)
    assert out.returncode == 0, out.stdout[-2000:]
    assert "4 kept, 0 broken" in out.stdout


def _tree_with(tmp_path: Path, module: str, line: str) -> Path:
    for name in ("ticklake", "itick_sim", "assets", "resources", "checks", "automation", "demo"):
        if (ROOT / name).exists():
            shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("definitions.py", "pyproject.toml"):
        shutil.copyfile(ROOT / name, tmp_path / name)
    with open(tmp_path / module, "a") as fh:
        fh.write(f"\n{line}  # noqa: E402,F401\n")
    return tmp_path


def test_a_library_module_importing_the_dagster_layer_breaks_the_contract(tmp_path):
    out = _lint(_tree_with(tmp_path, "ticklake/markets.py", "from resources.storage import StorageResource"))
    assert out.returncode != 0
    assert "ticklake is not allowed to import resources" in out.stdout


def test_a_library_import_that_climbs_a_floor_breaks_the_layers(tmp_path):
    """The storage floor reaching up into a dataset module, the way the old flat modules went back and forth."""
    out = _lint(_tree_with(tmp_path, "ticklake/storage/writes.py", "from ticklake.datasets import klines"))
    assert out.returncode != 0
    assert "ticklake.storage is not allowed to import ticklake.datasets" in out.stdout


def _cycles(graph, modules: set[str]) -> list[list[str]]:
    """The import cycles among `modules` (strongly connected components of more than one module)."""
    edges = {m: graph.find_modules_directly_imported_by(m) & modules for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for m in sorted(modules):
        if m not in index:
            visit(m)
    return found


def test_no_import_cycle_in_the_library_or_the_dagster_layer():
    import grimp

    graph = grimp.build_graph("ticklake", "assets", "resources", "checks", "automation", "demo",
                              include_external_packages=False)
    modules = set(graph.modules)
    assert len(modules) > 50
    assert _cycles(graph, modules) == []


def test_the_cycle_finder_finds_a_cycle():
    import grimp

    graph = grimp.ImportGraph()
    for m in ("a", "a.x", "a.y", "a.z"):
        graph.add_module(m)
    graph.add_import(importer="a.x", imported="a.y")
    graph.add_import(importer="a.y", imported="a.x")
    graph.add_import(importer="a.z", imported="a.x")
    assert _cycles(graph, {"a.x", "a.y", "a.z"}) == [["a.x", "a.y"]]
