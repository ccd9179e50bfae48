"""What every part of the backup cycle shares: the run's own attributes and the small helpers
(targets, view paths, the stack folder, the manifest key)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from management.cycles.context import Cycle, RunContext
from management.cycles.history import History
from management.errors import ValidationError
from management.state import Kept, RepositoryRecord
from management.tools.files import Files


class BackupCycle(Cycle):
    """The backup cycle's state for one run; the parts (window, steps, cleanup) build on it."""

    def __init__(self, ctx: RunContext):
        super().__init__(ctx)
        self._snap_time = 0.0  # when tonight's snapshot was taken (for 1-second timestamps)
        self._written_supported: bool | None = None
        self._staged: dict[str, Path | str] = {}  # service -> its stack folder's copy, or why there is none
        self._listed: dict[str, str | None] = {}  # service -> its repository's fingerprint when borg listed it
        self._records: dict[str, RepositoryRecord] = {}  # service -> what its repository holds, for the next night
        self.history = History(ctx)

    # -- helpers --------------------------------------------------------------------------

    def _targets(self, services: Sequence[str] | None) -> list[str]:
        if not services:
            return list(self.s.services)
        unknown = [s for s in services if s not in self.s.services]
        if unknown:
            raise ValidationError(
                f"unknown service(s) {', '.join(map(repr, unknown))}; known: {', '.join(self.s.services)}"
            )
        return list(services)

    def _view_path(self, service: str) -> Path:
        return self.s.view_mountpoint / service

    def _view_dataset(self, service: str) -> str:
        return f"{self.s.view_dataset}/{service}"

    def _stack_dir(self, service: str) -> Path | None:
        """The service's stack folder under SERVICES_DIR, when there is one (a symlinked folder is
        followed: its contents are what compose reads)."""
        path = self.s.services_dir / service
        return path if path.is_dir() else None

    def _key(self) -> bytes:
        return self.state.manifest_key()

    def _remove_tree(self, path: Path) -> None:
        Files(self.runner).remove_tree(path)

    # -- the last backed-up snapshot of each dataset (KEEP_LAST_SNAPSHOT) ------------------

    def kept(self) -> dict[str, Kept]:
        return self.state.kept()
