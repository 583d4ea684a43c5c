"""Layers point one way: the library (ticklake) and the simulator (itick_sim) never import the Dagster layer.

The contracts live in pyproject.toml and `python3 dev.py test` runs `lint-imports`; these tests show the check
passes on the tree and would catch a library module that imports the Dagster layer.
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
    assert "2 kept, 0 broken" in out.stdout


def test_a_library_module_importing_the_dagster_layer_breaks_the_contract(tmp_path):
    for name in ("ticklake", "itick_sim", "assets", "resources", "checks", "automation"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("definitions.py", "pyproject.toml"):
        shutil.copyfile(ROOT / name, tmp_path / name)
    with open(tmp_path / "ticklake" / "markets.py", "a") as fh:
        fh.write("\nfrom resources.storage import StorageResource  # noqa: E402,F401\n")
    out = _lint(tmp_path)
    assert out.returncode != 0
    assert "ticklake is not allowed to import resources" in out.stdout
