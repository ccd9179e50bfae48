"""Time travel's pure parts: FILE's rules, versions from a tree and from borg's listing, the
timeline's collapsing, and which version restore-path takes."""

import calendar
import os
import shutil
import time
from pathlib import PurePosixPath

import pytest

from management.cycles.context import RunContext
from management.cycles.timetravel import (
    ABSENT,
    Point,
    TimeTravel,
    Version,
    check_relative,
    collapse,
    parse_when,
    symlink_on_path,
    version_at,
    version_from_listing,
)
from management.errors import ValidationError
from management.runner import Runner
from management.state import HistoryPoint
from management.tools.zfs import Snapshot
from tests.unit.config.test_load import BASE, settings_with


@pytest.mark.parametrize("bad, words", [
    ("../../etc", "climbs out"),
    ("photos/../../etc", "climbs out"),
    ("/etc/passwd", "absolute"),
    ("", "empty"),
    (".", "whole dataset"),
    ("./", "whole dataset"),
    (".orchestrator-stack/.env", "make restore ONLY=stack"),
])
def test_file_must_stay_inside_the_dataset(bad, words):
    with pytest.raises(ValidationError, match=words):
        check_relative(bad)


def test_file_is_normalised_and_keeps_odd_names():
    assert check_relative("./photos//a b.jpg") == PurePosixPath("photos/a b.jpg")
    assert check_relative("ünï/new\nline") == PurePosixPath("ünï/new\nline")


def test_a_symlink_on_the_path_is_found_and_never_followed(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "f").write_text("x")
    os.symlink(tmp_path / "real", tmp_path / "link")
    assert symlink_on_path(tmp_path, PurePosixPath("link/f")) == "link"
    assert symlink_on_path(tmp_path, PurePosixPath("real/f")) is None
    assert version_at(tmp_path, PurePosixPath("link/f")) == ABSENT  # not followed


def test_versions_of_a_file_a_folder_and_a_symlink(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a").write_bytes(b"12345")
    (tmp_path / "d" / "sub").mkdir()
    (tmp_path / "d" / "sub" / "b").write_bytes(b"xyz")
    os.utime(tmp_path / "d" / "a", (1_700_000_000, 1_700_000_000))
    os.symlink("d/a", tmp_path / "l")
    f = version_at(tmp_path, PurePosixPath("d/a"))
    assert (f.kind, f.size, f.mtime) == ("file", 5, 1_700_000_000)
    d = version_at(tmp_path, PurePosixPath("d"))
    assert (d.kind, d.entries, d.size) == ("folder", 3, 8)
    assert version_at(tmp_path, PurePosixPath("l")).target == "d/a"
    assert version_at(tmp_path, PurePosixPath("nope")) == ABSENT


def test_borg_listing_reads_as_the_same_version_as_the_tree(tmp_path):
    mtime = "2023-11-14T22:13:20.000000"  # what borg prints: local time
    seconds = int(time.mktime(time.strptime("2023-11-14T22:13:20", "%Y-%m-%dT%H:%M:%S")))
    items = [{"path": "d", "type": "d", "mtime": mtime, "size": 0},
             {"path": "d/a", "type": "-", "mtime": mtime, "size": 5},
             {"path": "d/sub", "type": "d", "mtime": mtime, "size": 0},
             {"path": "d/sub/b", "type": "-", "mtime": mtime, "size": 3},
             {"path": "dx", "type": "-", "mtime": mtime, "size": 9}]  # a sibling with the same prefix
    assert version_from_listing(PurePosixPath("d"), items) == Version(True, "folder", 8, seconds, 3)
    assert version_from_listing(PurePosixPath("d/a"), items) == Version(True, "file", 5, seconds)
    assert version_from_listing(PurePosixPath("gone"), items) == ABSENT


def point(name, t, size, source="snapshot"):
    return Point(source, name, t, version=Version(True, "file", size, 100) if size else ABSENT)


def test_identical_neighbours_collapse_into_one_row():
    points = [point("n1", 1, 10), point("n2", 2, 10), point("n3", 3, 20), point("n4", 4, 20), point("n5", 5, 10)]
    rows = collapse(points)
    assert [(r.version.size, [p.name for p in r.points]) for r in rows] == \
        [(10, ["n1", "n2"]), (20, ["n3", "n4"]), (10, ["n5"])]


class Fakes:
    """zfs (snapshots under `.zfs/snapshot` of a tmp mountpoint, as OpenZFS serves them) and borg
    (archives as folders), each call recorded."""

    def __init__(self, mountpoint, archives):
        self.mountpoint, self.archives, self.calls = mountpoint, archives, []

    def snapshots(self, dataset):
        snapdir = self.mountpoint / ".zfs" / "snapshot"
        return [Snapshot(f"{dataset}@{p.name}", int(p.stat().st_mtime), 0) for p in sorted(snapdir.iterdir())]

    def snapshot(self, dataset, name, recursive=True):
        self.calls.append(("snapshot", name))

    def exists(self, name):
        return False

    def list_archives(self, service):
        self.calls.append(("list", service))
        old = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(500))  # before both snapshots
        return [{"name": p.name, "time": old} for p in sorted(self.archives.iterdir())]

    def list_path(self, service, archive, path):
        self.calls.append(("list_path", archive))
        full = self.archives / archive / path
        if not full.exists():
            return []
        st = full.stat()
        return [{"path": path, "type": "-", "size": st.st_size,
                 "mtime": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(st.st_mtime))}]

    def extract(self, service, archive, staging, paths=(), sparse=False, force=False):
        self.calls.append(("extract", archive))
        src = self.archives / archive / paths[0]
        if not src.exists():
            return False
        (staging / paths[0]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, staging / paths[0])
        return True


@pytest.fixture
def world(tmp_path):
    mountpoint = tmp_path / "pool" / "git"
    base = BASE.replace("ZFS_BASE_MOUNTPOINT=/datapool/services", f"ZFS_BASE_MOUNTPOINT={tmp_path}/pool")
    settings = settings_with(tmp_path, f"LOCK_FILE={tmp_path}/lock\nSTATE_DIR={tmp_path}/state\n", base)
    (mountpoint / "data").mkdir(parents=True)
    archives = tmp_path / "archives"
    for i, name in enumerate(["orchestrator-1", "orchestrator-2"], start=1):
        (mountpoint / ".zfs" / "snapshot" / name / "data").mkdir(parents=True)
        (mountpoint / ".zfs" / "snapshot" / name / "data" / "x").write_text(f"v{i}")
        os.utime(mountpoint / ".zfs" / "snapshot" / name / "data" / "x", (100 * i, 100 * i))
        os.utime(mountpoint / ".zfs" / "snapshot" / name, (1000 * i, 1000 * i))
    (archives / "git-old" / "data").mkdir(parents=True)
    (archives / "git-old" / "data" / "x").write_text("v0")
    fakes = Fakes(mountpoint, archives)
    ctx = RunContext(settings, Runner(), fakes, None, fakes, echo=lambda _: None)
    ctx.state.save_history({"git": [HistoryPoint(f"orchestrator-{i}", 1000.0 * i, "consistent", f"git-{i}")
                                    for i in (1, 2)]})
    return TimeTravel(ctx), fakes, mountpoint / "data" / "x"


def test_a_deleted_file_comes_from_the_newest_snapshot_without_asking_borg(world):
    travel, fakes, live = world
    done = travel.restore_path("git", "data/x")
    assert live.read_text() == "v2" and done.point.name == "orchestrator-2"
    assert [c for c in fakes.calls if c[0] != "snapshot"] == []  # no borg at all
    assert done.safety_snapshot.startswith("datapool/services/git@restore-safety-")
    assert "WHEN=restore-safety-" in done.undo() or "did not exist" in done.undo()


def test_a_safety_snapshot_since_the_last_night_does_not_send_it_to_borg(world):
    travel, fakes, live = world
    safety = live.parents[1] / ".zfs" / "snapshot" / "restore-safety-3"
    (safety / "data").mkdir(parents=True)  # taken after the file was deleted: it lacks it
    os.utime(safety, (3000, 3000))
    done = travel.restore_path("git", "data/x")
    assert done.point.name == "orchestrator-2" and live.read_text() == "v2"
    assert [c for c in fakes.calls if c[0] != "snapshot"] == []


def test_without_when_the_newest_version_that_differs_from_live(world):
    travel, fakes, live = world
    live.write_text("v2")  # live equals the newest snapshot (size and time): the one before it
    os.utime(live, (200, 200))
    done = travel.restore_path("git", "data/x")
    assert live.read_text() == "v1" and done.point.name == "orchestrator-1"
    assert ("list", "git") in fakes.calls  # the newest did not answer: every point, read newest first


def test_a_named_archive_extracts_only_that_path_without_listing(world):
    travel, fakes, live = world
    travel.restore_path("git", "data/x", when="git-old")
    assert live.read_text() == "v0"
    assert [c for c in fakes.calls if c[0] != "snapshot"] == [("extract", "git-old")]
    with pytest.raises(ValidationError, match="does not hold"):
        travel.restore_path("git", "data/nope", when="git-old")


def test_an_archive_a_snapshot_stands_for_is_copied_from_the_snapshot(world):
    travel, fakes, live = world
    travel.restore_path("git", "data/x", when="git-1")  # the history says orchestrator-1 made git-1
    assert live.read_text() == "v1" and not any(c[0] == "extract" for c in fakes.calls)


def test_when_is_a_date_a_time_or_a_name(world):
    travel, fakes, live = world
    with pytest.raises(ValidationError, match="neither a date"):
        travel.restore_path("git", "data/x", when="yesterday")
    with pytest.raises(ValidationError, match="no restore point at or before"):
        travel.restore_path("git", "data/x", when="1970-01-01T00:00:01Z")
    travel.restore_path("git", "data/x", when="1970-01-01T00:25:00Z")  # 1500 s: after the first snapshot
    assert live.read_text() == "v1"
    assert parse_when("2026-12-01T03:00:00Z") == calendar.timegm((2026, 12, 1, 3, 0, 0))
    assert parse_when("2026-12-01") == time.mktime((2026, 12, 1, 23, 59, 59, 0, 0, -1))
    assert parse_when("git-2026-12-01T03:00:00Z") is None


def test_to_inside_the_dataset_is_refused_and_nothing_changes(world, tmp_path):
    travel, fakes, live = world
    with pytest.raises(ValidationError, match="inside git's dataset"):
        travel.restore_path("git", "data/x", to=live.parent / "out")
    assert fakes.calls == [] and not live.exists()


def test_a_stack_stopped_around_the_swap_that_does_not_start_again_is_not_a_quiet_note(world):
    """Found beside fix 6 of the chaos campaign: `restore-path --stop` whose stack did not come
    back only added a note, and the command exited 0 with the service down."""
    from management.tools.compose import StackResult

    travel, fakes, live = world

    class Docker:
        def running_stacks(self):
            return ["git"]

        def stop(self, names):
            return [StackResult(n, True) for n in names]

        def start(self, names):
            return [StackResult(n, False, "port 3000 is taken") for n in names]

    travel.docker = Docker()
    done = travel.restore_path("git", "data/x", stop=True)
    assert done.swapped and live.read_text() == "v2"  # the file is back: that held
    assert done.not_started == "port 3000 is taken"
