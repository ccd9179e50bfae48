"""Whole-service restore and restore drills: the tree comparison, the stack manifest, the
archive layout, the restore's all-or-nothing promise and the drill's results, with fakes."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from management.stacks.trees import (
    compare_trees,
    manifest_differences,
    stack_manifest,
    tree_manifest,
)
from management.tools.borg import STACK_PREFIX


def make_tree(root: Path) -> None:
    (root / "d" / "empty").mkdir(parents=True)
    (root / "d" / "a.txt").write_text("alpha")
    (root / "b.bin").write_bytes(b"\0" * 1000)
    os.link(root / "b.bin", root / "b.hardlink")
    os.symlink("d/a.txt", root / "link")
    (root / "d" / "a.txt").chmod(0o640)



@pytest.fixture
def twins(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        root.mkdir()
        make_tree(root)
    return a, b



def test_identical_trees_compare_equal_with_entries_and_bytes(twins):
    a, b = twins
    result = compare_trees(a, b)
    assert result.ok, result.differences
    assert result.entries == 7  # ., b.bin, b.hardlink, d, d/a.txt, d/empty, link
    assert result.bytes == 1000 + 1000 + 5



@pytest.mark.parametrize("damage, expected", [
    (lambda b: (b / "d" / "a.txt").write_text("alphA"), "d/a.txt: content"),
    (lambda b: (b / "d" / "a.txt").write_text("alpha!"), "d/a.txt: size 5 != 6"),
    (lambda b: (b / "d" / "a.txt").chmod(0o644), "d/a.txt: mode 640 != 644"),
    (lambda b: (b / "d" / "empty").rmdir(), "d/empty: missing"),
    (lambda b: (b / "extra").write_text("x"), "extra: not in the snapshot"),
    (lambda b: ((b / "link").unlink(), os.symlink("b.bin", b / "link")), "link: symlink target"),
    (lambda b: ((b / "link").unlink(), (b / "link").write_text("x")), "link: symlink became file"),
    (lambda b: ((b / "b.hardlink").unlink(), (b / "b.hardlink").write_bytes(b"\0" * 1000)),
     "b.bin: hard links to b.hardlink were not kept"),
])
def test_each_kind_of_difference_is_found_and_named(twins, damage, expected):
    a, b = twins
    damage(b)
    result = compare_trees(a, b)
    assert not result.ok
    assert expected in result.differences, result.differences



def test_owner_differences_are_found(twins):
    if os.geteuid() != 0:
        pytest.skip("chown needs root")  # CI runs as root: tests/conftest.py fails skips there
    a, b = twins
    os.chown(b / "d" / "a.txt", 100999, 100999)
    assert "d/a.txt: owner 0:0 != 100999:100999" in compare_trees(a, b).differences



def test_the_stack_prefix_in_the_archive_is_left_out_of_the_data_comparison(twins):
    a, b = twins
    (b / STACK_PREFIX).mkdir()
    (b / STACK_PREFIX / "compose.yaml").write_text("services: {}")
    assert compare_trees(a, b, frozenset({STACK_PREFIX})).ok
    assert not compare_trees(a, b).ok



def test_stack_manifest_is_keyed_and_names_what_differs(tmp_path):
    stack = tmp_path / "stack"
    stack.mkdir()
    (stack / ".env").write_text("DB_PASSWORD=hunter2\n")
    (stack / ".env").chmod(0o600)
    key = b"k" * 32
    before = stack_manifest(stack, key)
    assert "hunter2" not in repr(before)
    assert stack_manifest(stack, b"another key") != before  # the hash depends on the key
    (stack / ".env").write_text("DB_PASSWORD=hunter3\n")
    assert manifest_differences(before, stack_manifest(stack, key)) == [".env: content differ"]
    (stack / ".env").chmod(0o644)
    (stack / "new").write_text("x")
    diffs = manifest_differences(before, stack_manifest(stack, key))
    assert ".env: mode, content differ" in diffs and "new: not in the original" in diffs
    os.utime(stack / ".env", (1, 1))  # a touch alone is no difference
    assert manifest_differences(stack_manifest(stack, key), stack_manifest(stack, key)) == []



def test_tree_manifest_leaves_the_stack_copy_out(tmp_path):
    (tmp_path / "f").write_text("x")
    old = time.time() + 10
    digest, _ = tree_manifest(tmp_path, old, frozenset({STACK_PREFIX}))
    (tmp_path / STACK_PREFIX).mkdir()
    (tmp_path / STACK_PREFIX / "compose.yaml").write_text("y")
    assert tree_manifest(tmp_path, old, frozenset({STACK_PREFIX}))[0] == digest
    assert tree_manifest(tmp_path, old)[0] != digest


