"""A real PostgreSQL 15 (Debian's packages, the lab's local image) backed up under a continuous
pgbench TPC-B load, then restored and proven, not just compared:

- stop mode: the stack is stopped for the snapshot; the restored database starts, pg_amcheck is
  clean, the TPC-B invariant holds, and pgbench_history has exactly the rows the live database
  had committed when it stopped;
- live mode with the `CHECKPOINT` before-snapshot command (docs/backup.md): the database is
  snapshotted running; the restored copy starts through crash recovery, pg_amcheck is clean and
  the invariant holds across accounts, tellers, branches and history;
- each restored in place (`restore`) and into scratch (`extract-archive`, a throwaway container),
  and booted by the boot drill, whose probe counts the restored history rows.

Both modes run in one cycle, side by side (stacks `pgstop` and `pglive`), through the same nights:
one night of a stopped stack and one of a live one under the same load, as a user with two
databases has them.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.lab.conftest import build_cycle, teardown_cycle
from tests.lab.envfile import run_cli

pytestmark = [pytest.mark.lab, pytest.mark.compose]
PG_UID, PG_GID = 100100, 100102  # the image's postgres user (100:102), remapped
PSQL = ["psql", "-h", "/tmp", "-U", "postgres", "-d", "bench", "-Atq", "-v", "ON_ERROR_STOP=1"]
START = ("if [ ! -s \"$PGDATA/PG_VERSION\" ]; then initdb -D \"$PGDATA\" -U postgres --auth=trust >/dev/null; fi; "
         "exec postgres -D \"$PGDATA\" -c listen_addresses='' -c unix_socket_directories=/tmp")


MODES = {"pgstop": False, "pglive": True}  # stack -> snapshotted running (live)


def pg_doc(cyc, lab, stack: str, live: bool) -> dict:
    doc = {
        "services": {"db": {
            "image": lab.postgres_image,
            "container_name": f"{cyc.prefix}{stack}",
            "user": "100:102",
            "command": ["sh", "-c", START.replace("$", "$$")],  # compose would interpolate $PGDATA
            "volumes": [f"{cyc.base}/{stack}/pgdata:/var/lib/postgresql/data"],
            "networks": [f"{cyc.prefix}{stack}_net"],
            "stop_grace_period": "30s",
            "healthcheck": {"test": ["CMD", "pg_isready", "-h", "/tmp", "-U", "postgres"],
                            "interval": "1s", "retries": 60},
        }},
        "networks": {f"{cyc.prefix}{stack}_net": {"external": True}},
    }
    # the boot drill's probe: the restored database answers a query on its own data
    count = [*PSQL, "-c", "select count(*) from pgbench_history"]
    doc["x-orchestrator"] = {"drill": {"service": "db", "command": count}}
    if live:
        doc["x-orchestrator"].update({"consistency": "live", "before-snapshot": [
            {"service": "db", "command": ["psql", "-h", "/tmp", "-U", "postgres", "-c", "CHECKPOINT"]}]})
    return doc


def pg_stacks(cyc, lab) -> None:
    hub = cyc.services_dir / "reverseproxy" / "compose.yaml"
    spec = json.loads(hub.read_text())
    for stack, live in MODES.items():
        folder = cyc.services_dir / stack
        folder.mkdir()
        (folder / "compose.yaml").write_text(json.dumps(pg_doc(cyc, lab, stack, live), indent=2))
        spec["services"]["caddy"]["networks"].append(f"{cyc.prefix}{stack}_net")
        spec["networks"][f"{cyc.prefix}{stack}_net"] = {"external": True}
    hub.write_text(json.dumps(spec, indent=2))


def psql(container: str, sql: str) -> str:
    out = subprocess.run(["docker", "exec", container, *PSQL, "-c", sql], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def invariant(container: str) -> dict[str, int]:
    """TPC-B: every table's balance sum equals the sum of history's deltas."""
    sums = {t: int(psql(container, f"select coalesce(sum({t[0]}balance), 0) from pgbench_{t}s"))
            for t in ("account", "teller", "branche")}
    sums["history"] = int(psql(container, "select coalesce(sum(delta), 0) from pgbench_history"))
    sums["rows"] = int(psql(container, "select count(*) from pgbench_history"))
    return sums


def amcheck(container: str) -> None:
    out = subprocess.run(["docker", "exec", container, "pg_amcheck", "-h", "/tmp", "-U", "postgres", "-d", "bench",
                          "--heapallindexed"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and out.stdout.strip() == "", out.stdout + out.stderr


def wait_ready(container: str, timeout: float = 180) -> None:
    end = time.monotonic() + timeout
    while subprocess.run(["docker", "exec", container, "pg_isready", "-h", "/tmp", "-U", "postgres"],
                         capture_output=True).returncode != 0:
        assert time.monotonic() < end, subprocess.run(["docker", "logs", "--tail", "30", container],
                                                      capture_output=True, text=True).stderr
        time.sleep(0.5)


def start_load(container: str) -> None:
    subprocess.run(["docker", "exec", "-d", container, "sh", "-c",
                    "pgbench -h /tmp -U postgres -c 2 -j 1 -T 600 -n bench > /tmp/pgbench.log 2>&1"], check=True)
    time.sleep(3)  # load running before the night begins


def scratch_db(cyc, lab, stack: str, archive: str, tmp_path: Path) -> str:
    """The archive extracted into scratch, and a throwaway PostgreSQL on it (no network)."""
    dest = tmp_path / f"scratch-{uuid.uuid4().hex[:6]}"
    r = run_cli(cyc.env_path, "extract-archive", stack, archive, str(dest), timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    name = f"{cyc.prefix}{stack}-scratch"
    subprocess.run(["docker", "run", "-d", "--name", name, "--network", "none", "--user", "100:102",
                    "-v", f"{dest}/pgdata:/var/lib/postgresql/data", lab.postgres_image, "sh", "-c", START],
                   check=True, capture_output=True, timeout=120)
    wait_ready(name)
    return name


@pytest.fixture
def pg(lab, tmp_path):
    cyc = build_cycle(lab, tmp_path, rewrite=pg_stacks,
                      paths=[f"{stack}/pgdata:REMAPPED_PG_UID:REMAPPED_PGGROUP_UID" for stack in MODES],
                      extra={"REMAPPED_PG_UID": str(PG_UID), "REMAPPED_PGGROUP_UID": str(PG_GID),
                             "HEALTH_TIMEOUT": "120"})
    containers = {stack: f"{cyc.prefix}{stack}" for stack in MODES}
    for container in containers.values():
        wait_ready(container)
        subprocess.run(["docker", "exec", container, "createdb", "-h", "/tmp", "-U", "postgres", "bench"], check=True)
        subprocess.run(["docker", "exec", container, "pgbench", "-h", "/tmp", "-U", "postgres", "-i", "-s", "2",
                        "-q", "bench"], check=True, capture_output=True, timeout=300)
        psql(container, "create extension amcheck")
    yield cyc, containers
    subprocess.run(["docker", "rm", "-f", *(f"{c}-scratch" for c in containers.values())], capture_output=True,
                   timeout=120)
    teardown_cycle(cyc)
    for stack in MODES:
        subprocess.run(["docker", "network", "rm", f"{cyc.prefix}{stack}_net"], capture_output=True, timeout=60)


def test_postgres_under_load_comes_back_from_its_archive_stopped_and_live(pg, lab, tmp_path):
    cyc, containers = pg
    # a night before, so the night under load is weighed by the mass-change guard
    before = run_cli(cyc.env_path, "backup", "--json", timeout=900)
    assert before.returncode == 0, before.stdout + before.stderr
    for container in containers.values():
        start_load(container)
    night = run_cli(cyc.env_path, "backup", "--json", timeout=900)
    assert night.returncode == 0, night.stdout + night.stderr
    report = json.loads(night.stdout)
    # a night of pgbench is an ordinary night, not a mass change (a false alarm the issue names)
    assert report["mass_changes"] == {} and report["held"] == {}, report
    archives, committed, restored = {}, {}, {}
    for stack, live in MODES.items():
        dataset = next(d for d in report["datasets"] if d["service"] == stack)
        print(f"\nchanged (a night under pgbench, {stack}): {dataset['changed']}")
        if live:
            assert dataset["changed"]["modified"] > 0 and dataset["changed"]["deleted"] is not None, dataset
        archives[stack] = dataset["archive"]
        assert (stack in report["live_stacks"]) is live and (stack in report["stopped_stacks"]) is not live
        container = containers[stack]
        wait_ready(container)
        if live:
            subprocess.run(["docker", "exec", container, "pkill", "pgbench"], capture_output=True)
        else:
            # the stop ended pgbench with its container: what the database holds now is what it
            # had committed when it stopped
            committed[stack] = invariant(container)["rows"]

    for stack, live in MODES.items():
        scratch = scratch_db(cyc, lab, stack, archives[stack], tmp_path)
        restored[stack] = got = invariant(scratch)
        assert got["account"] == got["teller"] == got["branche"] == got["history"], (stack, got)
        assert got["rows"] > 0
        if not live:
            assert got["rows"] == committed[stack]
        amcheck(scratch)
        logs = subprocess.run(["docker", "logs", scratch], capture_output=True, text=True).stderr
        if live:  # snapshotted running: it came back through crash recovery
            assert "database system was not properly shut down" in logs, logs[-2000:]
        subprocess.run(["docker", "rm", "-f", scratch], capture_output=True, timeout=120)

    # the boot drill starts each archived stack isolated: PostgreSQL comes up on the restored copy
    # (through crash recovery when it was snapshotted running) and the probe counts its rows
    drill = run_cli(cyc.env_path, "drill", *MODES, "--boot", "--json", timeout=900)
    assert drill.returncode == 0, drill.stdout + drill.stderr
    booted = {s["service"]: s for s in json.loads(drill.stdout)["services"]}
    assert set(booted) == set(MODES), booted
    for stack in MODES:
        assert booted[stack]["booted"] and f"probe: {restored[stack]['rows']}" in booted[stack]["boot"], booted

    # and in place: each stack runs on its restored data
    for stack in MODES:
        r = run_cli(cyc.env_path, "restore", "--yes", stack, archives[stack], timeout=900)
        assert r.returncode == 0, r.stdout + r.stderr
        wait_ready(containers[stack])
        assert invariant(containers[stack]) == restored[stack]
        amcheck(containers[stack])
