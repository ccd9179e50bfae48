"""DockerComposeManager's control flow against a fake runner: argv, hub ordering, networks,
the unmounted-dataset refusal, one stack failing while the others go on."""

import dataclasses
import threading

import pytest

from management.docker_manager import DockerComposeManager, compose_argv, order_hub
from management.errors import CommandError, ValidationError
from management.runner import Result
from tests.fakes import FakeRunner
from tests.unit.test_compose_file import HUB, spoke, stack_dir
from tests.unit.test_config import BASE, settings_with


class FakeZFS:
    def __init__(self, unmounted=()):
        self.unmounted = set(unmounted)

    def is_mounted(self, dataset):
        return dataset not in self.unmounted


def make(tmp_path, answers=None, unmounted=(), parallel=4):
    services = tmp_path / "services"
    stack_dir(services, "reverseproxy", HUB, "git.lan {\n\treverse_proxy gitea:3000\n}\n")
    stack_dir(services, "git", spoke("git_net", "gitea"))
    stack_dir(services, "photo", spoke("photo_net", "immich_server"))
    settings = settings_with(tmp_path, f"HUB_SERVICE=reverseproxy\nCOMPOSE_PARALLEL={parallel}\nSTOP_TIMEOUT=7\n",
                             base=BASE.replace("SERVICES_DIR=/home/runner/services", f"SERVICES_DIR={services}"))
    runner = FakeRunner({("docker", "compose", "version"): "Docker Compose version v2.29.0", **(answers or {})})
    lines = []
    return DockerComposeManager(settings, runner, FakeZFS(unmounted), echo=lines.append), runner, lines


def compose_calls(runner, verb):
    return [c for c in runner.calls if c.argv[:2] == ("docker", "compose") and verb in c.argv[6:]]


def test_compose_argv_v1_and_v2(tmp_path):
    f = tmp_path / "compose.yaml"
    assert compose_argv(("docker", "compose"), "git", f, "up", "-d") == [
        "docker", "compose", "-p", "git", "-f", str(f), "up", "-d"]
    assert compose_argv(("docker-compose",), "git", f, "stop") == ["docker-compose", "-p", "git", "-f", str(f), "stop"]
    with pytest.raises(ValidationError, match="'Git Lab' is not a valid compose project name"):
        compose_argv(("docker-compose",), "Git Lab", f, "up")


def test_v1_is_used_when_docker_compose_v2_is_missing(tmp_path):
    mgr, runner, _ = make(tmp_path, {("docker", "compose", "version"): CommandError("docker compose version", 1, "")})
    mgr.stop(["git"])
    assert runner.argvs[-1][:3] == ("docker-compose", "-p", "git")
    assert sum(a[:3] == ("docker", "compose", "version") for a in runner.argvs) == 1


def test_up_starts_the_hub_first_stop_stops_it_last(tmp_path):
    mgr, runner, _ = make(tmp_path)
    mgr.up()
    ups = [c.argv[3] for c in compose_calls(runner, "up")]
    assert ups[0] == "reverseproxy" and sorted(ups[1:]) == ["git", "photo"]
    assert all(c.env == {"ZFS_BASE_MOUNTPOINT": "/datapool/services"} for c in compose_calls(runner, "up"))
    runner.calls.clear()
    mgr.stop()
    stops = [c.argv for c in compose_calls(runner, "stop")]
    assert [a[3] for a in stops][-1] == "reverseproxy" and all(a[-2:] == ("-t", "7") for a in stops)


def test_external_networks_created_once_and_only_missing_ones(tmp_path):
    mgr, runner, lines = make(tmp_path, {("docker", "network", "ls"): "bridge\nhost\ngit_net\n"})
    mgr.up()
    assert [a for a in runner.argvs if a[:2] == ("docker", "network")] == [
        ("docker", "network", "ls", "--format", "{{.Name}}"), ("docker", "network", "create", "photo_net")]
    creates = [i for i, a in enumerate(runner.argvs) if a[:3] == ("docker", "network", "create")]
    first_up = min(i for i, a in enumerate(runner.argvs) if "up" in a[6:])
    assert creates[0] < first_up
    assert "creating external network photo_net" in lines


def test_a_stack_on_an_unmounted_dataset_is_refused_and_the_others_start(tmp_path):
    mgr, runner, lines = make(tmp_path, unmounted={"datapool/services/photo"})
    results = {r.stack: r for r in mgr.up()}
    assert results["git"].ok and results["reverseproxy"].ok
    assert not results["photo"].ok
    assert "datapool/services/photo, which is not mounted" in results["photo"].message
    assert [c.argv[3] for c in compose_calls(runner, "up")].count("photo") == 0


def test_one_stack_failing_does_not_stop_the_others(tmp_path):
    err = CommandError("docker compose -p git up -d", 1, "Error response from daemon: driver failed")
    mgr, runner, lines = make(tmp_path, {("docker", "compose", "-p", "git"): err})
    results = {r.stack: r for r in mgr.up()}
    assert not results["git"].ok and "driver failed" in results["git"].message
    assert results["photo"].ok and results["reverseproxy"].ok
    assert any(line.startswith("  git: FAILED") for line in lines)


def test_stacks_run_in_parallel_bounded_by_compose_parallel(tmp_path):
    active, peak, lock = [0], [0], threading.Lock()
    gate = threading.Barrier(2, timeout=5)

    class Slow(FakeRunner):
        def run(self, argv, **kw):
            if "stop" in argv:
                with lock:
                    active[0] += 1
                    peak[0] = max(peak[0], active[0])
                if argv[3] != "reverseproxy":
                    gate.wait()  # both spokes must be inside at once, or this times out
                with lock:
                    active[0] -= 1
            return super().run(argv, **kw)

    mgr, _, _ = make(tmp_path, parallel=2)
    mgr.runner = Slow({("docker", "compose", "version"): "v2"})
    assert all(r.ok for r in mgr.stop())
    assert peak[0] == 2


def test_unknown_stack_is_named_with_the_known_ones(tmp_path):
    mgr, runner, _ = make(tmp_path)
    (result,) = mgr.up(["nope"])
    assert not result.ok and "unknown stack(s) 'nope'" in result.message
    assert "known: git, photo, reverseproxy" in result.message


def test_wait_healthy_reports_the_unhealthy_container(tmp_path):
    mgr, runner, _ = make(tmp_path, {
        ("docker", "ps"): "abc\n",
        ("docker", "inspect"): Result(("docker",), 0, "/gitea\trunning\tunhealthy\n"),
    })
    mgr.s = dataclasses.replace(mgr.s, health_timeout=0)
    stack = mgr.stacks(["git"])[0]
    stack.healthchecks.add("app")
    result = mgr._wait_healthy(stack)
    assert not result.ok and "gitea (unhealthy)" in result.message


def test_order_hub():
    assert order_hub(["git", "reverseproxy", "photo"], "reverseproxy") == (["reverseproxy"], ["git", "photo"])
    assert order_hub(["git"], "reverseproxy") == ([], ["git"])


def test_a_network_that_cannot_be_created_refuses_only_the_stacks_that_need_it(tmp_path):
    err = CommandError("docker network create photo_net", 1, "Error response from daemon: pool overlaps")
    mgr, runner, _ = make(tmp_path, {("docker", "network", "ls"): "git_net\n",
                                     ("docker", "network", "create", "photo_net"): err})
    results = {r.stack: r for r in mgr.up()}
    assert not results["photo"].ok and "'photo_net' cannot be created" in results["photo"].message
    assert "pool overlaps" in results["photo"].message and "photo/compose.yaml" in results["photo"].message
    assert results["git"].ok  # the hub joins photo_net too, and is refused with it
    assert not results["reverseproxy"].ok
    assert [c.argv[3] for c in compose_calls(runner, "up")] == ["git"]
