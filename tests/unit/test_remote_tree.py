"""RemoteTree keeps a local directory in step with a stored folder file by file: a pull fetches what changed
there, a push sends what changed here, nothing is deleted, and a lost manifest only costs a full comparison."""

from __future__ import annotations

import os

from ticklake.storage.object_store import location
from ticklake.storage.remote_tree import RemoteTree


def _files(root) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text() for p in root.rglob("*")
            if p.is_file() and not p.name.startswith(".")}


def test_two_machines_see_each_others_files_and_changes(tmp_path):
    tree = RemoteTree(location(str(tmp_path / "store")), "project")
    a, b = tmp_path / "a", tmp_path / "b"
    (a / "validations" / "x").mkdir(parents=True)
    (a / "validations" / "x" / "1.json").write_text("one")
    (a / "index.html").write_text("index listing 1")
    assert tree.push(a) == 2
    assert tree.push(a) == 0  # nothing changed since
    assert tree.pull(b) == 2
    assert _files(b) == _files(a)

    (b / "validations" / "x" / "2.json").write_text("two")
    (b / "index.html").write_text("index listing 1 and 2")
    assert tree.push(b) == 2  # only what b wrote: its copies of a's files are in step already
    assert tree.pull(a) == 2
    assert _files(a) == _files(b)
    assert tree.pull(a) == 0


def test_nothing_is_deleted_and_a_torn_manifest_only_costs_a_comparison(tmp_path):
    tree = RemoteTree(location(str(tmp_path / "store")), "project")
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    (a / "keep.json").write_text("kept")
    tree.push(a)
    os.remove(a / "keep.json")
    assert tree.push(a) == 0
    assert tree.pull(b) == 1
    assert (b / "keep.json").read_text() == "kept"
    (b / ".remote-manifest.json").write_text("{torn")
    assert tree.pull(b) == 1  # compared again from scratch, downloaded again, same content
    assert _files(b) == {"keep.json": "kept"}
    assert tree.url("keep.json") == str(tmp_path / "store" / "project" / "keep.json")
