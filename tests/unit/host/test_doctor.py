"""`doctor`: each check's ok / warn / fail decision, against a fake runner and files in a temp
dir; a tool that is missing is a warn that names it; nothing doctor runs changes anything."""

import json
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import orchestrator
from management.config import load_settings
from management.errors import CommandError
from management.host import autostart, doctor, schedule
from management.host import zed as zedlet
from management.host.doctor import FAIL, OK, WARN, Host
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
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "zpool-status"


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
    (etc / "cron.d" / doctor.DEBIAN_SCRUB_CRON).write_text(
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


def test_a_host_as_designed_is_all_ok_and_nothing_is_changed(host):
    checks = doctor.run_checks(host)
    assert [(c.status, c.name) for c in checks if c.status != OK] == []
    assert len(checks) == len(doctor.all_checks()) == len({c.name for c in checks})
    assert all(not call.mutating for call in host.runner.calls)
    assert host.runner.argvs.count(DOCKER_INFO) == 1 and host.runner.argvs.count(("sshd", "-T")) == 1


# --- docker ---------------------------------------------------------------------------------


def test_userns_remap_off_fails_and_another_remap_user_warns(host):
    answer(host, DOCKER_INFO, json.dumps({**INFO, "SecurityOptions": ["name=seccomp,profile=default"]}))
    c = doctor.check_userns(host)
    assert c.status == FAIL and "without userns-remap" in c.detail and "make setup-storage" in c.fix

    host._memo.clear()
    answer(host, DOCKER_INFO, json.dumps(INFO))
    host.settings.docker_daemon_json.write_text(json.dumps({"userns-remap": "default", "log-driver": "local"}))
    c = doctor.check_userns(host)
    assert c.status == WARN and "'default'" in c.detail and "DOCKER_REMAP_USER=default" in c.fix


def test_docker_missing_or_not_answering_is_a_warn_naming_it(host):
    answer(host, DOCKER_INFO, absent("docker"))
    c = doctor.check_userns(host)
    assert c.status == WARN and "docker is not installed" in c.detail
    host._memo.clear()
    answer(host, DOCKER_INFO, failed("Cannot connect to the Docker daemon at unix:///var/run/docker.sock"))
    c = doctor.check_userns(host)
    assert c.status == WARN and "Cannot connect to the Docker daemon" in c.detail


def test_subids_missing_range_or_file_fails(host):
    host.settings.subgid_file.write_text("dockeruser:100000:1000\n")  # too short
    c = doctor.check_subids(host)
    assert c.status == FAIL and str(host.settings.subgid_file) in c.detail
    assert "dockeruser:100000:65536" in c.fix
    host.settings.subuid_file.unlink()
    assert "does not exist" in doctor.check_subids(host).detail


@pytest.mark.parametrize("conf, status, words", [
    ({"log-driver": "local"}, OK, "20m (default)"),
    ({"log-driver": "json-file", "log-opts": {"max-size": "50m"}}, WARN, "dockerd runs local"),
    ({"log-driver": "json-file"}, FAIL, "without max-size"),
    ({"userns-remap": "dockeruser"}, FAIL, "without max-size"),  # json-file is docker's default
    ({"log-driver": "journald"}, WARN, "journald"),
])
def test_log_rotation(host, conf, status, words):
    host.settings.docker_daemon_json.write_text(json.dumps(conf))
    c = doctor.check_log_rotation(host)
    assert c.status == status and words in c.detail


def test_log_rotation_without_or_with_a_broken_daemon_json_fails(host):
    path = host.settings.docker_daemon_json
    path.write_text("{broken")
    c = doctor.check_log_rotation(host)
    assert c.status == FAIL and "invalid JSON" in c.detail
    host._memo.clear()
    path.unlink()
    c = doctor.check_log_rotation(host)
    assert c.status == FAIL and "does not exist" in c.detail and "make setup-storage" in c.fix


def test_compose_v1_only_warns_and_no_compose_fails(host):
    answer(host, ("docker", "compose", "version"), failed("docker: 'compose' is not a docker command."))
    answer(host, ("docker-compose", "version", "--short"), "1.29.2\n")
    c = doctor.check_compose(host)
    assert c.status == WARN and "1.29.2" in c.detail and "stop-mode" in c.detail
    answer(host, ("docker-compose", "version", "--short"), absent("docker-compose"))
    c = doctor.check_compose(host)
    assert c.status == FAIL and "apt-get install docker-compose on Debian 13" in c.fix


def test_debian_13s_docker_compose_is_v2_on_its_own_and_is_ok(host):
    # trixie's docker-compose 2.26 without docker-cli (docker.io only recommends it): the
    # docker CLI cannot find the plugin, /usr/bin/docker-compose still runs compose v2
    answer(host, ("docker", "compose", "version"), absent("docker"))
    answer(host, ("docker-compose", "version", "--short"), "2.26.1\n")
    c = doctor.check_compose(host)
    assert c.status == OK and "docker-compose 2.26.1" in c.detail and "v2" in c.detail


# --- zfs ------------------------------------------------------------------------------------


def test_pool_not_imported_or_degraded_fails_and_no_zpool_warns(host):
    answer(host, POOL, Result((), 1, "", "cannot open 'datapool': no such pool"))
    c = doctor.check_pool(host)
    assert c.status == FAIL and "no such pool" in c.detail and c.fix == "zpool import datapool"
    answer(host, POOL, "datapool\tDEGRADED\n")
    assert doctor.check_pool(host).status == FAIL
    answer(host, POOL, absent("zpool"))
    c = doctor.check_pool(host)
    assert c.status == WARN and "zpool is not installed" in c.detail


def test_a_mirror_scrubbed_days_ago_is_ok_and_says_so(host):
    assert doctor.check_pool_redundancy(host) == doctor.Check(OK, "pool redundancy", "datapool is mirror of 2 disks")
    assert doctor.check_pool_errors(host).detail == "2 disk(s) ONLINE, no read/write/checksum errors"
    assert doctor.check_scrub(host).detail == "datapool: finished 3d ago with 0 errors"
    assert doctor.check_scrub_schedule(host).detail.endswith("scrubs every pool monthly ('24 0 8-14 * *')")
    assert host.runner.argvs.count(ZSTATUS) == 1  # one zpool status for every pool check


def test_a_one_disk_pool_warns_no_redundancy_and_never_scrubbed(host):
    answer(host, ZSTATUS, zfs_fuse_status("zfs-fuse-single.txt"))
    c = doctor.check_pool_redundancy(host)
    assert c.status == WARN and c.detail == f"datapool is 1 disk: {doctor.NO_REDUNDANCY}"
    assert "no redundancy: ZFS can detect but not repair corruption; see make attach-mirror" in c.detail
    assert c.fix.startswith("make attach-mirror DISK=")
    c = doctor.check_scrub(host)
    assert c.status == WARN and c.detail == "datapool: never scrubbed" and c.fix.startswith("zpool scrub datapool")


def test_an_offlined_leg_fails_naming_degraded_and_the_disk(host):
    answer(host, ZSTATUS, zfs_fuse_status("zfs-fuse-degraded.txt", NOW - 24 * H))
    c = doctor.check_pool_errors(host)
    assert c.status == FAIL
    assert c.detail == "datapool is DEGRADED: datapool DEGRADED, mirror-0 DEGRADED, /var/tmp/poolcap/b.img OFFLINE"
    assert c.fix.startswith("Online the device using 'zpool online'")
    assert doctor.check_pool_redundancy(host).status == OK  # still a mirror, one leg away


def test_read_write_checksum_errors_fail_and_name_the_disk(host):
    answer(host, ZSTATUS, (FIXTURES / "openzfs-2.1-truenas-write-error.txt").read_text())
    c = doctor.check_pool_errors(host)
    assert c.status == FAIL and c.detail == "errors: sda read 0 write 1 cksum 0" and "zpool clear" in c.fix
    host._memo.clear()
    answer(host, ZSTATUS, (FIXTURES / "openzfs-2.x-proxmox-faulted.txt").read_text())
    c = doctor.check_pool_errors(host)
    assert c.status == FAIL and "ata-ST8000DM004-2U9188_ZR14QKCH FAULTED (too many errors)" in c.detail
    assert "ata-ST8000DM004-2U9188_ZR14QKCH read 7 write 1050 cksum 0" in c.detail


@pytest.mark.parametrize("days, errors, status, words", [
    (34, 0, OK, "finished 34d ago with 0 errors"),
    (36, 0, WARN, "the last scrub finished 36d ago (warn past 35 days)"),
    (2, 3, FAIL, "the last scrub (48h ago) found 3 error(s)"),
])
def test_last_scrub_age_and_errors(host, days, errors, status, words):
    text = zfs_fuse_status("zfs-fuse-mirror-scrubbed.txt", NOW - days * 24 * H)
    answer(host, ZSTATUS, text.replace("with 0 errors", f"with {errors} errors"))
    c = doctor.check_scrub(host)
    assert (c.status, words in c.detail) == (status, True), c


def test_a_resilver_or_a_scrub_in_progress(host):
    answer(host, ZSTATUS, zfs_fuse_status("zfs-fuse-mirror-resilvered.txt"))
    c = doctor.check_scrub(host)
    assert c.status == WARN and "no scrub result, the last scan: resilver completed" in c.detail
    host._memo.clear()
    answer(host, ZSTATUS, (FIXTURES / "openzfs-2.x-proxmox-resilvering.txt").read_text())
    assert doctor.check_scrub(host).status == WARN


def test_no_scrub_schedule_warns_and_a_systemd_timer_counts(host):
    (host.cron_dir / doctor.DEBIAN_SCRUB_CRON).unlink()
    c = doctor.check_scrub_schedule(host)
    assert c.status == WARN and "nothing scrubs datapool on a schedule" in c.detail
    assert "zfs-scrub-monthly@datapool.timer" in c.fix and "zfsutils-linux" in c.fix
    answer(host, ("systemctl", "is-enabled", "zfs-scrub-monthly@datapool.timer"), "enabled\n")
    assert doctor.check_scrub_schedule(host) == doctor.Check(OK, "scrub schedule",
                                                              "zfs-scrub-monthly@datapool.timer enabled")


def test_pool_status_not_answering_is_a_warn(host):
    answer(host, ZSTATUS, failed("cannot open 'datapool': no such pool"))
    for check in (doctor.check_pool_redundancy, doctor.check_pool_errors, doctor.check_scrub):
        c = check(host)
        assert c.status == WARN and "no such pool" in c.detail


def test_a_service_dataset_missing_unmounted_or_elsewhere_fails(host):
    answer(host, DATASETS, "datapool/services/git\tmountpoint\t/elsewhere\ndatapool/services/git\tmounted\tyes\n")
    c = doctor.check_datasets(host)
    assert c.status == FAIL
    assert "datapool/services/git is mounted at /elsewhere" in c.detail and "photo does not exist" in c.detail
    answer(host, DATASETS, "datapool/services/git\tmountpoint\t/datapool/services/git\n"
                           "datapool/services/git\tmounted\tno\n")
    assert "git is not mounted" in doctor.check_datasets(host).detail
    answer(host, DATASETS, Result((), 1, "", "cannot open 'datapool/services': dataset does not exist"))
    c = doctor.check_datasets(host)
    assert c.status == FAIL and "does not exist" in c.detail and c.fix == "make setup-storage"


@pytest.mark.parametrize("used, avail, status", [(79, 21, OK), (81, 19, WARN), (96, 4, FAIL)])
def test_free_space_warns_below_20_percent_and_fails_below_5(host, used, avail, status):
    answer(host, FREE, f"used\t{used * 10**9}\navailable\t{avail * 10**9}\n")
    c = doctor.check_free_space(host)
    assert c.status == status and f"({avail}%)" in c.detail


def test_zfs_import_scan_vs_cache(host):
    scan, cache = ("systemctl", "is-enabled", "zfs-import-scan.service"), \
        ("systemctl", "is-enabled", "zfs-import-cache.service")
    answer(host, cache, "enabled\n")
    c = doctor.check_zfs_import(host)
    assert c.status == WARN and "zfs-import-cache is enabled" in c.detail
    assert c.fix == "systemctl disable zfs-import-cache.service && systemctl enable zfs-import-scan.service"
    answer(host, scan, Result((), 1, "disabled\n"))
    answer(host, cache, Result((), 1, "disabled\n"))
    assert doctor.check_zfs_import(host).status == FAIL
    answer(host, scan, Result((), 4, "", "Failed to get unit file state: No such file or directory"))
    answer(host, cache, Result((), 4, "", "Failed to get unit file state: No such file or directory"))
    c = doctor.check_zfs_import(host)
    assert c.status == WARN and "zfs-fuse" in c.detail


def test_zfs_import_without_systemd_cannot_tell(host):
    host.systemd = False
    c = doctor.check_zfs_import(host)
    assert c.status == WARN and "cannot tell" in c.detail and "systemd is not running" in c.detail
    assert not [a for a in host.runner.argvs if a[0] == "systemctl"]


# --- ssh ------------------------------------------------------------------------------------


def test_sshd_as_designed_from_sshd_t(host):
    checks = [doctor.check_ssh_port(host), doctor.check_ssh_root(host), doctor.check_ssh_password(host)]
    assert [c.status for c in checks] == [OK, OK, OK]
    assert "port 2222 (sshd -T)" in checks[0].detail


def test_debian_default_sshd(host):
    answer(host, ("sshd", "-T"), "port 22\npermitrootlogin without-password\npasswordauthentication yes\n"
                                 "kbdinteractiveauthentication no\npubkeyauthentication yes\n")
    port, root, password = doctor.check_ssh_port(host), doctor.check_ssh_root(host), doctor.check_ssh_password(host)
    assert (port.status, root.status, password.status) == (WARN, WARN, FAIL)
    assert "above 1024" in port.detail and "Port 2222" in port.fix
    assert "without-password" in root.detail and "PermitRootLogin no" in root.fix
    assert "PasswordAuthentication yes" in password.detail and "PasswordAuthentication no" in password.fix


def test_root_login_yes_fails_and_keyboard_interactive_warns(host):
    answer(host, ("sshd", "-T"), SSHD_T.replace("permitrootlogin no", "permitrootlogin yes")
           .replace("kbdinteractiveauthentication no", "kbdinteractiveauthentication yes"))
    assert doctor.check_ssh_root(host).status == FAIL
    c = doctor.check_ssh_password(host)
    assert c.status == WARN and "KbdInteractiveAuthentication yes" in c.detail


def test_without_sshd_t_the_config_file_is_read_with_includes_and_defaults(host):
    answer(host, ("sshd", "-T"), failed("sshd: no hostkeys available -- exiting."))
    conf = host.sshd_config
    (conf.parent / "sshd_config.d").mkdir()
    (conf.parent / "sshd_config.d" / "10-hard.conf").write_text("PasswordAuthentication no\nPort 2200\n")
    conf.write_text("Include sshd_config.d/*.conf\nPort 22\nPasswordAuthentication yes\n"
                    "KbdInteractiveAuthentication no\nMatch User backup\n  PermitRootLogin yes\n")
    port, root, password = doctor.check_ssh_port(host), doctor.check_ssh_root(host), doctor.check_ssh_password(host)
    assert port.status == WARN and "port 2200, 22" in port.detail and str(conf) in port.detail
    assert root.status == WARN and "prohibit-password" in root.detail  # the default; Match is not applied
    assert password.status == OK  # the included file comes first, and the first value wins


def test_no_sshd_at_all_is_a_warn_naming_it(host):
    answer(host, ("sshd", "-T"), absent("sshd"))
    host.sshd_config.unlink()
    c = doctor.check_ssh_port(host)
    assert c.status == WARN and "sshd is not installed" in c.detail


# --- firewall -------------------------------------------------------------------------------


def test_ufw_inactive_or_allowing_fails_with_the_spec_commands(host):
    answer(host, ("ufw", "status", "verbose"), "Status: inactive\n")
    c = doctor.check_firewall(host)
    assert c.status == FAIL and "ufw is inactive" in c.detail
    assert "ufw default deny incoming" in c.fix and "ufw allow 2222/tcp" in c.fix
    answer(host, ("ufw", "status", "verbose"), "Status: active\nDefault: allow (incoming), allow (outgoing)\n")
    assert doctor.check_firewall(host).status == FAIL


def test_without_ufw_the_nft_ruleset_decides(host):
    answer(host, ("ufw", "status", "verbose"), absent("ufw"))
    answer(host, ("nft", "list", "ruleset"),
           "table inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n"
           "\t\tct state established,related accept\n\t\ttcp dport 2222 accept\n\t}\n}\n")
    c = doctor.check_firewall(host)
    assert c.status == OK and "no ufw; nft: incoming dropped" in c.detail
    answer(host, ("nft", "list", "ruleset"),
           "table ip filter {\n\tchain INPUT {\n\t\ttype filter hook input priority filter; policy accept;\n\t}\n"
           "\tchain DOCKER {\n\t}\n}\n")
    assert doctor.check_firewall(host).status == FAIL


def test_without_ufw_and_nft_iptables_decides_and_with_none_it_cannot_tell(host):
    answer(host, ("ufw", "status", "verbose"), absent("ufw"))
    answer(host, ("iptables", "-S", "INPUT"), "-P INPUT ACCEPT\n")
    c = doctor.check_firewall(host)
    assert c.status == FAIL and "no ufw; no nft; iptables: incoming accepted" in c.detail
    answer(host, ("iptables", "-S", "INPUT"), "-P INPUT ACCEPT\n-A INPUT -p tcp --dport 2222 -j ACCEPT\n"
                                              "-A INPUT -j DROP\n")
    assert doctor.check_firewall(host).status == OK
    answer(host, ("iptables", "-S", "INPUT"), absent("iptables"))
    c = doctor.check_firewall(host)
    assert c.status == WARN and "neither ufw nor nft nor iptables" in c.detail


# --- secrets --------------------------------------------------------------------------------


def test_env_readable_by_others_fails(host):
    path = host.settings.env_file
    assert doctor.check_env_mode(host).status == OK
    os.chmod(path, 0o640)
    c = doctor.check_env_mode(host)
    assert c.status == FAIL and "0640" in c.detail and c.fix == f"chmod 600 {path}"


def test_borg_keys_missing_warn_and_open_ones_fail(host):
    keys = host.settings.borg_keys_dir
    (keys / "photo.key").unlink()
    c = doctor.check_borg_keys(host)
    assert c.status == WARN and "for photo" in c.detail and "borg key export" in c.fix
    os.chmod(keys / "git.key", 0o644)
    c = doctor.check_borg_keys(host)
    assert c.status == FAIL and "git.key (0644)" in c.detail and c.fix == f"chmod 600 {keys / 'git.key'}"


# --- schedule -------------------------------------------------------------------------------


def test_no_cron_entry_fails_someone_elses_warns_another_env_warns(host):
    path = host.cron_dir / schedule.CRON_NAME
    assert "backup at '30 3 * * *'" in doctor.check_cron(host).detail
    text = path.read_text()
    path.write_text(text.replace(str(host.settings.env_file.resolve()), "/other/.env"))
    c = doctor.check_cron(host)
    assert c.status == WARN and "another .env" in c.detail
    path.write_text("30 3 * * * root backup.sh\n")
    assert doctor.check_cron(host).status == WARN
    path.unlink()
    c = doctor.check_cron(host)
    assert c.status == FAIL and c.fix == "make install-cron"


def test_boot_unit_missing_disabled_or_unknown_warns(host):
    answer(host, ("systemctl", "is-enabled", autostart.UNIT_NAME), Result((), 1, "disabled\n"))
    c = doctor.check_boot_unit(host)
    assert c.status == WARN and "disabled" in c.detail and c.fix == f"systemctl enable {autostart.UNIT_NAME}"
    host.systemd = False
    assert "cannot tell whether it is enabled" in doctor.check_boot_unit(host).detail
    (host.unit_dir / autostart.UNIT_NAME).unlink()
    c = doctor.check_boot_unit(host)
    assert c.status == WARN and c.fix == "make install-autostart"


# --- backups --------------------------------------------------------------------------------


def test_last_backup_stale_or_never_fails(host):
    assert "oldest 20h ago" in doctor.check_last_backup(host).detail
    state = host.settings.state_dir / "last_success.json"
    state.write_text(json.dumps({"git": NOW - 37 * H}))
    c = doctor.check_last_backup(host)
    assert c.status == FAIL and "git 37h ago" in c.detail and "photo never" in c.detail


def test_a_check_that_breaks_is_a_warn_and_the_others_still_run(host):
    def check_boom(_host):
        raise OSError("boom")

    checks = doctor.run_checks(host, (check_boom, doctor.check_env_mode))
    assert [(c.status, c.name) for c in checks] == [(WARN, "boom"), (OK, ".env mode")]


# --- CLI ------------------------------------------------------------------------------------


def cli(host, monkeypatch, *args):
    monkeypatch.setattr(orchestrator.App, "runner", property(lambda self: host.runner))
    monkeypatch.setattr(doctor.Host, "__post_init__", lambda self: setattr(self, "systemd", True))
    return CliRunner().invoke(orchestrator.cli, ["--env-file", str(host.settings.env_file), "doctor",
                                                 "--cron-dir", str(host.cron_dir), "--unit-dir", str(host.unit_dir),
                                                 "--sshd-config", str(host.sshd_config),
                                                 "--zed-dir", str(host.zed_dir), *args])


def test_cli_prints_one_line_per_check_and_fixes_and_exits_1_on_a_fail(host, monkeypatch):
    state = host.settings.state_dir / "last_success.json"
    state.write_text(json.dumps({"git": 1.0, "photo": 1.0}))
    result = cli(host, monkeypatch)
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert [ln.split()[0] for ln in lines if not ln.startswith(" ")][:-1] == [OK] * 23 + [FAIL] + [OK] * 3
    fail = next(i for i, ln in enumerate(lines) if ln.startswith(FAIL))
    assert lines[fail + 1].strip() == "fix: make backup-all, and read its summary (or the cron log) for why the " \
                                      "last one failed"
    assert lines[-1] == "doctor: 26 ok, 0 warn, 1 fail"


def test_cli_warnings_alone_exit_0_and_json(host, monkeypatch):
    (host.unit_dir / autostart.UNIT_NAME).unlink()
    result = cli(host, monkeypatch, "--json")
    assert result.exit_code == 0, result.output
    checks = json.loads(result.output)
    assert [c["name"] for c in checks if c["status"] != OK] == ["boot unit"]
    assert set(checks[0]) == {"status", "name", "detail", "fix"}


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


# --- coverage -------------------------------------------------------------------------------


def test_data_no_backup_reaches_fails_with_each_mount_named(host):
    answer(host, GIT_CONFIG, json.dumps(git_model({"type": "volume", "source": "pgdata", "target": "/pg"})))
    c = doctor.check_coverage(host)
    assert c.status == FAIL and "git: volume pgdata -> /pg (docker volume on the OS disk)" in c.detail
    assert "make check-stacks" in c.fix


def test_coverage_ok_names_how_many_mounts_were_looked_at(host):
    c = doctor.check_coverage(host)
    assert c.status == OK and c.detail.endswith("(1 mounts)")



def test_zed_handing_pool_events_to_the_tool(host):
    assert doctor.check_zed(host).status == OK
    host.runner.answers[("systemctl", "is-active", "zfs-zed")] = Result((), 3, "inactive\n")
    c = doctor.check_zed(host)
    assert c.status == FAIL and "zfs-zed is inactive" in c.detail and c.fix == "systemctl enable --now zfs-zed"
    zedlet.uninstall(host.zed_dir)
    c = doctor.check_zed(host)
    assert c.status == WARN and c.fix == "make install-zedlet"
    host.zed_dir.rmdir()
    c = doctor.check_zed(host)
    assert c.status == WARN and "nothing tells you when a disk fails" in c.detail and "zfs-zed" in c.fix


def test_the_history_is_protected_only_off_this_machine_behind_an_append_only_key(host, tmp_path):
    assert doctor.check_history_protection(host).status == OK
    env = host.settings.env_file
    env.write_text(env.read_text().replace("BORG_APPEND_ONLY=1", "BORG_APPEND_ONLY=0"))
    c = doctor.check_history_protection(Host(load_settings(env)[0], host.runner))
    assert c.status == WARN and "can delete every archive" in c.detail and "make authorized-keys" in c.fix
    env.write_text(env.read_text().replace("ssh://borg@backup/./repos", "/backup/repos"))
    c = doctor.check_history_protection(Host(load_settings(env)[0], host.runner))
    assert c.status == WARN and "on this machine" in c.detail
