"""DockerComposeManager's control flow against a fake runner: argv, hub ordering, networks,
the unmounted-dataset refusal, one stack failing while the others go on."""

import dataclasses
import json
import threading

import pytest

from management.errors import CommandError, ValidationError
from management.runner import Result
from management.tools.compose import (
    COMPOSE_ENV_UNSET,
    DockerComposeManager,
    compose_argv,
    config_argv,
    is_v1_version,
    order_hub,
)
from tests.fakes import FakeRunner
from tests.unit.config.test_load import BASE, settings_with
from tests.unit.stacks.test_rules import CADDY, hub_model, spoke_model, stack_dir


class FakeZFS:
    def __init__(self, unmounted=()):
        self.unmounted = set(unmounted)

    def is_mounted(self, dataset):
        return dataset not in self.unmounted

    def mounted_below(self, root):
        world = self

        class AllBut(set):  # every dataset but the unmounted ones (this fake lists none)
            def __contains__(self, dataset):
                return dataset not in world.unmounted
        return AllBut()


def make(tmp_path, answers=None, unmounted=(), parallel=4, models=None):
    """Three stacks; `docker compose -p NAME config` answers with each one's model."""
    services = tmp_path / "services"
    models = {"reverseproxy": hub_model(), "git": spoke_model("git", "git_net", "gitea"),
              "photo": spoke_model("photo", "photo_net", "immich_server"), **(models or {})}
    stack_dir(services, "reverseproxy", models["reverseproxy"], CADDY)
    for name in ("git", "photo"):
        stack_dir(services, name, models[name])
    settings = settings_with(tmp_path, f"HUB_SERVICE=reverseproxy\nCOMPOSE_PARALLEL={parallel}\nSTOP_TIMEOUT=7\n",
                             base=BASE.replace("SERVICES_DIR=/home/runner/services", f"SERVICES_DIR={services}"))
    config = {tuple(config_argv(("docker", "compose"), n)): json.dumps(m) for n, m in models.items()}
    runner = FakeRunner({("docker", "compose", "version"): "Docker Compose version v2.29.0", **config,
                         **(answers or {})})
    lines = []
    return DockerComposeManager(settings, runner, FakeZFS(unmounted), echo=lines.append), runner, lines


def use_runner(mgr, runner):
    """Swap the runner of the manager and of the docker wrappers it hands out."""
    mgr.runner = mgr.containers.runner = mgr.images.runner = mgr.networks.runner = mgr.volumes.runner = runner


def compose_calls(runner, verb):
    return [c for c in runner.calls if c.argv[:2] == ("docker", "compose") and c.argv[4:5] == (verb,)]


def test_compose_argv_has_no_file_flag_and_config_asks_for_json_on_v2_only():
    assert compose_argv(("docker", "compose"), "git", "up", "-d") == ["docker", "compose", "-p", "git", "up", "-d"]
    assert config_argv(("docker", "compose"), "git") == ["docker", "compose", "-p", "git", "config", "--format", "json"]
    assert config_argv(("docker-compose",), "git") == ["docker-compose", "-p", "git", "config"]
    with pytest.raises(ValidationError, match="'Git Lab' is not a valid compose project name"):
        compose_argv(("docker-compose",), "Git Lab", "up")


def test_v1_is_used_when_docker_compose_v2_is_missing(tmp_path):
    v1 = {tuple(config_argv(("docker-compose",), "git")): "services:\n  app: {image: busybox}\n"}
    mgr, runner, _ = make(tmp_path, {("docker", "compose", "version"): CommandError("docker compose version", 1, ""),
                                     **v1})
    mgr.stop(["git"])
    assert runner.argvs[-1] == ("docker-compose", "-p", "git", "stop")
    assert sum(a[:3] == ("docker", "compose", "version") for a in runner.argvs) == 1


def test_a_docker_compose_that_is_v2_is_used_as_v2(tmp_path):
    # Debian 13 (trixie): the docker-compose package is compose 2.26, a docker CLI plugin in
    # /usr/libexec/docker/cli-plugins with /usr/bin/docker-compose linked to it. Without the
    # docker CLI finding it, `docker-compose` is still v2: JSON model, x-orchestrator kept.
    model = {"name": "git", "services": {"app": {"image": "busybox"}}, "x-orchestrator": {"mode": "stop"}}
    answers = {("docker", "compose", "version"): CommandError("docker compose version", 127, "docker: not found"),
               ("docker-compose", "version", "--short"): "2.26.1\n",
               tuple(config_argv(("docker-compose",), "git", v1=False)): json.dumps(model)}
    mgr, runner, _ = make(tmp_path, answers)
    assert mgr.compose_base() == ("docker-compose",) and not mgr.is_v1
    (stack,) = mgr.stacks(["git"])
    assert stack.error is None and stack.extensions == {"x-orchestrator": {"mode": "stop"}}, stack
    assert ("docker-compose", "-p", "git", "config", "--format", "json") in runner.argvs
    mgr.stop(["git"])
    assert runner.argvs[-1] == ("docker-compose", "-p", "git", "stop")
    assert sum(a[:2] == ("docker-compose", "version") for a in runner.argvs) == 1


@pytest.mark.parametrize("short,v1", [("1.29.2", True), ("1.25.0", True), ("2.26.1", False), ("v2.40.3", False),
                                      ("", True)])
def test_the_version_of_docker_compose_tells_v1_from_v2(short, v1):
    assert is_v1_version(short) is v1


def test_compose_runs_in_the_stack_folder_without_the_callers_compose_variables(tmp_path):
    mgr, runner, _ = make(tmp_path)
    mgr.up(["git"])
    (up,) = compose_calls(runner, "up")
    assert up.cwd == str(tmp_path / "services" / "git")
    assert up.env == {"ZFS_BASE_MOUNTPOINT": "/datapool/services", "PWD": up.cwd}
    assert "COMPOSE_FILE" in COMPOSE_ENV_UNSET and "COMPOSE_PROFILES" in COMPOSE_ENV_UNSET


def test_each_stack_is_read_once_per_run(tmp_path):
    mgr, runner, _ = make(tmp_path)
    mgr.up()
    mgr.stop()
    mgr.start()
    assert sorted(c.argv[3] for c in compose_calls(runner, "config")) == ["git", "photo", "reverseproxy"]


def test_up_starts_the_hub_first_stop_stops_it_last_without_shortening_grace(tmp_path):
    mgr, runner, _ = make(tmp_path)
    mgr.up()
    ups = [c.argv[3] for c in compose_calls(runner, "up")]
    assert ups[0] == "reverseproxy" and sorted(ups[1:]) == ["git", "photo"]
    runner.calls.clear()
    mgr.stop()
    stops = compose_calls(runner, "stop")
    assert [c.argv[3] for c in stops][-1] == "reverseproxy"
    assert all(c.argv[4:] == ("stop",) and c.timeout == 7 for c in stops)  # no -t; STOP_TIMEOUT bounds the wait


def test_a_stop_past_stop_timeout_is_reported_with_the_declared_grace(tmp_path):
    err = CommandError("docker compose -p git stop", None, "", reason="timed out after 7s")
    mgr, _, _ = make(tmp_path, {("docker", "compose", "-p", "git", "stop"): err})
    results = {r.stack: r for r in mgr.stop()}
    assert not results["git"].ok and results["photo"].ok
    assert results["git"].message == "stop did not finish within STOP_TIMEOUT=7s (longest declared " \
                                     "stop_grace_period: 90s)"


def test_a_stack_compose_cannot_read_is_refused_alone_with_composes_words(tmp_path):
    bad = CommandError("docker compose -p photo config", 1,
                       "error while interpolating services.app.image: required variable IMG is missing a value")
    mgr, runner, lines = make(tmp_path, {tuple(config_argv(("docker", "compose"), "photo")): bad})
    results = {r.stack: r for r in mgr.up()}
    assert results["git"].ok and results["reverseproxy"].ok
    assert not results["photo"].ok and "required variable IMG is missing a value" in results["photo"].message
    assert str(tmp_path / "services" / "photo" / "compose.yaml") in results["photo"].message
    assert "photo" not in [c.argv[3] for c in compose_calls(runner, "up")]
    assert {r.stack: r.ok for r in mgr.stop()} == {"git": True, "photo": False, "reverseproxy": True}


def test_composes_logfmt_lines_are_shown_as_its_message_alone(tmp_path):
    # what compose v2 prints on stderr away from a terminal: logrus's logfmt, Go's quoting
    bad = CommandError("docker compose -p photo config", 15,
                       'time="2026-01-05T10:00:00Z" level=warning msg="/srv/photo/compose.yaml: the attribute '
                       '`version` is obsolete, it will be ignored, please remove it to avoid potential confusion"\n'
                       'validating /srv/photo/compose.yaml: services.app additional properties \'bogus\' not allowed\n'
                       'time="2026-01-05T10:00:00Z" level=warning msg="a \\"quoted\\" word\\tand a tab"')
    mgr, _runner, _lines = make(tmp_path, {tuple(config_argv(("docker", "compose"), "photo")): bad})
    error = {s.name: s for s in mgr.stacks()}["photo"].error
    assert "time=" not in error and "level=" not in error and "msg=" not in error
    assert error.startswith("/srv/photo/compose.yaml: the attribute `version` is obsolete")
    assert "services.app additional properties 'bogus' not allowed" in error
    assert error.endswith('a "quoted" word\tand a tab')


def test_external_networks_created_once_and_only_missing_ones(tmp_path):
    mgr, runner, lines = make(tmp_path, {("docker", "network", "ls"): "bridge\nhost\ngit_net\n"})
    mgr.up()
    assert [a for a in runner.argvs if a[:2] == ("docker", "network")] == [
        ("docker", "network", "ls", "--format", "{{.Name}}"), ("docker", "network", "create", "photo_net")]
    creates = [i for i, a in enumerate(runner.argvs) if a[:3] == ("docker", "network", "create")]
    first_up = min(i for i, a in enumerate(runner.argvs) if a[4:5] == ("up",))
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

    mgr, runner, _ = make(tmp_path, parallel=2)
    use_runner(mgr, Slow(runner.answers))
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
    result = mgr._wait_healthy(stack)
    assert not result.ok and "gitea (unhealthy)" in result.message


def test_a_health_poll_is_one_inspect_the_project_is_listed_once(tmp_path):
    mgr, runner, _ = make(tmp_path, {
        ("docker", "ps"): "abc\n",
        ("docker", "inspect"): Result(("docker",), 0, "/gitea\trunning\tstarting\n"),
    })
    mgr.s = dataclasses.replace(mgr.s, health_timeout=1)
    result = mgr._wait_healthy(mgr.stacks(["git"])[0])
    assert not result.ok and "gitea (starting)" in result.message
    kinds = [c.argv[1] for c in runner.calls if c.argv[0] == "docker" and c.argv[1] in ("ps", "inspect")]
    assert kinds.count("ps") == 1 and kinds.count("inspect") >= 3  # inside the window every poll counts


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


def test_an_empty_list_of_stacks_is_no_stack_not_every_stack(tmp_path):
    """The backup window stops `[]` when every running stack is live: nothing may stop."""
    mgr, runner, _ = make(tmp_path)
    assert mgr.stop([]) == [] and mgr.start([]) == [] and mgr.down([]) == []
    assert [c for c in runner.calls if c.argv[4:5] in (("stop",), ("start",), ("down",))] == []


class HealthWorld(FakeRunner):
    """docker as the health wait sees it: `compose start` of a stack makes its containers
    `starting`; each inspect ages them a poll, and a stack is healthy `polls` inspects after its
    start (or exits 1: `crash`)."""

    def __init__(self, answers, polls, crash=()):
        super().__init__(answers)
        self.polls, self.crash, self.age = polls, set(crash), {}
        self.lock = threading.Lock()

    def run(self, argv, **kw):
        argv = tuple(str(a) for a in argv)
        with self.lock:
            if argv[:2] == ("docker", "compose") and argv[4:5] == ("start",):
                self.age[argv[3]] = 0
            if argv[:2] == ("docker", "ps") and "--format" in argv:  # every project's containers, once
                self.calls.append(type(self.calls[0])(argv, False, {}, None, None))
                return Result(argv, 0, "".join(f"id-{p}\t{p}\n" for p in self.age))
            if argv[:2] == ("docker", "inspect"):
                self.calls.append(type(self.calls[0])(argv, False, {}, None, None))
                rows = []
                for cid in argv[4:]:
                    project = cid.removeprefix("id-")
                    self.age[project] += 1
                    state, health = ("exited", "unhealthy") if project in self.crash else \
                        ("running", "healthy" if self.age[project] >= self.polls[project] else "starting")
                    rows.append(f"/{project}-app\t{state}\t{health}\t{1 if project in self.crash else 0}\n")
                return Result(argv, 0, "".join(rows))
        return super().run(argv, **kw)


def test_stacks_wait_for_health_together_not_one_compose_worker_each(tmp_path):
    """COMPOSE_PARALLEL=1 and two spokes with healthchecks: both are started before either is
    healthy (the wait holds no worker), every poll is one inspect of both, and each stack's
    result is its own: the slow one is timed to its own healthy, the crashed one fails alone."""
    hc = {"healthcheck": {"test": ["CMD", "true"]}}
    models = {"git": spoke_model("git", "git_net", "gitea", **hc), "photo": spoke_model("photo", "photo_net",
                                                                                         "immich_server", **hc)}
    mgr, _, lines = make(tmp_path, parallel=1, models=models)
    world = HealthWorld(dict(mgr.runner.answers), polls={"git": 2, "photo": 5})
    use_runner(mgr, world)
    results = {r.stack: r for r in mgr.start(["git", "photo"])}
    assert results["git"].ok and results["photo"].ok and results["git"].message == "healthy"
    verbs = [("start", c.argv[3]) if c.argv[:2] == ("docker", "compose") else (c.argv[1], len(c.argv) - 4)
             for c in world.calls if c.argv[:2] == ("docker", "compose") and c.argv[4:5] == ("start",)
             or c.argv[1:2] in (("ps",), ("inspect",))]
    assert verbs[:3] == [("start", "git"), ("start", "photo"), ("ps", verbs[2][1])], verbs
    inspects = [n for kind, n in verbs if kind == "inspect"]
    assert inspects[:2] == [2, 2] and inspects[-1] == 1 and len(inspects) == 5, inspects  # git done after 2 polls
    assert results["git"].finished_at < results["photo"].finished_at
    assert lines.index("  git: ok - healthy") < lines.index("  photo: ok - healthy")

    world = HealthWorld(dict(world.answers), polls={"git": 2, "photo": 2}, crash={"photo"})
    use_runner(mgr, world)
    results = {r.stack: r for r in mgr.start(["git", "photo"])}
    assert results["git"].ok and not results["photo"].ok
    assert "photo-app (exited, exit code 1)" in results["photo"].message


def test_status_asks_docker_twice_for_every_stack_together_not_twice_per_stack(tmp_path):
    """One `docker ps` lists every project's containers and one `docker inspect` reads them all,
    however many stacks (issue 38: 100 stacks were 200 docker processes one after the other)."""
    ps = ("docker", "ps", "-a", "--filter", "label=com.docker.compose.project")
    mgr, runner, _ = make(tmp_path, answers={
        ps: "id-g1\tgit\nid-g2\tgit\nid-p1\tphoto\nid-x\tsomeone-else\n",
        ("docker", "inspect"): "/git-app\trunning\thealthy\t0\n/git-db\texited\tnone\t0\n"
                               "/photo-app\trunning\tnone\t0\n"})
    rows = {r.stack: r for r in mgr.status()}
    assert (rows["git"].running, rows["git"].total, rows["git"].state, rows["git"].health) == \
        (1, 2, "partial", "healthy")
    assert (rows["photo"].running, rows["photo"].total, rows["photo"].state) == (1, 1, "running")
    assert rows["reverseproxy"].state == "absent"
    docker = [c.argv for c in runner.calls if c.argv[0] == "docker" and c.argv[1] in ("ps", "inspect")]
    assert [a[1] for a in docker] == ["ps", "inspect"]
    assert docker[1][4:] == ("id-g1", "id-g2", "id-p1")  # in the order of the stacks asked


def test_status_of_a_stack_whose_containers_went_away_meanwhile_asks_that_stack_again(tmp_path):
    class Recreated(FakeRunner):  # git's container was recreated between `docker ps` and `docker inspect`
        def run(self, argv, **kw):
            if tuple(argv[:2]) == ("docker", "inspect") and "id-old" in argv:
                raise CommandError("docker inspect", 1, "Error: No such object: id-old")
            return super().run(argv, **kw)

    mgr, runner, _ = make(tmp_path)
    use_runner(mgr, Recreated({**runner.answers,
                               ("docker", "ps", "-a", "--filter", "label=com.docker.compose.project"): "id-old\tgit\n",
                               ("docker", "ps", "-a", "-q"): "id-new\n",
                               ("docker", "inspect"): "/git-app\trunning\tnone\t0\n"}))
    rows = {r.stack: r for r in mgr.status(["git", "photo"])}
    assert (rows["git"].running, rows["git"].state) == (1, "running") and rows["photo"].state == "absent"


def with_store(tmp_path, runner=None, dry_run=False):
    """A manager whose models are kept in a StateStore across runs, `docker` found on PATH."""
    from management.state import StateStore

    mgr, fake, lines = make(tmp_path)
    bin_dir = tmp_path / "bin"
    if not bin_dir.exists():  # once: a docker rewritten is an upgraded compose, another key
        bin_dir.mkdir()
        (bin_dir / "docker").write_text("#!/bin/sh\n")
        (bin_dir / "docker").chmod(0o755)
    runner = runner or FakeRunner(fake.answers, dry_run=dry_run)
    runner.base_env = {"PATH": str(bin_dir)}
    use_runner(mgr, runner)
    mgr.store = StateStore(tmp_path / "state")
    return mgr, runner


def test_a_kept_model_is_used_while_its_inputs_are_the_same_and_read_again_when_one_changes(tmp_path):
    first, runner = with_store(tmp_path)
    models = {s.name: s for s in first.stacks()}
    assert len(compose_calls(runner, "config")) == 3
    again, runner2 = with_store(tmp_path)  # the next run: a new manager, the same STATE_DIR
    assert {s.name: s for s in again.stacks()} == models
    assert compose_calls(runner2, "config") == []  # not one compose process
    (tmp_path / "services" / "git" / ".env").write_text("TAG=2\n")
    third, runner3 = with_store(tmp_path)
    third.stacks()
    assert [c.argv[3] for c in compose_calls(runner3, "config")] == ["git"]
    assert oct((tmp_path / "state" / "compose-models" / "git.json").stat().st_mode & 0o777) == "0o600"


def test_a_model_compose_could_not_read_or_a_dry_run_keeps_nothing(tmp_path):
    failing = FakeRunner({("docker", "compose", "-p", "git", "config"): Result(("docker",), 1, "", "yaml: bad")})
    mgr, runner = with_store(tmp_path, runner=failing)
    mgr.stacks(["git"])
    assert not (tmp_path / "state" / "compose-models" / "git.json").exists()
    dry, _ = with_store(tmp_path, dry_run=True)
    dry.stacks(["photo"])
    assert not (tmp_path / "state" / "compose-models").exists()


def test_without_a_store_every_run_asks_compose(tmp_path):
    mgr, runner, _ = make(tmp_path)
    mgr.stacks()
    mgr2, runner2, _ = make(tmp_path)
    mgr2.stacks()
    assert len(compose_calls(runner2, "config")) == 3
