"""The cycle's targets."""


import pytest

from management.errors import OrchestratorError
from tests.unit.cycles.backup.world import (
    World,
    kinds,
    orchestrator,
)


def test_unknown_service_is_rejected_before_anything(settings):
    world = World()
    with pytest.raises(OrchestratorError, match="unknown service"):
        orchestrator(settings, world).backup(["../etc"])
    assert world.events == []


def test_backup_one_snapshots_only_that_dataset_and_stops_only_its_stack(settings):
    world = World()
    orchestrator(settings, world).backup(["git"])
    assert kinds(world, "stop") == ["git"] and kinds(world, "start") == ["git"]
    assert kinds(world, "snapshot")[0].startswith("datapool/services/git@")
    assert kinds(world, "create") == ["git"]
