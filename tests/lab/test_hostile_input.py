"""Hostile or broken input against the real CLI on the lab: each case must give a clear error
naming the file, line or value, exit non-zero, and change nothing on the host. Secrets (the
passphrase, the ssh key, a push-URL token) must never show up in output, --json, errors or in
the command lines visible in /proc while a backup runs."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import threading

import pytest

from tests.lab.conftest import build_cycle, teardown_cycle
from tests.lab.envfile import LAB_PASSPHRASE, cli_argv, run_cli, write_lab_env

pytestmark = pytest.mark.lab


def dataset_exists(name: str) -> bool:
    return subprocess.run(["zfs", "list", "-H", name], capture_output=True, timeout=60).returncode == 0


def env_with(tmp_path, lab, *, lines=None, body_edit=None):
    env_path, v = write_lab_env(tmp_path, lab, lines or ["app/data:REMAPPED_APP_UID"])
    if body_edit:
        env_path.write_bytes(body_edit(env_path.read_bytes()))
    return env_path, v


BAD_ENVS = {
    # case: (edit of the .env bytes, text the error must contain)
    "crlf": (lambda b: b.replace(b"\n", b"\r\n"), "CRLF"),
    "missing-key": (lambda b: b.replace(b"SERVICES_DIR=", b"#SERVICES_DIR="), "SERVICES_DIR"),
    "unknown-uid-key": (lambda b: b.replace(b"app/data:REMAPPED_APP_UID", b"app/data:REMAPPED_NOPE_UID"),
                        "REMAPPED_NOPE_UID"),
    "dotdot": (lambda b: b.replace(b"app/data:", b"app/../../etc:"), ".."),
    "absolute": (lambda b: b.replace(b"app/data:", b"/etc/data:"), "absolute"),
    "metachar-service": (lambda b: b.replace(b"app/data:", b"a;rm -rf $(id)`x`/data:"), "line 2"),
    "space-in-path": (lambda b: b.replace(b"app/data:", b"app/da ta$(x):"), "line 2"),
    "duplicate": (lambda b: b.replace(b"app/data:REMAPPED_APP_UID", b"app/data:REMAPPED_APP_UID\n" * 2), "duplicate"),
    "uid-not-a-number": (lambda b: b.replace(b"REMAPPED_APP_UID=100999", b"REMAPPED_APP_UID=99x"), "REMAPPED_APP_UID"),
    "empty-file": (lambda b: b"", "the file is empty"),
}


@pytest.mark.parametrize("case", sorted(BAD_ENVS))
def test_bad_env_is_named_and_changes_nothing(lab, tmp_path, case):
    edit, expected = BAD_ENVS[case]
    env_path, v = env_with(tmp_path, lab, body_edit=edit)
    for command in (["config", "check"], ["setup-storage"], ["backup"]):
        r = run_cli(env_path, *command)
        assert r.returncode == 3, (command, r.stdout, r.stderr)
        assert str(env_path) in r.stderr and expected in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
        assert LAB_PASSPHRASE not in r.stdout + r.stderr
    assert not dataset_exists(v["ZFS_PARENT_DATASET"])
    assert not os.path.exists(v["LOCK_FILE"]) and not os.path.exists(v["STATE_DIR"])


def test_unreadable_env_file(lab, tmp_path):
    env_path, v = env_with(tmp_path, lab)
    os.chmod(env_path, 0)
    os.chmod(tmp_path, 0o755)
    # root reads anything: run the CLI as an unprivileged user to see the real error
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        *cli_argv(env_path, "config", "check")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 3, r.stdout + r.stderr
    low = r.stderr.lower()
    assert str(env_path) in r.stderr and ("cannot be read" in low or "permission" in low), r.stderr
    assert "Traceback" not in r.stderr


def test_env_readable_by_others_is_warned_about_and_keys_are_0600(lab, tmp_path):
    env_path, v = env_with(tmp_path, lab)
    os.chmod(env_path, 0o644)
    r = run_cli(env_path, "init-repos")
    assert r.returncode == 0, r.stderr
    assert "readable by everyone" in r.stderr and "chmod 600" in r.stderr
    keys = tmp_path / "management" / "borg_keys"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    assert stat.S_IMODE((keys / "app.key").stat().st_mode) == 0o600


@pytest.mark.parametrize("name", ["../etc", "app;id", "$(id)", "nope"])
def test_service_names_on_the_command_line_that_do_not_exist_or_escape(lab, tmp_path, name):
    env_path, v = env_with(tmp_path, lab)
    for command in (["backup", name], ["list-archives", name], ["snapshot", "create", "--service", name, "x"],
                    ["restore", "--yes", name, "a"], ["init-repos", name]):
        r = run_cli(env_path, *command)
        assert r.returncode == 2, (command, r.stdout, r.stderr)
        assert "unknown service" in r.stderr and "known: app" in r.stderr
    assert not dataset_exists(v["ZFS_PARENT_DATASET"])


def test_invalid_compose_yaml_is_named(lab, tmp_path):
    env_path, v = env_with(tmp_path, lab)
    bad = tmp_path / "services" / "app"
    bad.mkdir(parents=True)
    (bad / "compose.yaml").write_text("services:\n  web:\n    image: x\n   bad-indent: [\n")
    for command in (["docker-up"], ["check-stacks"]):
        r = run_cli(env_path, *command)
        assert r.returncode != 0
        assert str(bad / "compose.yaml") in r.stdout + r.stderr and "line" in (r.stdout + r.stderr).lower()
        assert "Traceback" not in r.stderr


def test_a_compose_file_that_is_not_utf8_is_named_and_the_other_stacks_start(lab, tmp_path):
    env_path, v = env_with(tmp_path, lab, lines=["app/data:REMAPPED_APP_UID", "good/data:REMAPPED_APP_UID"])
    bad = tmp_path / "services" / "app"
    bad.mkdir(parents=True)
    (bad / "compose.yaml").write_bytes(b"services:\n  web:\n    image: caf\xe9\xff\n")
    good = tmp_path / "services" / "good"
    good.mkdir(parents=True)
    name = lab.unique("utf8")
    (good / "compose.yaml").write_text(f"services:\n  web:\n    image: {lab.busybox_image}\n"
                                       f"    container_name: {name}\n    command: [sleep, '600']\n")
    try:
        r = run_cli(env_path, "docker-up")
        out = r.stdout + r.stderr
        assert r.returncode == 1 and "Traceback" not in out, out
        assert f"app: FAILED - refused ({bad / 'compose.yaml'})" in out and "UTF-8" in out
        assert "good: ok" in out
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60)


def test_external_network_that_cannot_be_created(lab, tmp_path):
    """A network name docker would read as an option is refused before anything is created;
    only the stack that declares it is not started, and its file and the name are shown."""
    env_path, v = env_with(tmp_path, lab, lines=["app/data:REMAPPED_APP_UID", "good/data:REMAPPED_APP_UID"])
    bad_net, good_net = "-d evil net!", lab.unique("hostile") + "_net"
    for name, net in (("app", bad_net), ("good", good_net)):
        d = tmp_path / "services" / name
        d.mkdir(parents=True)
        (d / "compose.yaml").write_text(
            f"services:\n  web:\n    image: {lab.busybox_image}\n    container_name: {good_net}-{name}\n"
            f"    command: [sleep, '600']\n    networks: [n]\nnetworks:\n  n:\n    external: true\n"
            f"    name: '{net}'\n")
    try:
        r = run_cli(env_path, "docker-up")
        out = r.stdout + r.stderr
        assert r.returncode == 1, out
        assert f"app: FAILED - not started ({tmp_path}/services/app/compose.yaml)" in out, out
        assert f"external network '{bad_net}' is not a valid name" in out
        assert "good: ok" in out and "Traceback" not in out
        nets = subprocess.run(["docker", "network", "ls", "--format", "{{.Name}}"], capture_output=True,
                              text=True, check=True).stdout.splitlines()
        assert bad_net not in nets and good_net in nets
        check = run_cli(env_path, "check-stacks")
        assert check.returncode == 1 and f"external network '{bad_net}' is not a valid name" in check.stdout
    finally:
        subprocess.run(["docker", "rm", "-f", f"{good_net}-good"], capture_output=True, timeout=60)
        subprocess.run(["docker", "network", "rm", good_net], capture_output=True, timeout=60)


def test_secrets_never_in_output_json_logs_or_process_arguments(lab, tmp_path):
    token = "pushtoken5f3e9a"
    cyc = build_cycle(lab, tmp_path, extra={"PUSH_URL": f"http://127.0.0.1:9/ping/{token}"})
    key_text = lab.ssh_key.read_text().strip().splitlines()[1]  # a line of the private key
    seen: list[str] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    try:
                        with open(f"/proc/{pid}/cmdline", "rb") as fh:
                            seen.append(fh.read().replace(b"\0", b" ").decode(errors="replace"))
                    except OSError:
                        pass
            stop.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        r = run_cli(cyc.env_path, "-vv", "backup", "--json", timeout=600)
        r2 = run_cli(cyc.env_path, "config", "show")
    finally:
        stop.set()
        sampler.join(timeout=10)
        teardown_cycle(cyc)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["ok"]
    assert any("borg create" in c for c in seen), "the sampler saw the borg processes"
    for secret in (LAB_PASSPHRASE, token, key_text):
        assert secret not in r.stdout and secret not in r.stderr and secret not in r2.stdout
        assert not [c for c in seen if secret in c], secret
    assert "running: borg create" in r.stderr  # -vv logs every command, masked
