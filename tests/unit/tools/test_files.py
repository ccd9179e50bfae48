"""The copies and removals the cycles make: argv, a real `cp`, and the runner's view of Files."""

from __future__ import annotations

import subprocess
from pathlib import Path

from management.tools.files import Files, copy_path_argv, copy_tree_argv, copy_trees_argv, remove_tree_argv
from tests.fakes import FakeRunner


def test_a_tree_is_copied_by_its_contents_so_the_target_gets_its_owner_and_mode():
    assert copy_tree_argv(Path("/srv/git"), Path("/v/git/.orchestrator-stack")) == \
        ["cp", "-a", "--", "/srv/git/.", "/v/git/.orchestrator-stack"]
    assert copy_tree_argv(Path("/srv/db"), Path("/tank/db/.db.adopting"), sparse=True) == \
        ["cp", "-a", "--sparse=always", "--", "/srv/db/.", "/tank/db/.db.adopting"]


def test_one_cp_copies_every_stack_folder_under_its_own_name_following_a_symlinked_folder(tmp_path):
    real = tmp_path / "elsewhere" / "photo"
    real.mkdir(parents=True)
    (real / "compose.yaml").write_text("photo")
    services = tmp_path / "services"
    (services / "git").mkdir(parents=True)
    (services / "git" / "compose.yaml").write_text("git")
    (services / "photo").symlink_to(real)
    target = tmp_path / "copies"
    target.mkdir()
    argv = copy_trees_argv([services / "git", services / "photo"], target)
    assert argv == ["cp", "-a", "-H", "-t", str(target), "--", str(services / "git"), str(services / "photo")]
    subprocess.run(argv, check=True)
    assert (target / "git" / "compose.yaml").read_text() == "git"
    assert not (target / "photo").is_symlink() and (target / "photo" / "compose.yaml").read_text() == "photo"


def test_one_path_is_copied_whole_with_its_links_and_holes():
    assert copy_path_argv(Path("/snap/lib/a b"), Path("/live/lib/.stage/a b")) == \
        ["cp", "-a", "--sparse=always", "--", "/snap/lib/a b", "/live/lib/.stage/a b"]


def test_a_removal_stays_on_its_own_filesystem():
    assert remove_tree_argv(Path("/v/-odd name")) == ["rm", "-rf", "--one-file-system", "--", "/v/-odd name"]


def test_files_runs_each_argv_through_the_runner_and_a_dry_run_skips_them():
    runner = FakeRunner(dry_run=True)
    files = Files(runner)
    files.copy_tree(Path("/a"), Path("/b"), sparse=True, timeout=60.0)
    files.copy_path(Path("/a/x"), Path("/b/x"))
    files.copy_trees([Path("/a"), Path("/c")], Path("/d"))
    assert files.remove_tree(Path("/b")).skipped
    assert [(c.argv, c.mutating, c.timeout) for c in runner.calls] == [
        (("cp", "-a", "--sparse=always", "--", "/a/.", "/b"), True, 60.0),
        (("cp", "-a", "--sparse=always", "--", "/a/x", "/b/x"), True, None),
        (("cp", "-a", "-H", "-t", "/d", "--", "/a", "/c"), True, None),
        (("rm", "-rf", "--one-file-system", "--", "/b"), True, None),
    ]
