"""Time travel's pure parts: FILE's rules, versions from a tree and from borg's listing, the
timeline's collapsing, and which version restore-path takes."""

import calendar
import os
import time
from pathlib import PurePosixPath

import pytest

from management.cycles.timetravel import (
    ABSENT,
    Point,
    Version,
    check_relative,
    choose,
    collapse,
    parse_when,
    symlink_on_path,
    version_at,
    version_from_listing,
)
from management.errors import ValidationError


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


def test_without_when_the_newest_version_that_differs_from_live():
    points = [point("n1", 1, 10), point("n2", 2, 20), point("n3", 3, 30)]
    assert choose(points, Version(True, "file", 30, 100), None).name == "n2"
    assert choose(points, ABSENT, None).name == "n3"  # deleted: the newest that holds it
    with pytest.raises(ValidationError, match="same version as live"):
        choose([point("n1", 1, 30)], Version(True, "file", 30, 100), None)


def test_when_is_a_date_a_time_or_a_name():
    day = time.mktime((2026, 12, 1, 3, 30, 0, 0, 0, -1))
    points = [point("a", day - 86400, 10), point("b", day, 20, "archive"), point("c", day + 86400, 30)]
    assert choose(points, ABSENT, "2026-12-01").name == "b"  # the whole day counts
    assert choose(points, ABSENT, "2026-12-01T03:00").name == "a"
    assert choose(points, ABSENT, "c").name == "c"
    with pytest.raises(ValidationError, match="neither a date"):
        choose(points, ABSENT, "yesterday")
    with pytest.raises(ValidationError, match="no restore point at or before"):
        choose(points, ABSENT, "2020-01-01")
    assert parse_when("2026-12-01T03:00:00Z") == calendar.timegm((2026, 12, 1, 3, 0, 0))
    assert parse_when("git-2026-12-01T03:00:00Z") is None
