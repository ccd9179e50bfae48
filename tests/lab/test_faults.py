"""Fault injection against the real tools: each case sets up the lab cycle (zfs-fuse datasets,
a Caddy hub and two spokes under dockerd with userns-remap, borg over ssh on loopback), breaks
one thing, runs the real command and checks the host afterwards: stacks that ran are running,
no snapshot or view left, repositories pass `borg check`, no secret printed, a clear message
and the right exit code. Where a fault cannot be produced with the real tool alone (a `zfs
snapshot` that fails, a stage that must be slow enough to be interrupted), a wrapper earlier
on PATH injects it and then runs the real program. docs/reliability.md lists every case."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import pytest

from tests.conftest import LAB_SH
from tests.lab.conftest import build_cycle, teardown_cycle, views_left
from tests.lab.envfile import LAB_COMPOSE, LAB_PASSPHRASE, cli_argv, run_cli, write_lab_env, write_shim
from tests.lab.stacks import seed

pytestmark = [pytest.mark.lab, pytest.mark.compose]
# the program a compose fault is injected into: v2 is `docker compose`, v1 `docker-compose`
COMPOSE_PROGRAM = "docker-compose" if LAB_COMPOSE == "v1" else "docker"


def started_at(prefix: str) -> dict[str, str]:
    names = subprocess.run(["docker", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True).stdout
    ours = [n for n in names.split() if n.startswith(prefix)]
    out = subprocess.run(["docker", "inspect", "--format", "{{.Name}} {{.State.StartedAt}}", *ours],
                         capture_output=True, text=True).stdout
    return dict(line.lstrip("/").split(" ", 1) for line in out.splitlines())


def borg_check_all(cycle) -> None:
    r = run_cli(cycle.env_path, "check-repos", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr


def popen_cli(cycle, *args, path_prefix=None):
    env = dict(os.environ)
    if path_prefix:
        env["PATH"] = f"{path_prefix}:{env['PATH']}"
    return subprocess.Popen(cli_argv(cycle.env_path, *args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)


def descendants(pid: int) -> dict[int, str]:
    """Every process below pid (pid -> command line), from one `ps` listing."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid=,args="], capture_output=True, text=True).stdout
    children: dict[int, list[tuple[int, str]]] = {}
    for line in out.splitlines():
        p, pp, args = (line.split(None, 2) + [""])[:3]
        children.setdefault(int(pp), []).append((int(p), args))
    found, todo = {}, [pid]
    while todo:
        for child, args in children.get(todo.pop(), []):
            found[child] = args
            todo.append(child)
    return found


def wait_for(path, timeout=120) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def shared(lab, tmp_path_factory):
    """One hub and two spokes for most cases below, in file order: each leaves the host as it
    found it (that is what it asserts), so the next starts from a host a night just left, as a
    real one would. Cases that break what cannot be mended (a repository with another
    passphrase, zfs-fuse restarted) build their own, before the first case on these or after
    the last: every cycle's stacks are the compose projects reverseproxy, git and photo, so
    another cycle's `docker-up` or `docker-down` in between would take these containers."""
    cyc = build_cycle(lab, tmp_path_factory.mktemp("shared"))
    yield cyc
    teardown_cycle(cyc)


def new_bytes(cycle, tag: str) -> None:
    """New bytes in every spoke, older than the next night's second: no dataset of that night is
    skipped as unchanged, so borg creates and prunes (zfs-fuse keeps 1-second ctimes)."""
    for svc in cycle.spokes:
        seed(cycle.base, svc, {f"{tag}.txt": os.urandom(64)})
    time.sleep(1.1)


def snapshot_names(parent: str) -> set[str]:
    out = subprocess.run(["zfs", "list", "-H", "-o", "name", "-t", "snapshot", "-r", parent],
                         capture_output=True, text=True, check=True, timeout=120)
    return set(out.stdout.split())


def archives(cycle, svc: str) -> set[str]:
    """The service's archive names. On the shared stacks a night's prune may take an older
    archive of the same day (keep-daily), so a case counts the names a night added."""
    return set(re.findall(rf"\b{svc}-\S+", run_cli(cycle.env_path, "list-archives", svc).stdout))


# --- borg fails for one dataset ------------------------------------------------------------------


def test_wrong_passphrase_for_one_repository_others_backed_up(cycle, lab, tmp_path):
    other = "another-passphrase-1234"
    env2, _ = write_lab_env(tmp_path / "other", lab, ["photo/data:REMAPPED_APP_UID"],
                            name=cycle.parent.split("/")[1], repo_base=cycle.values["BORG_REPO_BASE_PATH"],
                            extra={"BORG_PASSPHRASE": other})
    assert run_cli(env2, "init-repos", "photo").returncode == 0  # photo's repo has another passphrase
    r = run_cli(cycle.env_path, "backup", "--json", timeout=600)
    assert r.returncode == 1
    report = json.loads(r.stdout)
    results = {d["service"]: d["result"] for d in report["datasets"]}
    assert results == {"reverseproxy": "ok", "git": "ok", "photo": "failed"}
    photo = next(d for d in report["datasets"] if d["service"] == "photo")
    assert "passphrase" in photo["message"].lower()
    assert cycle.host_is_clean() == []
    assert other not in r.stdout + r.stderr and LAB_PASSPHRASE not in r.stdout + r.stderr
    assert run_cli(cycle.env_path, "check-repos", "git", "reverseproxy").returncode == 0


def test_ssh_target_down_stops_nothing(lab, tmp_path):
    dead = f"ssh://{lab.borg_user}@127.0.0.1:1{lab.borg_repos}/down"  # nothing listens on port 1
    cyc = build_cycle(lab, tmp_path, repo_base=dead)
    try:
        before = started_at(cyc.prefix)
        r = run_cli(cyc.env_path, "backup", timeout=600)
        assert r.returncode == 1
        assert "no repository is usable; nothing was stopped" in r.stdout
        assert "Connection refused" in r.stdout
        assert started_at(cyc.prefix) == before  # no container was even restarted
        assert cyc.host_is_clean() == []
    finally:
        teardown_cycle(cyc)


def test_repository_disk_full_then_freed(lab, tmp_path):
    repos = tmp_path / "small"
    repos.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(repos)], check=True)
    try:
        cyc = build_cycle(lab, tmp_path, repo_base=str(repos))
        try:
            r = run_cli(cyc.env_path, "backup", timeout=600)
            assert r.returncode == 1, r.stdout
            assert "No space left on device" in r.stdout or "Insufficient free space" in r.stdout, r.stdout
            assert cyc.host_is_clean() == []
            subprocess.run(["mount", "-o", "remount,size=200m", str(repos)], check=True)
            again = run_cli(cyc.env_path, "backup", timeout=600)
            assert again.returncode == 0, again.stdout + again.stderr
            assert cyc.host_is_clean() == []
            borg_check_all(cyc)
            # The next quiet night asks nothing of borg: no dataset changed, and each local
            # repository's files show no commit since this tool's (borg check only read them)
            calls = tmp_path / "borg-calls"
            write_shim(tmp_path / "shims", "borg", f'echo "$1" >> {calls}')
            quiet = run_cli(cyc.env_path, "backup", "--json", timeout=600, path_prefix=tmp_path / "shims")
            assert quiet.returncode == 0, quiet.stdout + quiet.stderr
            assert {d["result"] for d in json.loads(quiet.stdout)["datasets"]} == {"unchanged"}
            assert not calls.exists(), calls.read_text()
        finally:
            teardown_cycle(cyc)
    finally:
        subprocess.run(["umount", "-l", str(repos)])


def test_unwritable_repository_fails_only_its_service(shared, lab):
    cycle = shared
    assert run_cli(cycle.env_path, "init-repos").returncode == 0
    new_bytes(cycle, "unwritable")
    photos = archives(cycle, "photo")
    repo = f"{lab.borg_repos}/{cycle.prefix}/git"
    os.chmod(repo, 0)  # borg serve runs as the borg user: permission denied
    try:
        r = run_cli(cycle.env_path, "backup", timeout=600)
    finally:
        os.chmod(repo, 0o700)
    assert r.returncode == 1 and "result: FAILED (git)" in r.stdout
    assert cycle.host_is_clean() == []
    assert len(archives(cycle, "photo") - photos) == 1


# --- zfs and stacks ------------------------------------------------------------------------------


def test_zfs_snapshot_fails_no_borg_and_stacks_restarted(shared, tmp_path):
    cycle = shared
    shims = tmp_path / "shims"
    write_shim(shims, "zfs", '[ "$1" = snapshot ] && { echo "cannot create snapshot: out of space" >&2; exit 1; }')
    r = run_cli(cycle.env_path, "backup", "--json", timeout=600, path_prefix=shims)
    assert r.returncode == 1
    report = json.loads(r.stdout)
    assert any("out of space" in e for e in report["errors"])
    assert all(d["archive"] == "" for d in report["datasets"])  # no borg without a snapshot
    assert cycle.host_is_clean() == []
    assert run_cli(cycle.env_path, "backup", timeout=600).returncode == 0  # nothing left that blocks


def test_dataset_unmounted_preflight_refuses_before_downtime(shared):
    cycle = shared
    snapshots = snapshot_names(cycle.parent)
    assert run_cli(cycle.env_path, "docker-stop", "photo").returncode == 0
    subprocess.run(["zfs", "unmount", f"{cycle.parent}/photo"], check=True, timeout=60)
    try:
        before = started_at(cycle.prefix)
        r = run_cli(cycle.env_path, "backup", timeout=600)
        assert r.returncode == 1 and "not mounted" in r.stdout
        assert started_at(cycle.prefix) == before
        assert snapshot_names(cycle.parent) == snapshots  # none made, none destroyed
    finally:
        subprocess.run(["zfs", "mount", f"{cycle.parent}/photo"], timeout=60)
        run_cli(cycle.env_path, "docker-start", "photo")
    assert cycle.host_is_clean() == []


@pytest.mark.v1_contract
@pytest.mark.parametrize("action", ["stop", "start"])
def test_one_stack_fails_to_stop_or_start(shared, tmp_path, action):
    cycle = shared
    new_bytes(cycle, f"fails-to-{action}")
    before = {svc: archives(cycle, svc) for svc in ("git", "photo")}
    shims = tmp_path / "shims"
    words = "up|start" if action == "start" else "stop"
    # fail the action for the photo stack only (its folder or project name is in argv or cwd)
    write_shim(shims, COMPOSE_PROGRAM, f'''for a in "$@"; do case "$a" in {words})
  case "$PWD $*" in *photo*) echo "injected {action} failure" >&2; exit 1;; esac;; esac; done''')
    r = run_cli(cycle.env_path, "backup", timeout=600, path_prefix=shims)
    assert r.returncode == 1, r.stdout
    assert f"photo: {action} failed" in r.stdout, r.stdout
    # the backups themselves went on
    assert {svc: len(archives(cycle, svc) - names) for svc, names in before.items()} == {"git": 1, "photo": 1}
    if action == "stop":
        assert cycle.host_is_clean() == []
    else:
        assert run_cli(cycle.env_path, "docker-start", "photo").returncode == 0
        assert cycle.host_is_clean() == []


# --- signals at each stage -----------------------------------------------------------------------

STAGES = {
    # stage: (program to wrap, words that mark the stage)
    "stopping": (COMPOSE_PROGRAM, "stop"),
    "snapshot": ("zfs", "snapshot"),
    "starting": (COMPOSE_PROGRAM, "start|up"),
    "borg-create": ("borg", "create"),
    "borg-prune": ("borg", "prune"),
}


@pytest.mark.parametrize("stage,sig", [(s, signal.SIGTERM) for s in STAGES] + [("stopping", signal.SIGINT),
                                                                            ("borg-create", signal.SIGINT)])
def test_signal_at_each_stage_leaves_a_host_the_next_run_can_use(shared, tmp_path, stage, sig):
    cycle = shared
    assert cycle.host_is_clean() == []
    new_bytes(cycle, f"signal-{stage}-{sig.name}")  # borg must create and prune
    program, words = STAGES[stage]
    shims, mark = tmp_path / "shims", tmp_path / "entered"
    write_shim(shims, program, f'for a in "$@"; do case "$a" in {words}) touch {mark}; sleep 3;; esac; done')
    proc = popen_cli(cycle, "backup", path_prefix=shims)
    wait_for(mark)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0, out
    assert "interrupted" in out.lower(), out
    assert cycle.host_is_clean() == [], out
    after = run_cli(cycle.env_path, "backup", timeout=600)
    assert after.returncode == 0, after.stdout + after.stderr
    assert cycle.host_is_clean() == []


def test_a_drill_killed_mid_extract_leaves_scratch_that_the_next_night_removes(shared, tmp_path):
    """Found by the chaos campaign (kill -9 of `drill`): its scratch dataset and mount stayed,
    and only a later drill removed them; the next night now does (both hold the run lock)."""
    cycle = shared
    assert run_cli(cycle.env_path, "backup", timeout=600).returncode == 0  # an archive to drill
    shims, mark = tmp_path / "shims", tmp_path / "entered"
    write_shim(shims, "borg", f'for a in "$@"; do [ "$a" = extract ] && {{ touch {mark}; sleep 2; }}; done')
    proc = popen_cli(cycle, "drill", path_prefix=shims)
    wait_for(mark)
    for pid in [proc.pid, *descendants(proc.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.communicate(timeout=60)
    left = views_left(cycle.values["VIEW_DATASET"])
    assert any("/drill-" in name for name in left), left
    r = run_cli(cycle.env_path, "backup", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "removed leftovers of an earlier run" in r.stdout, r.stdout
    assert cycle.host_is_clean() == []


def test_a_drill_whose_zfs_create_is_killed_after_zfs_made_the_scratch_leaves_nothing(shared, tmp_path):
    """Found by the chaos campaign (seed 37, step 95): `zfs create` of the scratch dataset was
    SIGKILLed after ZFS had made it; the drill failed, as it must, and left the dataset."""
    cycle = shared
    if not archives(cycle, "photo"):  # run alone: an archive to drill
        assert run_cli(cycle.env_path, "backup", timeout=600).returncode == 0
    shims = tmp_path / "shims"
    write_shim(shims, "zfs", 'case "$1 $*" in create*drill-*) "$REAL" "$@"; kill -9 $$;; esac')
    r = run_cli(cycle.env_path, "drill", "photo", timeout=600, path_prefix=shims)
    assert r.returncode == 1 and "zfs create failed" in r.stdout, r.stdout + r.stderr
    assert views_left(cycle.values["VIEW_DATASET"]) == []
    assert cycle.host_is_clean() == []


@pytest.mark.parametrize("killed", ["get", "unmount"])
def test_a_restore_path_whose_zfs_query_is_killed_on_the_way_out_removes_its_clone(shared, tmp_path, killed):
    """Found by the chaos campaign (seed 37, step 147, twice): the `zfs get` with which
    restore-path looked at its read-only clone, then (that fixed) the `zfs unmount` before its
    destroy, was SIGKILLed; the file came back, and the clone stayed until the next run. A
    killed query is asked once more; a killed unmount leaves the destroy to decide."""
    cycle = shared
    if not archives(cycle, "git"):  # run alone: a night, so there is a snapshot to read
        assert run_cli(cycle.env_path, "backup", timeout=600).returncode == 0
    (cycle.base / "git" / "data" / "stamp.txt").write_bytes(b"broken by hand")  # what restore-path mends
    shims, mark = tmp_path / "shims", tmp_path / "killed"
    once = f'[ -e {mark} ] || {{ touch {mark}; kill -9 $$; }}'
    write_shim(shims, "zfs", f'case "$1 $*" in "{killed} "*-views/tt-*) {once};; esac')
    r = run_cli(cycle.env_path, "restore-path", "git", "data/stamp.txt", "--yes", timeout=600, path_prefix=shims)
    assert mark.exists(), f"no zfs {killed} of the clone was killed"
    assert r.returncode == 0 and "could not remove" not in r.stdout, r.stdout + r.stderr
    assert views_left(cycle.values["VIEW_DATASET"]) == []
    assert cycle.host_is_clean() == []


def test_kill_9_during_borg_create_next_run_recovers(shared, tmp_path):
    cycle = shared
    new_bytes(cycle, "kill-9")  # a borg create to kill
    shims, mark = tmp_path / "shims", tmp_path / "entered"
    write_shim(shims, "borg", f'for a in "$@"; do [ "$a" = create ] && {{ touch {mark}; sleep 2; }}; done')
    proc = popen_cli(cycle, "backup", path_prefix=shims)
    wait_for(mark)
    time.sleep(2.5)  # the real borg create is running now and holds the repository lock
    # a crash: the orchestrator and everything it started (borg, its ssh) die at once
    tree = descendants(proc.pid)
    assert any("borg" in cmd and "create" in cmd for cmd in tree.values()), tree
    for pid in [proc.pid, *tree]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.communicate(timeout=60)
    r = run_cli(cycle.env_path, "backup", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "removed leftovers of an earlier run" in r.stdout
    assert cycle.host_is_clean() == []
    borg_check_all(cycle)


def test_two_runs_started_together_exactly_one_runs(shared):
    cycle = shared
    new_bytes(cycle, "two-runs")
    gits = archives(cycle, "git")
    a = popen_cli(cycle, "backup")
    b = popen_cli(cycle, "backup")
    out_a, _ = a.communicate(timeout=600)
    out_b, _ = b.communicate(timeout=600)
    codes = sorted([a.returncode, b.returncode])
    assert codes == [0, 4], out_a + out_b
    loser, winner = (out_a, b) if a.returncode == 4 else (out_b, a)
    assert "another run holds the lock" in loser and f"pid {winner.pid}, backup started" in loser, loser
    assert cycle.host_is_clean() == []
    assert len(archives(cycle, "git") - gits) == 1


# --- the clock -----------------------------------------------------------------------------------


def faketime_run(cycle, clock: str | None, *args: str) -> subprocess.CompletedProcess:
    """The CLI with its clock (and its children's) moved by `clock` (libfaketime)."""
    from tests.chaos.world import faketime_env

    return subprocess.run(cli_argv(cycle.env_path, *args), capture_output=True, text=True, timeout=600,
                          env=faketime_env(dict(os.environ), clock))


def test_a_night_made_while_the_clock_ran_ahead_makes_prune_wait_not_fail(shared):
    """Found by the chaos campaign (a clock 5 h ahead for one night): every later night failed
    with a prune hold that only `release-prune` lifted, and releasing it let borg's keep-daily
    drop the real night's archive as the older one of its day. Now prune waits, the night is a
    WARNING, no hold is recorded, and the first night past that date prunes again by itself."""
    cycle = shared  # the last of this module's tests on it: the archives it leaves are dated ahead
    nights, listed = [], []
    for clock in ("+5h", None, "+6h"):
        seed(cycle.base, "git", {f"night-{clock}.txt": os.urandom(64)})
        time.sleep(1.1)
        r = faketime_run(cycle, clock, "backup", "--json", "git")
        nights.append(r)
        assert r.returncode == 0, r.stdout + r.stderr
        listed.append(run_cli(cycle.env_path, "list-archives", "git").stdout)
    ahead, behind, past = ({d["service"]: d for d in json.loads(r.stdout)["datasets"]}["git"] for r in nights)
    assert ahead["result"] == "ok"
    assert behind["result"] == "warning" and "prune waits: " in behind["message"], behind
    assert f"{ahead['archive']}, already in the repository, is dated after tonight's" in behind["message"]
    assert "release-prune" not in nights[1].stdout + nights[1].stderr
    assert json.loads(nights[1].stdout)["held"] == {} and not behind["pruned"]
    assert ahead["archive"] in listed[1] and behind["archive"] in listed[1], listed[1]  # both kept
    # the clock past the ahead night: prune runs again by itself, by the retention
    assert past["result"] == "ok" and past["pruned"] and past["archive"] in listed[2], past
    assert cycle.host_is_clean() == []


def test_zfs_fuse_restarted_between_runs(cycle, lab):
    """After the last case on the shared stacks: its own are the same compose projects, so its
    `docker-up` and `docker-down` take the shared containers (CI at 1ea90ff: the clock test after
    it found none of them running)."""
    assert run_cli(cycle.env_path, "backup", timeout=600).returncode == 0
    r = subprocess.run(["bash", str(LAB_SH), "recover-zfs"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    again = run_cli(cycle.env_path, "backup", timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert cycle.host_is_clean() == []
    borg_check_all(cycle)
