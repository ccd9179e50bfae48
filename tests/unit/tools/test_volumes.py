"""Volumes: where a named volume keeps its bytes (None when there is no such volume), and its removal."""

from pathlib import Path

from management.runner import Result
from management.tools.volumes import Volumes
from tests.fakes import FakeRunner

INSPECT = ("docker", "volume", "inspect", "--format", "{{.Mountpoint}}")


def test_a_volume_path_and_its_removal():
    runner = FakeRunner({(*INSPECT, "pgdata"): "/var/lib/docker/100000.100000/volumes/pgdata/_data\n",
                         (*INSPECT, "gone"): Result((), 1, "", "no such volume")})
    volumes = Volumes(runner)
    assert volumes.path("pgdata") == Path("/var/lib/docker/100000.100000/volumes/pgdata/_data")
    assert volumes.path("gone") is None
    volumes.remove("pgdata")
    assert [(c.argv, c.mutating) for c in runner.calls] == [
        ((*INSPECT, "pgdata"), False), ((*INSPECT, "gone"), False), (("docker", "volume", "rm", "pgdata"), True)]
