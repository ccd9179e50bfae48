"""Files: the copies and removals the cycles make, by `cp -a` and `rm -rf --one-file-system`.

`cp -a` keeps owners, modes, links, times and xattrs; `--sparse=always` keeps holes too.
`rm -rf --one-file-system` never crosses into a filesystem mounted below the path. Pure argv
builders, and `Files`, which runs them through the caller's Runner (so dry-run and secret
masking hold as for every other program).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from management.runner import Result, Runner


def copy_tree_argv(source: Path, target: Path, *, sparse: bool = False) -> list[str]:
    """`cp -a [--sparse=always] -- SOURCE/. TARGET`: TARGET (which must not exist) becomes an
    exact copy of SOURCE, its own owner and mode included."""
    return ["cp", "-a", *(["--sparse=always"] if sparse else []), "--", f"{source}/.", str(target)]


def copy_path_argv(source: Path, target: Path) -> list[str]:
    """`cp -a --sparse=always SOURCE TARGET`: TARGET (which must not exist) becomes an exact copy
    of SOURCE, a file or a whole folder: owners, modes, times, symlinks (not followed), hard
    links inside it, and holes kept."""
    return ["cp", "-a", "--sparse=always", "--", str(source), str(target)]


def copy_trees_argv(sources: Sequence[Path], target_dir: Path) -> list[str]:
    """`cp -a -H -t TARGET_DIR SOURCE...`: each SOURCE becomes TARGET_DIR/<its name>, an exact copy
    (a symlinked SOURCE is followed, as compose follows it); one process for all of them."""
    return ["cp", "-a", "-H", "-t", str(target_dir), "--", *map(str, sources)]


def remove_tree_argv(path: Path) -> list[str]:
    """`rm -rf --one-file-system -- PATH`: PATH and everything below it, on its own filesystem only."""
    return ["rm", "-rf", "--one-file-system", "--", str(path)]


class Files:
    """Runs the argv above through the Runner: a failed copy or removal raises CommandError."""

    def __init__(self, runner: Runner):
        self.runner = runner

    def copy_tree(self, source: Path, target: Path, *, sparse: bool = False,
                  timeout: float | None = None) -> Result:
        return self.runner.run(copy_tree_argv(source, target, sparse=sparse), timeout=timeout)

    def copy_path(self, source: Path, target: Path) -> Result:
        return self.runner.run(copy_path_argv(source, target))

    def copy_trees(self, sources: Sequence[Path], target_dir: Path) -> Result:
        return self.runner.run(copy_trees_argv(sources, target_dir))

    def remove_tree(self, path: Path) -> Result:
        return self.runner.run(remove_tree_argv(path))
