"""`doctor`: each check's ok / warn / fail decision, against a fake runner and files in a temp
dir; a tool that is missing is a warn that names it; nothing doctor runs changes anything.
Here: the fixture (a host where every check is ok) and helpers the other test_*.py of doctor use."""

import json
import os
import time
from pathlib import Path

import pytest

from management.config import load_settings
from management.errors import CommandError
from management.host import autostart, schedule
from management.host import zed as zedlet
from management.host.doctor import report as doctor
from management.host.doctor.check import FAIL, OK, WARN, Host
from management.host.doctor.pool import DEBIAN_SCRUB_CRON
from management.runner import Result
from tests.fakes import FakeRunner
from tests.unit.config.test_load import BASE, write

NOW = 2_000_000_000.0
H = 3600.0
DOCKER_INFO = ("docker", "info", "--format", "{{json .}}")
INFO = {"SecurityOptions": ["name=seccomp,profile=default", "name=userns"], "LoggingDriver": "local",
        "DockerRootDir": "/var/lib/docker/100000.100000"}
DATASETS = ("zfs", "get", "-H", "-p", "-r", "-o", "name,property,value", "mountpoint,mounted", "datapool/services")
FREE = ("zfs", "get", "-H", "-p", "-o", "property,value", "used,available", "datapool")
POOL = ("zpool", "list", "-H", "-o", "name,health", "datapool")
ZSTATUS = ("zpool", "status", "datapool")
FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "zpool-status"


def zfs_fuse_status(name: str, scrubbed: float | None = None) -> str:
    """A real zfs-fuse output (tests/fixtures/zpool-status) as pool `datapool`, scrubbed at `scrubbed`."""
    text = (FIXTURES / name).read_text().replace("cap5128", "datapool")
    if scrubbed is not None:
        text = text.replace("Tue Dec  1 19:25:47 2026", time.ctime(scrubbed))
    return text
SSHD_T = "port 2222\npermitrootlogin no\npasswordauthentication no\nkbdinteractiveauthentication no\n" \
         "pubkeyauthentication yes\n"


def absent(program):
    return CommandError(program, None, "", reason=f"program not found: {program}")


def failed(stderr, code=1):
    return CommandError("cmd", code, stderr)


@pytest.fixture
def host(tmp_path):
    """A host where every check is ok; tests break one thing each."""
    etc = tmp_path / "etc"
    (etc / "cron.d").mkdir(parents=True)
    (etc / "systemd").mkdir()
    (etc / "subuid").write_text("other:200000:65536\ndockeruser:100000:65536\n")
    (etc / "subgid").write_text("dockeruser:100000:65536\n")
    (etc / "daemon.json").write_text(json.dumps({"userns-remap": "dockeruser", "log-driver": "local",
                                                 "log-opts": {"max-size": "10m", "max-file": "3"}}))
    (etc / "sshd_config").write_text("Port 22\n")
    keys, state = tmp_path / "keys", tmp_path / "state"
    keys.mkdir()
    state.mkdir()
    for svc in ("git", "photo"):
        (keys / f"{svc}.key").write_text("BORG_KEY x\n")
        os.chmod(keys / f"{svc}.key", 0o600)
    (state / "last_success.json").write_text(json.dumps({"git": NOW - 3 * H, "photo": NOW - 20 * H}))
    services = tmp_path / "services"
    (services / "git").mkdir(parents=True)
    (services / "git" / "compose.yaml").write_text("services: {}\n")
    env = write(tmp_path, BASE.replace("SERVICES_DIR=/home/runner/services", f"SERVICES_DIR={services}")
                .replace("BORG_REPO_BASE_PATH=/backup/repos", "BORG_REPO_BASE_PATH=ssh://borg@backup/./repos")
                + f"DOCKER_DAEMON_JSON={etc}/daemon.json\nSUBUID_FILE={etc}/subuid\n"
                f"SUBGID_FILE={etc}/subgid\nBORG_KEYS_DIR={keys}\nSTATE_DIR={state}\n"
                "NOTIFY_URLS=ntfys://ntfy.example/homelab\nBORG_APPEND_ONLY=1\n"
                f"MOUNT_DIR={tmp_path}/mnt\n")
    settings = load_settings(env)[0]
    (etc / "cron.d" / schedule.CRON_NAME).write_text(schedule.render_cron(
        "30 3 * * *", tmp_path / "python", tmp_path / "orchestrator.py", env.resolve(), tmp_path / "log"))
    # Debian's zfsutils-linux, as the package ships it (trixie)
    (etc / "cron.d" / DEBIAN_SCRUB_CRON).write_text(
        "PATH=/usr/bin:/bin:/usr/sbin:/sbin\n\n# TRIM the first Sunday of every month.\n"
        "24 0 1-7 * * root if [ $(date +\\%w) -eq 0 ] && [ -x /usr/lib/zfs-linux/trim ]; then "
        "/usr/lib/zfs-linux/trim; fi\n\n# Scrub the second Sunday of every month.\n"
        "24 0 8-14 * * root if [ $(date +\\%w) -eq 0 ] && [ -x /usr/lib/zfs-linux/scrub ]; then "
        "/usr/lib/zfs-linux/scrub; fi\n")
    (etc / "systemd" / autostart.UNIT_NAME).write_text(autostart.render_unit(
        tmp_path / "python", tmp_path / "orchestrator.py", env.resolve()))
    fake = FakeRunner({
        DOCKER_INFO: json.dumps(INFO),
        ("docker", "compose", "version"): "Docker Compose version v2.40.3\n",
        GIT_CONFIG: json.dumps(git_model()),
        POOL: "datapool\tONLINE\n",
        ZSTATUS: zfs_fuse_status("zfs-fuse-mirror-scrubbed.txt", NOW - 3 * 24 * H),
        DATASETS: "datapool/services\tmountpoint\t/datapool/services\ndatapool/services\tmounted\tyes\n"
                  "datapool/services/git\tmountpoint\t/datapool/services/git\ndatapool/services/git\tmounted\tyes\n"
                  "datapool/services/photo\tmountpoint\t/datapool/services/photo\n"
                  "datapool/services/photo\tmounted\tyes\n",
        FREE: "used\t300000000000\navailable\t700000000000\n",
        ("systemctl", "is-enabled", "zfs-import-scan.service"): "enabled\n",
        ("systemctl", "is-enabled", "zfs-import-cache.service"): Result((), 1, "disabled\n"),
        ("systemctl", "is-enabled", autostart.UNIT_NAME): "enabled\n",
        ("systemctl", "is-active", "zfs-zed"): "active\n",
        ("sshd", "-T"): SSHD_T,
        ("ufw", "status", "verbose"): "Status: active\nLogging: on (low)\n"
                                      "Default: deny (incoming), allow (outgoing), disabled (routed)\n",
        ("nft", "list", "ruleset"): absent("nft"),
        ("iptables", "-S", "INPUT"): absent("iptables"),
    })
    zed_dir = etc / "zfs" / "zed.d"
    zed_dir.mkdir(parents=True)
    zedlet.install(zed_dir, zedlet.render_zedlet(tmp_path / "python", tmp_path / "orchestrator.py", env.resolve()))
    bin_dir = tmp_path / "bin"  # Debian's borg: a Python script (its FUSE bindings answer through the fake)
    bin_dir.mkdir()
    (bin_dir / "borg").write_text("#!/usr/bin/python3\nimport borg\n")
    (etc / "mounts").write_text("proc /proc proc rw,nosuid 0 0\n/dev/sda1 / ext4 rw 0 0\n")
    return Host(settings, fake, cron_dir=etc / "cron.d", unit_dir=etc / "systemd", sshd_config=etc / "sshd_config",
                zed_dir=zed_dir, systemd=True, clock=lambda: NOW,
                which=lambda program: str(bin_dir / program) if (bin_dir / program).exists() else None,
                mounts_file=etc / "mounts")


GIT_CONFIG = ("docker", "compose", "-p", "git", "config", "--format", "json")


def git_model(*extra_volumes) -> dict:
    return {"services": {"app": {"image": "gitea", "volumes": [
        {"type": "bind", "source": "/datapool/services/git/data", "target": "/data"}, *extra_volumes]}},
        "volumes": {"pgdata": {}}}


def answer(host, argv, value):
    host.runner.answers[tuple(argv)] = value


def test_no_tool_installed_no_crash_and_every_finding_has_a_fix(host):
    host.runner.answers = {(p,): absent(p) for p in ("docker", "docker-compose", "zpool", "zfs", "systemctl", "sshd",
                                                     "ufw", "nft", "iptables")}
    host.sshd_config.unlink()
    checks = doctor.run_checks(host)
    assert len(checks) == len(doctor.all_checks())
    assert all(c.fix for c in checks if c.status != OK), [c for c in checks if c.status != OK and not c.fix]
    missing = {c.name: c.detail for c in checks if "is not installed" in c.detail}
    assert set(missing) == {"userns-remap", "zfs pool", "pool redundancy", "pool devices", "last scrub",
                            "service datasets", "pool free space", "zfs import at boot", "local history",
                            "ssh port", "ssh root login", "ssh password login", "boot unit"}
    assert "docker is not installed" in missing["userns-remap"] and "sshd is not installed" in missing["ssh port"]
    assert {c.name: c.status for c in checks}["firewall"] == WARN
    assert {c.name: c.status for c in checks}["compose v2"] == FAIL
