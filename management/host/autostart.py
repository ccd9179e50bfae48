"""The systemd unit that brings every stack up after a reboot, the docker.service drop-in that
holds dockerd until the ZFS datasets are mounted, and the install/uninstall flow for both.

The unit is a oneshot with RemainAfterExit, so after a boot `systemctl status` shows
`active (exited)` when every stack was started (spec 000), and `failed` with the summary in
the journal when one was not. Rendering is pure; files are written only through `managed`.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from management.errors import ValidationError
from management.host.managed import ours, remove_managed, unchanged, write_managed

UNIT_NAME = "orchestrator-stacks.service"
UNIT_MARKER = "# Managed by orchestrator (make install-autostart); remove with make uninstall-autostart."


def _exec(python: Path, orchestrator: Path, env_file: Path, *args: str) -> str:
    for p in (python, orchestrator, env_file):
        if not p.is_absolute():
            raise ValidationError(f"{p} must be an absolute path in a systemd unit")
    # systemd's own quoting rules match the shell's for plain double quotes
    return " ".join(f'"{a}"' if re.search(r"\s", a) else a
                    for a in (str(python), str(orchestrator), "--env-file", str(env_file), *args))


def render_unit(python: Path, orchestrator: Path, env_file: Path) -> str:
    """A oneshot unit: after docker and the ZFS mounts, `docker-up` (hub first); on stop, `docker-stop`."""
    return (
        f"{UNIT_MARKER}\n"
        "[Unit]\n"
        "Description=Start every Docker Compose stack (hub first) after docker and ZFS are up\n"
        "Requires=docker.service\n"
        "Wants=network-online.target\n"
        # OpenZFS mounts datasets in zfs-mount.service, zfs-fuse in zfs-fuse.service; ordering
        # after a unit that does not exist is a no-op, so both are named.
        "After=docker.service network-online.target local-fs.target zfs-mount.service zfs-fuse.service\n"
        "\n"
        "[Service]\n"
        "Type=oneshot\n"
        "RemainAfterExit=yes\n"
        f"WorkingDirectory={orchestrator.parent}\n"
        f"ExecStart={_exec(python, orchestrator, env_file, 'docker-up')}\n"
        f"ExecStop={_exec(python, orchestrator, env_file, 'docker-stop')}\n"
        "TimeoutStartSec=15min\n"
        "TimeoutStopSec=5min\n"
        "\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )


DROPIN = Path("docker.service.d") / "orchestrator-after-zfs.conf"


def render_docker_dropin(python: Path, orchestrator: Path, env_file: Path, storage_wait: int) -> str:
    """Containers with a restart policy are started by dockerd itself at boot, before our unit
    runs: order dockerd after the ZFS mounts, and (STORAGE_WAIT > 0) hold it until the pool is
    imported and every service dataset mounted, so they never start on an empty mountpoint.
    The pool's disk may appear after zfs-import-cache ran (the 004 race): `wait-storage`
    imports it by scanning."""
    text = (
        f"{UNIT_MARKER}\n"
        "[Unit]\n"
        "After=zfs-import.target zfs-mount.service zfs-fuse.service\n"
    )
    if storage_wait > 0:
        text += (
            "\n"
            "[Service]\n"
            # bounded by STORAGE_WAIT itself; docker's own unit does not bound its start
            # (TimeoutStartSec=0 upstream and in Debian), so nothing cuts the wait short
            f"ExecStartPre={_exec(python, orchestrator, env_file, 'wait-storage')}\n"
        )
    return text


def install_unit(unit_dir: Path, text: str, dropin: str) -> list[Path]:
    return write_managed([(unit_dir / UNIT_NAME, text), (unit_dir / DROPIN, dropin)], UNIT_MARKER)


def uninstall_unit(unit_dir: Path) -> list[Path]:
    removed = remove_managed([unit_dir / UNIT_NAME, unit_dir / DROPIN], UNIT_MARKER)
    dropin_dir = unit_dir / DROPIN.parent
    if dropin_dir.is_dir() and not any(dropin_dir.iterdir()):
        dropin_dir.rmdir()
    return removed


def installed_unit(unit_dir: Path) -> Path | None:
    """The unit file when it exists and is ours; raises when someone else wrote it."""
    path = unit_dir / UNIT_NAME
    return path if ours(path, UNIT_MARKER) else None


SYSTEM_UNIT_DIR = Path("/etc/systemd/system")


def manages_systemd(unit_dir: Path) -> bool:
    """Talk to systemctl only for the real unit directory on a host where systemd is PID 1
    (sd_booted(3)); a unit written elsewhere (a test, a chroot) is left to the caller."""
    return Path(unit_dir) == SYSTEM_UNIT_DIR and Path("/run/systemd/system").is_dir()


def verify_unit(runner, text: str) -> str | None:
    """`systemd-analyze verify` on the rendered unit before it is installed, where the tool
    exists. Returns None when it could not run, else its warnings ("" for none); raises
    CommandError when the unit is bad (a missing executable, say)."""
    if not shutil.which("systemd-analyze"):
        return None
    with tempfile.TemporaryDirectory(prefix="orchestrator-unit.") as tmp:
        path = Path(tmp) / UNIT_NAME
        path.write_text(text)
        result = runner.run(["systemd-analyze", "verify", str(path)], mutating=False, timeout=60)
    return result.stderr.strip()


def enable_unit(runner) -> None:
    reload_units(runner)
    runner.run(["systemctl", "enable", UNIT_NAME], timeout=60)


def disable_unit(runner) -> None:
    runner.run(["systemctl", "disable", UNIT_NAME], timeout=60, ok_codes=(0, 1))


def reload_units(runner) -> None:
    runner.run(["systemctl", "daemon-reload"], timeout=60)




def install_autostart(runner, python: Path, orchestrator: Path, env_file: Path, storage_wait: int,
                      unit_dir: Path, dry_run: bool, echo) -> None:
    """Render the unit and the drop-in; write them when they changed (verified first), then
    enable the unit where systemd runs. Says "nothing to change" when both are current (the
    provisioning playbook reads that line)."""
    unit = render_unit(python, orchestrator, env_file)
    dropin = render_docker_dropin(python, orchestrator, env_file, storage_wait)
    if dry_run:
        echo(unit)
        echo(f"# {DROPIN}\n{dropin}")
        return
    systemd = manages_systemd(unit_dir)
    if unchanged([(unit_dir / UNIT_NAME, unit), (unit_dir / DROPIN, dropin)]):
        echo("install-autostart: nothing to change")
        if systemd:
            enable_unit(runner)
        return
    warnings = verify_unit(runner, unit)
    if warnings is None:
        echo("systemd-analyze not found: the unit was not verified")
    elif warnings:
        echo(f"systemd-analyze verify:\n{warnings}")
    else:
        echo("systemd-analyze verify: ok")
    for path in install_unit(unit_dir, unit, dropin):
        echo(f"wrote {path}")
    if systemd:
        enable_unit(runner)
        echo(f"enabled {UNIT_NAME}: stacks start at the next boot (now: systemctl start {UNIT_NAME})")
    else:
        echo("systemd is not running here: enable it with "
             f"`systemctl daemon-reload && systemctl enable {UNIT_NAME}` on the VM")


def uninstall_autostart(runner, unit_dir: Path) -> list[Path]:
    """Disable and remove the unit and the drop-in (only files this tool wrote)."""
    managed = manages_systemd(unit_dir)
    if managed and installed_unit(unit_dir):
        disable_unit(runner)
    removed = uninstall_unit(unit_dir)
    if removed and managed:
        reload_units(runner)
    return removed
