"""Compose stacks on the real lab: dockerd with userns-remap, a Caddy hub and busybox spokes
from locally built images, data on zfs-fuse datasets."""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from tests.lab.conftest import build_cycle, teardown_cycle
from tests.lab.envfile import LAB_COMPOSE, run_cli, write_lab_env, write_shim
from tests.lab.stacks import volume_lines, write_services

pytestmark = [pytest.mark.lab, pytest.mark.compose]
CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}


def hub_port(cyc) -> int:
    spec = json.loads((cyc.services_dir / "reverseproxy" / "compose.yaml").read_text())
    return int(spec["services"]["caddy"]["ports"][0].split(":")[1])


def started_at(container: str) -> str:
    out = subprocess.run(["docker", "inspect", "--format", "{{.State.StartedAt}}", container],
                         capture_output=True, text=True, check=True, timeout=30)
    return out.stdout.strip()  # RFC 3339 in UTC, same width: compares as a string


def https_through_hub(host: str, port: int, deadline: float = 30, path: str = "/") -> str:
    """GET https://<host>:<port>/ via 127.0.0.1, as a browser on the LAN would (the hub's CA is
    internal, hence -k). Caddy issues the certificate on the first handshake: retry briefly."""
    end = time.monotonic() + deadline
    while True:
        r = subprocess.run(["curl", "-sk", "--max-time", "5", "--resolve", f"{host}:{port}:127.0.0.1",
                            f"https://{host}:{port}{path}"], capture_output=True, text=True)
        if r.returncode == 0 and r.stdout or time.monotonic() > end:
            return r.stdout
        time.sleep(0.5)


@pytest.mark.v1_contract
def test_docker_up_starts_the_hub_first_and_it_reaches_every_spoke_over_https(cycle):
    prefix = cycle.prefix
    hub = f"{prefix}central_hub"
    assert cycle.containers() == {hub, f"{prefix}git", f"{prefix}photo"}
    for spoke in cycle.spokes:
        assert started_at(hub) < started_at(f"{prefix}{spoke}")
        assert https_through_hub(f"{spoke}.lab.test", hub_port(cycle)) == f"<h1>{spoke}</h1>"
    # up again changes nothing and says so per stack
    again = run_cli(cycle.env_path, "docker-up")
    assert again.returncode == 0, again.stderr
    assert again.stdout.index("reverseproxy: ok") < again.stdout.index("git: ok")
    status = run_cli(cycle.env_path, "status")
    assert status.returncode == 0
    for stack in ("reverseproxy", "git", "photo"):
        assert any(line.split()[:1] == [stack] and "running" in line for line in status.stdout.splitlines()), \
            status.stdout


def test_a_spoke_on_an_unmounted_dataset_is_refused_and_the_others_start(cycle):
    down = run_cli(cycle.env_path, "docker-down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert cycle.containers() == set()
    dataset = f"{cycle.parent}/photo"
    subprocess.run(["zfs", "unmount", dataset], check=True, timeout=60)
    try:
        up = run_cli(cycle.env_path, "docker-up")
        assert up.returncode == 1
        out = up.stdout + up.stderr
        assert "photo: FAILED - not started" in out and f"{dataset}, which is not mounted" in out
        assert cycle.containers() == {f"{cycle.prefix}central_hub", f"{cycle.prefix}git"}
        assert not (cycle.base / "photo" / "data").exists()  # nothing landed on the OS disk
    finally:
        subprocess.run(["zfs", "mount", dataset], check=True, timeout=60)
    up = run_cli(cycle.env_path, "docker-up", "photo")
    assert up.returncode == 0, up.stdout + up.stderr
    assert len(cycle.containers()) == 3


def test_check_stacks_flags_a_published_spoke_port_and_a_hub_missing_a_network(lab, tmp_path):
    """Also: compose's models are kept across runs (issue 38) and read again exactly for the
    stacks whose inputs changed: a compose file, `.env`, a file an `env_file:` names."""
    prefix = lab.unique("ck")
    env_path, v = write_lab_env(tmp_path, lab, volume_lines(["git", "photo"]))
    services = Path(v["SERVICES_DIR"])
    write_services(services, prefix=prefix, busybox_image=lab.busybox_image, caddy_image=lab.caddy_image,
                   base=Path(v["ZFS_BASE_MOUNTPOINT"]), spokes=["git", "photo"], port=8443)
    git = services / "git" / "compose.yaml"
    spec = json.loads(git.read_text())
    spec["services"]["web"]["env_file"] = ["conf/web.env"]
    git.write_text(json.dumps(spec))
    (services / "git" / "conf").mkdir()
    (services / "git" / "conf" / "web.env").write_text("GREETING=hello\n")
    shims, calls = tmp_path / "shims", tmp_path / "config-calls"
    if LAB_COMPOSE == "v1":  # docker-compose -p NAME config
        write_shim(shims, "docker-compose", f'[ "$3" = config ] && echo "$2" >> {calls}')
    else:  # docker compose -p NAME config --format json
        write_shim(shims, "docker", f'[ "$4" = config ] && echo "$3" >> {calls}')

    def check_stacks():
        calls.unlink(missing_ok=True)
        r = run_cli(env_path, "check-stacks", path_prefix=shims)
        return r, sorted(calls.read_text().split()) if calls.exists() else []

    ok, read = check_stacks()
    assert ok.returncode == 0 and "OK (3 stacks" in ok.stdout, ok.stdout + ok.stderr
    assert read == ["git", "photo", "reverseproxy"]
    again, read = check_stacks()
    assert read == [] and again.stdout == ok.stdout  # the kept models: not one compose process
    (services / "photo" / ".env").write_text("TZ=UTC\n")
    _, read = check_stacks()
    assert read == ["photo"]
    (services / "git" / "conf" / "web.env").write_text("GREETING=bye\n")
    _, read = check_stacks()
    assert read == ["git"]

    photo = services / "photo" / "compose.yaml"
    spec = json.loads(photo.read_text())
    spec["services"]["web"]["ports"] = ["8080:8080"]
    photo.write_text(json.dumps(spec))
    hub = services / "reverseproxy" / "compose.yaml"
    spec = json.loads(hub.read_text())
    spec["services"]["caddy"]["networks"].remove(f"{prefix}photo_net")
    hub.write_text(json.dumps(spec))

    bad, read = check_stacks()
    assert bad.returncode == 1 and read == ["photo", "reverseproxy"]
    out = bad.stdout + bad.stderr
    assert f"{photo}: service 'web' publishes ports 8080:8080: only the hub" in out
    assert f"{hub}: the hub does not join '{prefix}photo_net'" in out


def uptime_marks(base: Path, spoke: str) -> tuple[float, float]:
    """(TERM received, stop done) in the spoke's own words, on the kernel's uptime clock."""
    data = base / spoke / "data"
    return tuple(float((data / f).read_text().split()[0]) for f in (".term", ".stopped"))


def test_several_slow_stacks_stop_at_the_same_time(lab, tmp_path):
    spokes = ["alpha", "bravo", "charlie"]
    cyc = build_cycle(lab, tmp_path, spokes=spokes, stop_delay=3)
    try:
        stop = run_cli(cyc.env_path, "docker-stop")
        assert stop.returncode == 0, stop.stdout + stop.stderr
        assert cyc.containers() == set()
        marks = [uptime_marks(cyc.base, s) for s in spokes]
        # each got TERM before any other had finished stopping: the intervals overlap
        assert max(t for t, _ in marks) < min(done for _, done in marks), marks
    finally:
        teardown_cycle(cyc)


def slow_to_healthy(seconds: int):
    """alpha's healthcheck passes only `seconds` after each start (a marker its command makes)."""
    def rewrite(cyc, lab) -> None:
        path = cyc.services_dir / "alpha" / "compose.yaml"
        doc = json.loads(path.read_text())
        web = doc["services"]["web"]
        web["command"][-1] = f"rm -f /tmp/ready; (sleep {seconds}; touch /tmp/ready) & " + web["command"][-1]
        web["healthcheck"]["test"] = ["CMD", "test", "-e", "/tmp/ready"]
        path.write_text(json.dumps(doc, indent=2) + "\n")
    return rewrite


@pytest.mark.v1_contract
def test_a_stack_waiting_for_its_healthcheck_does_not_hold_back_the_next(lab, tmp_path):
    """COMPOSE_PARALLEL=1: alpha becomes healthy 12 s after its start, bravo at once. bravo is
    started while alpha is still waited for, so bravo is reported healthy first; were the wait
    holding the one compose worker, bravo could not even start before alpha was healthy."""
    cyc = build_cycle(lab, tmp_path, spokes=["alpha", "bravo"], extra={"COMPOSE_PARALLEL": "1"},
                      rewrite=slow_to_healthy(12))
    try:
        assert run_cli(cyc.env_path, "docker-stop").returncode == 0
        start = run_cli(cyc.env_path, "docker-start")
        assert start.returncode == 0, start.stdout + start.stderr
        lines = start.stdout.splitlines()
        assert "  alpha: ok - healthy" in lines and "  bravo: ok - healthy" in lines, start.stdout
        assert lines.index("  bravo: ok - healthy") < lines.index("  alpha: ok - healthy"), start.stdout
        assert cyc.containers() == {f"{cyc.prefix}central_hub", f"{cyc.prefix}alpha", f"{cyc.prefix}bravo"}
    finally:
        teardown_cycle(cyc)


@pytest.mark.v1_contract
def test_the_boot_unit_verifies_and_its_commands_bring_stacks_up_and_down(cycle, tmp_path):
    units = tmp_path / "units"
    installed = run_cli(cycle.env_path, "install-autostart", "--unit-dir", str(units))
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert "systemd-analyze verify: ok" in installed.stdout  # systemd-analyze is on the lab
    unit = (units / "orchestrator-stacks.service").read_text()
    assert "RemainAfterExit=yes" in unit
    dropin = (units / "docker.service.d" / "orchestrator-after-zfs.conf").read_text()
    after = next(x for x in dropin.splitlines() if x.startswith("After=")).split("=", 1)[1].split()
    assert "zfs-mount.service" in after

    assert run_cli(cycle.env_path, "docker-down").returncode == 0
    assert cycle.containers() == set()

    def command(key: str, text: str = unit) -> list[str]:
        line = next(x for x in text.splitlines() if x.startswith(f"{key}="))
        return shlex.split(line.split("=", 1)[1])

    # what systemd runs before dockerd: every dataset of the lab's pool is mounted, so it returns
    wait = subprocess.run(command("ExecStartPre", dropin), capture_output=True, text=True, timeout=120, cwd="/")
    assert wait.returncode == 0, wait.stdout + wait.stderr

    # what systemd would run at boot, and at shutdown
    boot = subprocess.run(command("ExecStart"), capture_output=True, text=True, timeout=300, cwd="/")
    assert boot.returncode == 0, boot.stdout + boot.stderr
    assert len(cycle.containers()) == 3
    halt = subprocess.run(command("ExecStop"), capture_output=True, text=True, timeout=300, cwd="/")
    assert halt.returncode == 0, halt.stdout + halt.stderr
    assert cycle.containers() == set()
    assert run_cli(cycle.env_path, "docker-start").returncode == 0

    removed = run_cli(cycle.env_path, "uninstall-autostart", "--unit-dir", str(units))
    assert removed.returncode == 0 and not (units / "orchestrator-stacks.service").exists()
    assert not (units / "docker.service.d").exists()
    (units / "orchestrator-stacks.service").write_text("[Unit]\nDescription=not ours\n")
    refused = run_cli(cycle.env_path, "install-autostart", "--unit-dir", str(units))
    assert refused.returncode != 0 and "not written by this tool" in refused.stdout + refused.stderr
    assert "not ours" in (units / "orchestrator-stacks.service").read_text()


