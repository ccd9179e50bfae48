"""What every run needs, built once by the CLI (or a test) and handed to a cycle: the settings,
the command runner, the tool managers, the run state, where its output goes, the clock and
the progress display. Nothing in it is changed after it is built."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from management.config import Settings
from management.monitoring.progress import Progress
from management.runner import Runner
from management.state import StateStore
from management.tools.borg import BorgBackupRepoManager
from management.tools.compose import DockerComposeManager
from management.tools.zfs import ZFSManager
from management.verdict import PoolSays, pool_says, read_pool


@dataclass(frozen=True)
class RunContext:
    settings: Settings
    runner: Runner
    zfs: ZFSManager
    docker: DockerComposeManager | None = None
    borg: BorgBackupRepoManager | None = None
    echo: Callable[[str], None] = print
    clock: Callable[[], float] = time.time
    progress: Progress | None = None
    state: StateStore = field(default=None)  # type: ignore[assignment]  # STATE_DIR when not given

    def __post_init__(self) -> None:
        if self.state is None:
            object.__setattr__(self, "state", StateStore(self.settings.state_dir))
        if self.progress is None:
            object.__setattr__(self, "progress", Progress(self.echo, interval=self.settings.progress_interval))


class Cycle:
    """The base of every locked run: its collaborators, read from the context once. Each has one
    name here (`self.zfs`, not also `self.ctx.zfs`): the context itself is not kept."""

    def __init__(self, ctx: RunContext):
        self.s = ctx.settings
        self.runner = ctx.runner
        self.zfs = ctx.zfs
        self.docker = ctx.docker
        self.borg = ctx.borg
        self.state = ctx.state
        self.echo = ctx.echo
        self.clock = ctx.clock
        self.progress = ctx.progress

    def pool_health(self) -> PoolSays:
        """The data pool's health and redundancy for the verdicts publish writes (one `zpool
        status`, read as status reads it); None where zpool does not say."""
        return pool_says(read_pool(self.zfs, self.s.zfs_parent_dataset))
