"""Stacks as compose itself reads them, on the real lab (compose v2 by default, v1 in the second
pass of `make test`): a data path built in the stack's `.env`, an `include:`-only stack, a
`!reset` override, an override file `docker-up` must not drop, a 45 s stop_grace_period, one
broken stack among good ones."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.lab.conftest import build_cycle, teardown_cycle
from tests.lab.envfile import LAB_COMPOSE, run_cli
from tests.lab.stacks import SPOKE_PORT, spoke_compose
from tests.lab.test_stacks_lab import https_through_hub, hub_port

pytestmark = [pytest.mark.lab, pytest.mark.compose]
V2 = LAB_COMPOSE == "v2"
SPOKES = ["envpath", "inc", "slow", "reset"]


def inspect(container: str, fmt: str) -> str:
    return subprocess.run(["docker", "inspect", "--format", fmt, container], capture_output=True, text=True,
                          check=True, timeout=30).stdout.strip()


def rewrite(cyc, lab) -> None:
    """Turn the plain lab spokes into the shapes upstream projects ship."""
    p, base, sd = cyc.prefix, cyc.base, cyc.services_dir
    # immich's convention: the data path lives in the stack's .env, built from ZFS_BASE_MOUNTPOINT
    doc = json.loads(spoke_compose("envpath", p, "${LAB_IMAGE}", base))
    doc["services"]["web"]["volumes"] = ["${UPLOAD_LOCATION}:/www"]
    (sd / "envpath" / "compose.yaml").write_text(json.dumps(doc))
    (sd / "envpath" / ".env").write_text(
        f"LAB_IMAGE={lab.busybox_image}\nUPLOAD_LOCATION=${{ZFS_BASE_MOUNTPOINT}}/envpath/data\n")
    # a compose.yaml that holds only `include:`
    inc = sd / "inc"
    (inc / "app").mkdir()
    (inc / "compose.yaml").rename(inc / "app" / "compose.yaml")
    (inc / "compose.yaml").write_text("include:\n  - app/compose.yaml\n")
    # a database-like service: 45 s grace, takes 12 s to shut down cleanly; an override file adds a label
    doc = json.loads((sd / "slow" / "compose.yaml").read_text())
    web = doc["services"]["web"]
    web["stop_grace_period"] = "45s"
    web["command"] = ["sh", "-c", f"httpd -p {SPOKE_PORT} -h /www; trap 'rm -f /www/.clean; sleep 12; "
                      "touch /www/.clean; exit 0' TERM; while :; do sleep 3600 & wait $$!; done"]
    (sd / "slow" / "compose.yaml").write_text(json.dumps(doc))
    (sd / "slow" / "compose.override.yaml").write_text(
        "services:\n  web:\n    labels:\n      lab.override: \"applied\"\n")
    # upstream publishes a port; the user's override drops it with !reset (compose >= 2.24)
    doc = json.loads((sd / "reset" / "compose.yaml").read_text())
    doc["services"]["web"]["ports"] = ["127.0.0.1::8080"]
    (sd / "reset" / "compose.yaml").write_text(json.dumps(doc))
    (sd / "reset" / "compose.override.yaml").write_text("services:\n  web:\n    ports: !reset []\n")


@pytest.fixture(scope="module")
def fidelity(lab, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fidelity")
    # on v1, `include:` and `!reset` stacks are refused (and the rest starts): checked below
    cyc = build_cycle(lab, tmp, spokes=SPOKES, rewrite=rewrite, up_must_pass=V2)
    yield cyc
    teardown_cycle(cyc)


@pytest.mark.v1_contract
def test_compose_reads_every_stack_as_the_user_wrote_it(fidelity):
    check = run_cli(fidelity.env_path, "check-stacks")
    out = check.stdout + check.stderr
    if V2:
        assert check.returncode == 0 and "OK (5 stacks" in check.stdout, out
    else:  # v1 knows neither `include:` nor `!reset`: those two are refused with compose's words, alone
        assert check.returncode == 1, out
        assert f"{fidelity.services_dir}/inc/compose.yaml: compose cannot read this stack" in out
        assert f"{fidelity.services_dir}/reset/compose.yaml: compose cannot read this stack" in out
        assert "envpath" not in out and "slow" not in out


def test_docker_up_runs_what_compose_up_would_and_the_hub_reaches_the_env_path_spoke(fidelity):
    p = fidelity.prefix
    running = fidelity.containers()
    expected = {f"{p}central_hub", f"{p}envpath", f"{p}slow"} | ({f"{p}inc", f"{p}reset"} if V2 else set())
    assert running == expected
    # the override file was not dropped: its label is on the container
    assert inspect(f"{p}slow", '{{index .Config.Labels "lab.override"}}') == "applied"
    if V2:  # and `ports: !reset []` published nothing
        assert inspect(f"{p}reset", "{{json .HostConfig.PortBindings}}") in ("{}", "null")
    # the data path compose built from the stack's .env is the ZFS dataset's directory
    mounts = json.loads(inspect(f"{p}envpath", "{{json .Mounts}}"))
    assert [m["Source"] for m in mounts] == [str(fidelity.base / "envpath" / "data")]
    assert https_through_hub("envpath.lab.test", hub_port(fidelity)) == "<h1>envpath</h1>"


def test_the_env_built_path_is_guarded_when_its_dataset_is_not_mounted(fidelity):
    dataset = f"{fidelity.parent}/envpath"
    assert run_cli(fidelity.env_path, "docker-down", "envpath").returncode == 0
    subprocess.run(["zfs", "unmount", dataset], check=True, timeout=60)
    try:
        up = run_cli(fidelity.env_path, "docker-up", "envpath")
        out = up.stdout + up.stderr
        assert up.returncode == 1, out
        assert f"{fidelity.base}/envpath/data is on dataset {dataset}, which is not mounted" in out
        assert not (fidelity.base / "envpath" / "data").exists()  # nothing landed on the OS disk
    finally:
        subprocess.run(["zfs", "mount", dataset], check=True, timeout=60)
    assert run_cli(fidelity.env_path, "docker-up", "envpath").returncode == 0


def test_stop_honours_a_45s_grace_period_instead_of_cutting_it_short(fidelity):
    stop = run_cli(fidelity.env_path, "docker-stop", "slow")
    assert stop.returncode == 0, stop.stdout + stop.stderr
    c = f"{fidelity.prefix}slow"
    # 12 s of clean shutdown, longer than compose's 10 s default: it was not killed
    assert inspect(c, "{{.State.ExitCode}}") == "0"
    assert (fidelity.base / "slow" / "data" / ".clean").exists()
    assert run_cli(fidelity.env_path, "docker-start", "slow").returncode == 0


@pytest.mark.v1_contract
def test_a_broken_stack_is_refused_alone(fidelity):
    broken = fidelity.services_dir / "envpath" / "compose.yaml"
    good = broken.read_text()
    broken.write_text(good.replace("${UPLOAD_LOCATION}", "${UPLOAD_LOCATION_TYPO:?set it in .env}"))
    try:
        stop = run_cli(fidelity.env_path, "docker-stop")
        out = stop.stdout + stop.stderr
        assert stop.returncode == 1, out
        assert "envpath: FAILED" in out and "set it in .env" in out and str(broken) in out
        assert fidelity.containers() == {f"{fidelity.prefix}envpath"}  # every other stack was stopped
        start = run_cli(fidelity.env_path, "docker-start")
        assert start.returncode == 1
        assert "slow: ok" in start.stdout and "reverseproxy: ok" in start.stdout
    finally:
        broken.write_text(good)
    assert run_cli(fidelity.env_path, "docker-up").returncode == (0 if V2 else 1)
