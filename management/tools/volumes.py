"""Volumes: where a named docker volume keeps its bytes on the host, and removing one (adopt
moves a volume's data onto the service's dataset, then removes the volume)."""

from __future__ import annotations

from pathlib import Path

from management.runner import Runner


class Volumes:
    def __init__(self, runner: Runner):
        self.runner = runner

    def path(self, name: str) -> Path | None:
        """Where a docker volume keeps its bytes on the host (its Mountpoint), None when it does not exist."""
        r = self.runner.run(["docker", "volume", "inspect", "--format", "{{.Mountpoint}}", name], mutating=False,
                            ok_codes=(0, 1))
        return Path(r.stdout.strip()) if r.returncode == 0 and r.stdout.strip() else None

    def remove(self, name: str) -> None:
        self.runner.run(["docker", "volume", "rm", name])
