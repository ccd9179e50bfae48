"""Updates with a health-gated rollback: the order of events against fake docker and zfs."""

import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from management.cycles.context import RunContext
from management.cycles.update import UpdateOrchestrator, expired, rollback_tag
from management.errors import CommandError
from management.results import ROLLED_BACK, UNCHANGED, UPDATED
from management.stacks.compose_file import Service, Stack
from management.tools.compose import StackResult
from tests.unit.config.test_load import settings_with


@dataclass
class World:
    """docker + zfs: tags map references to image IDs; containers run an image ID."""

    def __init__(self, registry_id="sha256:new", healthy_on=("sha256:old", "sha256:new")):
        self.events = []
        self.tags = {"app:1": "sha256:old"}
        self.running = {"web": "sha256:old"}
        self.registry = {"app:1": registry_id}
        self.healthy_on = set(healthy_on)
        self.snapshots = set()
        self.pull_error = None
        # what the compose wrapper hands out besides compose: its containers and images
        self.containers = SimpleNamespace(describe=self.describe)
        self.images = SimpleNamespace(id=self.image_id, registry_id=self.registry_id, tag=self.tag, untag=self.untag)

    # docker
    def stacks(self, names):
        return [Stack("app", Path("/s/app"), Path("/s/app/compose.yaml"),
                      services={"web": Service("web", image="app:1")})]

    def describe(self, project):
        return [{"service": s, "image": i, "state": "running"} for s, i in self.running.items()]

    def pull_services(self, stack, services):
        self.events.append(("pull",))
        if self.pull_error:
            raise self.pull_error
        self.tags["app:1"] = self.registry["app:1"]

    def image_id(self, ref):
        return self.tags.get(ref)

    def registry_id(self, ref):
        return self.registry[ref]

    def tag(self, image, ref):
        self.events.append(("tag", image, ref))
        self.tags[ref] = self.tags.get(image, image)

    def untag(self, ref):
        self.events.append(("untag", ref))
        self.tags.pop(ref, None)

    def stop(self, names):
        self.events.append(("stop",))
        self.running = {}
        return [StackResult("app", True)]

    def up_gated(self, stack, settle, abort=lambda: False):
        image = self.tags["app:1"]
        self.running = {"web": image}
        self.events.append(("up", image))
        if abort():
            return StackResult("app", False, "interrupted during the health wait")
        if image in self.healthy_on:
            return StackResult("app", True, "healthy")
        return StackResult("app", False, "service 'web' (app-web-1) unhealthy: migration failed")

    # zfs
    def exists(self, name):
        return True if "@" not in name else name in self.snapshots

    def snapshot(self, dataset, name, recursive=True):
        self.events.append(("snapshot", name))
        self.snapshots.add(f"{dataset}@{name}")

    def rollback(self, dataset, name):
        self.events.append(("rollback", name))

    def destroy_snapshot(self, snap, recursive=False):
        self.events.append(("destroy", snap))
        self.snapshots.discard(snap)


class Runner:
    def mask(self, text):
        return text


@pytest.fixture
def settings(tmp_path):
    return settings_with(tmp_path, f"LOCK_FILE={tmp_path}/lock\nSTATE_DIR={tmp_path}/state\nUPDATE_SNAPSHOTS_KEEP=2\n")


CLOCK = [1_800_000_000]


def make(settings, world):
    def clock():  # a minute per call: every update gets its own stamp
        CLOCK[0] += 60
        return CLOCK[0]
    return UpdateOrchestrator(RunContext(settings, Runner(), world, world, echo=lambda m: None, clock=clock))


def kinds(world):
    return [e[0] for e in world.events]


def test_nothing_new_restarts_nothing(settings):
    world = World(registry_id="sha256:old")
    (r,) = make(settings, world).update()
    assert r.result == UNCHANGED and kinds(world) == ["pull"]


def test_a_healthy_update_keeps_the_snapshot_and_the_old_image(settings):
    world = World()
    (r,) = make(settings, world).update()
    assert r.result == UPDATED and r.message == "web: app:1"
    assert kinds(world) == ["pull", "tag", "stop", "snapshot", "up"]
    assert world.events[-1] == ("up", "sha256:new")
    keep = world.events[1][2]
    assert keep.startswith("orchestrator-rollback/app-web:") and world.tags[keep] == "sha256:old"
    assert r.snapshot in world.snapshots


def test_an_unhealthy_update_rolls_back_data_and_images(settings, tmp_path):
    world = World(healthy_on=("sha256:old",))
    (r,) = make(settings, world).update()
    assert r.result == ROLLED_BACK and "rolled back: service 'web' (app-web-1) unhealthy: migration failed" in r.message
    # ... and the pre-update point is forgotten: the stack is back where it was
    assert kinds(world) == ["pull", "tag", "stop", "snapshot", "up", "stop", "rollback", "tag", "up", "destroy",
                            "untag"]
    assert world.events[-3] == ("up", "sha256:old") and world.tags["app:1"] == "sha256:old"
    assert world.snapshots == set() and make(settings, world).recorded("app") == []
    state = json.loads((tmp_path / "state" / "last_update.json").read_text())
    assert state["app"]["result"] == ROLLED_BACK


def test_a_pull_that_fails_stops_nothing(settings):
    world = World()
    world.pull_error = CommandError("docker compose pull", 1, "Get http://127.0.0.1:1/v2/: connection refused")
    (r,) = make(settings, world).update()
    assert r.result == "failed" and "nothing was stopped" in r.message and "connection refused" in r.message
    assert kinds(world) == ["pull"]


def test_older_pre_update_points_expire_beyond_the_keep_count(settings, tmp_path):
    world = World()
    orch = make(settings, world)
    for n in range(3):
        world.registry["app:1"] = f"sha256:v{n}"
        world.healthy_on.add(f"sha256:v{n}")
        assert orch.update()[0].result == UPDATED
    assert len(orch.recorded("app")) == 2 and len(world.snapshots) == 2
    assert [e[0] for e in world.events].count("destroy") == 1 and ("untag" in kinds(world))


def test_sigterm_in_the_health_wait_rolls_back_and_ends_the_run(settings):
    from management.lock import Interrupted

    world = World(healthy_on=("sha256:old",))
    orch = make(settings, world)

    def up_then_signal(stack, settle, abort=lambda: False):
        if world.tags["app:1"] == "sha256:new":
            os.kill(os.getpid(), signal.SIGTERM)  # held back: the stack is between stop and settled
        return World.up_gated(world, stack, settle, abort)

    world.up_gated = up_then_signal
    with pytest.raises(Interrupted):
        orch.update()
    assert world.running == {"web": "sha256:old"} and "rollback" in kinds(world)
    state = json.loads((settings.state_dir / "last_update.json").read_text())
    assert state["app"]["result"] == ROLLED_BACK and "interrupted by SIGTERM" in state["app"]["message"]


def test_rollback_by_hand_goes_back_to_the_last_pre_update_point(settings):
    world = World()
    orch = make(settings, world)
    assert orch.update()[0].result == UPDATED
    world.events.clear()
    r = orch.rollback("app")
    assert r.result == ROLLED_BACK and kinds(world) == ["stop", "rollback", "tag", "up"]
    assert world.running == {"web": "sha256:old"}


def test_outdated_compares_the_running_image_with_the_registry(settings):
    world = World()
    (row,) = make(settings, world).outdated()
    assert (row.service, row.running, row.status) == ("web", "sha256:old", "newer available")
    world.registry["app:1"] = "sha256:old"
    assert make(settings, world).outdated()[0].status == "up to date"
    assert kinds(world) == []  # read-only


def test_pure_helpers():
    assert expired(["pre-update-20260101T000000Z", "pre-update-20260201T000000Z", "mine", "pre-update-x"], 1) == [
        "pre-update-20260101T000000Z"]
    assert rollback_tag("My.App", "web", "20260101T000000Z") == "orchestrator-rollback/my.app-web:20260101T000000Z"
