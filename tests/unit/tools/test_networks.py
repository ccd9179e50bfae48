"""Networks: only the external networks asked for and missing are created; what cannot be had is named."""

from management.errors import CommandError
from management.tools.networks import Networks
from tests.fakes import FakeRunner


def test_missing_networks_are_created_and_bad_names_or_failed_creates_are_named():
    runner = FakeRunner({("docker", "network", "ls"): "git_net\nbridge\n",
                         ("docker", "network", "create", "broken_net"): CommandError("docker network create", 1, "x")})
    said = []
    problems = Networks(runner, said.append).ensure({"git_net", "photo_net", "-x", "broken_net"})
    assert [c.argv for c in runner.calls if c.argv[:3] == ("docker", "network", "create")] == [
        ("docker", "network", "create", "broken_net"), ("docker", "network", "create", "photo_net")]
    assert set(problems) == {"-x", "broken_net"} and "not a valid name" in problems["-x"]
    assert said == ["creating external network broken_net", "creating external network photo_net"]


def test_nothing_wanted_asks_docker_nothing():
    runner = FakeRunner()
    assert Networks(runner).ensure(set()) == {}
    assert runner.calls == []
