"""The zedlet: rendered, installed executable, never over a file this tool did not write, and
what the tool says for each kind of ZFS event zed hands it."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from management.errors import ValidationError
from management.host.zed import MARKER, ZEDLET, install, render_zedlet, uninstall
from management.monitoring.notify import zfs_event_message


def test_the_zedlet_runs_zfs_event_with_the_env_file_and_is_executable(tmp_path):
    text = render_zedlet(Path("/opt/o/.venv/bin/python"), Path("/opt/o/orchestrator.py"), Path("/opt/o/my .env"))
    assert text.startswith("#!/bin/sh\n") and MARKER in text
    assert text.rstrip().endswith("exec /opt/o/.venv/bin/python /opt/o/orchestrator.py --env-file '/opt/o/my .env' "
                                  "zfs-event")
    path = install(tmp_path, text)
    assert path == tmp_path / ZEDLET and stat.S_IMODE(path.stat().st_mode) == 0o755
    assert install(tmp_path, text) is None  # the same text again: nothing to change, nothing written
    path.chmod(0o644)
    assert install(tmp_path, text) == path and stat.S_IMODE(path.stat().st_mode) == 0o755  # a mode is a change
    assert install(tmp_path, text.replace("my .env", "other.env")) == path and "other.env" in path.read_text()
    assert uninstall(tmp_path) == [path] and not path.exists()


def test_the_zedlet_hands_only_the_subclasses_the_tool_reads_to_python(tmp_path):
    import subprocess

    from management.monitoring.notify import ZED_SUBCLASSES

    marker = tmp_path / "ran"
    fake = tmp_path / "python"
    fake.write_text(f"#!/bin/sh\necho \"$ZEVENT_SUBCLASS\" >> {marker}\n")
    fake.chmod(0o755)
    path = install(tmp_path, render_zedlet(fake, Path("o"), Path("e"), ZED_SUBCLASSES))
    for subclass in ("history_event", "config_sync", "statechange", "scrub_finish", "checksum", ""):
        run = subprocess.run([str(path)], env={"PATH": "/usr/bin:/bin", "ZEVENT_SUBCLASS": subclass}, timeout=30)
        assert run.returncode == 0
    assert marker.read_text().split() == ["statechange", "scrub_finish", "checksum"]
    # every subclass zfs_event_message answers is let through
    for subclass in ZED_SUBCLASSES:
        cls = ("ereport.fs.zfs." if subclass in ("checksum", "io", "data") else
               "resource.fs.zfs." if subclass == "statechange" else "sysevent.fs.zfs.") + subclass
        assert zfs_event_message({"ZEVENT_CLASS": cls, "ZEVENT_VDEV_STATE_STR": "FAULTED"}) is not None, subclass
    with pytest.raises(ValidationError, match="not a ZFS event subclass"):
        render_zedlet(fake, Path("o"), Path("e"), ["x; rm -rf /"])


def test_no_zed_folder_and_a_foreign_file_are_refused_and_nothing_is_written(tmp_path):
    with pytest.raises(ValidationError, match="zfs-zed"):
        install(tmp_path / "missing", "x")
    (tmp_path / ZEDLET).write_text("#!/bin/sh\n# someone else's\n")
    with pytest.raises(ValidationError, match="not written by this tool"):
        install(tmp_path, render_zedlet(Path("p"), Path("o"), Path("e")))
    with pytest.raises(ValidationError, match="not written by this tool"):
        uninstall(tmp_path)
    assert (tmp_path / ZEDLET).read_text() == "#!/bin/sh\n# someone else's\n"


def test_a_disk_leaving_online_or_reporting_errors_is_a_failure_and_routine_events_say_nothing():
    faulted = zfs_event_message({"ZEVENT_CLASS": "resource.fs.zfs.statechange", "ZEVENT_POOL": "datapool",
                                 "ZEVENT_VDEV_PATH": "/dev/disk/by-id/ata-WD-1", "ZEVENT_VDEV_STATE_STR": "FAULTED"})
    assert faulted and not faulted.ok and faulted.title == "ZFS pool datapool: /dev/disk/by-id/ata-WD-1 is FAULTED"
    cksum = zfs_event_message({"ZEVENT_CLASS": "ereport.fs.zfs.checksum", "ZEVENT_POOL": "datapool",
                               "ZEVENT_VDEV_PATH": "/dev/sdb1"})
    assert cksum and not cksum.ok and "checksum errors on /dev/sdb1" in cksum.title
    scrub = zfs_event_message({"ZEVENT_CLASS": "sysevent.fs.zfs.scrub_finish", "ZEVENT_POOL": "datapool"})
    assert scrub and scrub.ok and scrub.title == "ZFS pool datapool: scrub finished"
    online = {"ZEVENT_CLASS": "resource.fs.zfs.statechange", "ZEVENT_POOL": "datapool",
              "ZEVENT_VDEV_STATE_STR": "ONLINE"}
    assert zfs_event_message(online) is None
    # what zed really passes (OpenZFS 2.3, `zpool offline`): the class is resource.fs.zfs.statechange;
    # there is no sysevent of that name
    offline = {"ZEVENT_CLASS": "resource.fs.zfs.statechange", "ZEVENT_SUBCLASS": "statechange",
               "ZEVENT_POOL": "orchvm", "ZEVENT_VDEV_PATH": "/dev/disk/by-id/virtio-orchpool2-part1",
               "ZEVENT_VDEV_STATE_STR": "OFFLINE"}
    assert zfs_event_message(offline).title == "ZFS pool orchvm: /dev/disk/by-id/virtio-orchpool2-part1 is OFFLINE"
    assert zfs_event_message(dict(offline, ZEVENT_CLASS="sysevent.fs.zfs.statechange")) is None
    assert zfs_event_message({"ZEVENT_CLASS": "sysevent.fs.zfs.history_event", "ZEVENT_POOL": "datapool"}) is None
    assert zfs_event_message({}) is None
