"""management/fleet.py: the per-host summary of what the fleet playbooks collected."""
from __future__ import annotations

from management.host import managed


def test_unchanged_is_true_only_when_every_file_holds_the_same_text(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert not managed.unchanged([(a, "x")])  # missing
    a.write_text("x")
    b.write_text("y")
    assert managed.unchanged([(a, "x"), (b, "y")])
    assert not managed.unchanged([(a, "x"), (b, "z")])

