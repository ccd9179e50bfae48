"""Containers: a project's containers found by compose's label, inspected, stopped and started by ID."""

import json

from management.tools.containers import PROJECT_LABEL, Containers
from tests.fakes import FakeRunner
from tests.unit.config.test_load import settings_with

INSPECT = ("docker", "inspect", "--format")


def make(tmp_path, answers=None):
    runner = FakeRunner(answers or {})
    return Containers(settings_with(tmp_path, "STOP_TIMEOUT=7\n"), runner), runner


def test_containers_whose_folder_is_gone_are_stopped_and_started_by_id(tmp_path):
    containers, runner = make(tmp_path, {("docker", "ps", "-q", "--filter", f"label={PROJECT_LABEL}=git"): "a1\nb2\n"})
    ids = containers.running("git")
    containers.stop(ids)
    containers.start(ids)
    containers.start([])
    assert ids == ["a1", "b2"]
    assert [(c.argv, c.timeout) for c in runner.calls if c.argv[:2] in (("docker", "stop"), ("docker", "start"))] \
        == [(("docker", "stop", "a1", "b2"), 7), (("docker", "start", "a1", "b2"), None)]


def test_every_projects_containers_from_one_ps_leaving_one_off_runs_out(tmp_path):
    containers, runner = make(tmp_path, {("docker", "ps", "-a"): "a1\tgit\nb2\tphoto\nc3\tother\n"})
    assert containers.of_projects(["git", "photo"]) == {"git": ["a1"], "photo": ["b2"]}
    assert "label=com.docker.compose.oneoff=False" in runner.calls[0].argv
    assert not runner.calls[0].mutating


def test_states_and_what_an_update_reads_of_each_container(tmp_path):
    log = json.dumps([{"Output": "ok\n"}])
    containers, _ = make(tmp_path, {
        ("docker", "ps", "-a", "-q"): "a1\n",
        INSPECT: f'"web"\tsha256:old\trunning\thealthy\t2\t/git-web-1\t0\tunless-stopped\t{log}\n'})
    assert containers.describe("git") == [{"service": "web", "image": "sha256:old", "state": "running",
                                           "health": "healthy", "restarts": 2, "name": "git-web-1", "done": False,
                                           "last_health": "ok"}]
    states, _ = make(tmp_path, {INSPECT: "/git-web-1\texited\tnone\t0\n/git-db-1\trunning\thealthy\t-\n"})
    assert states.states(["a1", "b2"]) == [("git-web-1", "exited", "none", 0), ("git-db-1", "running", "healthy", 0)]
    assert states.inspect(["a1"])[0] == ("git-web-1", "exited", "none")
    assert states.states([]) == []
