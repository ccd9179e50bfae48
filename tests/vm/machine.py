"""One services VM under qemu: boot it, reach it over ssh, reboot it, cut its power, plug a disk in late.

The image comes from build-image.sh (cached). Each VM boots a qcow2 overlay on it, so the
image is never written and a fresh VM costs a second. Disks, each a file in the VM's work
directory and named by a serial (/dev/disk/by-id/virtio-<serial>):
  vda  the root filesystem (overlay)
  orchpool  the ZFS pool's data disk (raw; `make setup-pool` inside the guest: real OpenZFS)
  orchpool2  the "Backup Data Disk", the other leg of the pool's mirror (spec 004)
  orchborg  ext4 labelled `borg`, mounted at /srv/borg: the borg repositories
Networking is qemu's user mode with restrict=on: the guest reaches nothing but, when
`backup_port` is given, BACKUP_SERVER:22 (guestfwd, relayed to that port of the host's
127.0.0.1: the host lab's sshd), and the only way in is ssh forwarded from a free port on
127.0.0.1. new_os_disk() and blank_disks() replace disks while the VM is off.

qemu runs with KVM when /dev/kvm works and TCG otherwise (this project's machines: PVM
rejects the guest's MSR writes). Everything is bounded in time; `down()` removes only the
work directory this object made.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DISK_SERIALS = {"pool": "orchpool", "pool2": "orchpool2", "borg": "orchborg"}
POOL_DISKS = ("pool", "pool2")  # the mirror's legs: absent together at a late-disk boot, plugged together
# The backup server as the guest sees it: qemu's guestfwd, which restrict=on leaves working,
# relays each connection to 10.0.2.100:22 to one port of the host (the host lab's sshd)
BACKUP_SERVER = "10.0.2.100"
RELAY = """\
import os, select, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
s.settimeout(None)
inputs = [0, s.fileno()]
while inputs:
    for fd in select.select(inputs, [], [])[0]:
        data = os.read(fd, 65536)
        if fd == 0:
            if data:
                s.sendall(data)
            else:
                s.shutdown(socket.SHUT_WR)
                inputs.remove(0)
        elif data:
            os.write(1, data)
        else:
            sys.exit(0)
"""


def build_image() -> Path:
    """The cached image directory (built when its inputs changed)."""
    out = subprocess.run(["bash", str(HERE / "build-image.sh")], capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(f"build-image.sh failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return Path(out.stdout.strip().splitlines()[-1])


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def loopback_address() -> str:
    """A 127.x.y.z of its own (Linux routes all of 127/8 to lo) with nothing listening on it yet."""
    import random

    for _ in range(50):
        address = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(2, 254)}"
        try:
            free_port(address)
            return address
        except OSError:
            continue
    raise RuntimeError("no free loopback address")


def cidata_disk(path: Path, user_data: str, meta_data: str) -> Path:
    """cloud-init's NoCloud seed as a hypervisor hands it over: a FAT disk labelled CIDATA with
    `user-data` and `meta-data` (cloud-init reads vfat or iso9660 only), made by mtools."""
    work = path.parent / (path.name + ".d")
    work.mkdir(parents=True, exist_ok=True)
    (work / "user-data").write_text(user_data)
    (work / "meta-data").write_text(meta_data)
    path.unlink(missing_ok=True)
    subprocess.run(["mformat", "-C", "-f", "1440", "-v", "CIDATA", "-i", str(path), "::"], check=True, timeout=60)
    subprocess.run(["mcopy", "-i", str(path), str(work / "user-data"), str(work / "meta-data"), "::"], check=True,
                   timeout=60)
    shutil.rmtree(work)
    return path


def cloud_image(base: Path) -> Path:
    """The provisioning scenario's image (cloud-image.sh): `base` plus cloud-init, sudo, rsync,
    ufw and python3-apt, cached."""
    out = subprocess.run(["bash", str(HERE / "cloud-image.sh"), str(base)], capture_output=True, text=True,
                         timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"cloud-image.sh failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return Path(out.stdout.strip().splitlines()[-1])


def accel() -> str:
    """kvm when a KVM guest actually runs here, else tcg. VM_ACCEL=kvm|tcg overrides. The probe
    runs the firmware for a few seconds: on PVM hosts (/dev/kvm present, no vmx/svm) qemu aborts
    at the first MSR write, which it would otherwise do in the middle of the boot."""
    forced = os.environ.get("VM_ACCEL")
    if forced:
        return forced
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    probe = subprocess.Popen(["qemu-system-x86_64", "-accel", "kvm", "-cpu", "host", "-m", "256", "-nodefaults",
                              "-display", "none"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        probe.wait(timeout=5)
        return "tcg"  # exited by itself: KVM failed
    except subprocess.TimeoutExpired:
        probe.kill()
        probe.wait(timeout=30)
        return "kvm"


class VM:
    def __init__(self, image: Path, *, memory_mb: int = 3072, cpus: int = 2, pool_gb: int = 2, borg_gb: int = 2,
                 backup_port: int | None = None, address: str = "127.0.0.1", forwards: tuple[int, ...] = (),
                 seed: Path | None = None):
        """`backup_port`: a port on the host's 127.0.0.1 the guest reaches as BACKUP_SERVER:22.
        `address`: the host address the forwards listen on (another 127.x.y.z gives a VM the
        same port numbers as the guest's, the playbook's ssh_port among them); `forwards`: guest
        ports forwarded from the same port of `address` (besides 22, forwarded from self.port);
        `seed`: a cloud-init NoCloud seed disk (cidata_disk), plugged read-only."""
        self.image = image
        self.backup_port = backup_port
        self.address, self.forwards, self.seed = address, tuple(forwards), seed
        self.work = Path(tempfile.mkdtemp(prefix="orchestrator-vm.", dir="/var/tmp"))
        self.memory_mb, self.cpus = memory_mb, cpus
        self.accel = accel()
        self.port = free_port(address)
        self.key = image / "id_ed25519"
        self.user, self.ssh_port = "root", self.port  # login_as() changes them
        self.console = self.work / "console.log"
        self.qmp_path = self.work / "qmp.sock"
        self.process: subprocess.Popen | None = None
        self.boots: list[float] = []  # seconds from qemu start to ssh, per boot
        self.late_borg_mounts = 0  # boots after which /srv/borg had to be mounted by hand
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(image / "root.img"),
                        str(self.work / "root.qcow2")], check=True, timeout=60)
        for name, size in (("pool", pool_gb), ("pool2", pool_gb), ("borg", borg_gb)):
            path = self.work / f"{name}.img"
            with open(path, "wb") as f:
                f.truncate(size << 30)
        subprocess.run(["mkfs.ext4", "-q", "-L", "borg", str(self.work / "borg.img")], check=True, timeout=60)
        (self.work / "relay.py").write_text(RELAY)

    # --- qemu -------------------------------------------------------------------------------

    def _drive(self, name: str) -> list[str]:
        return ["-drive", f"file={self.work / f'{name}.img'},if=none,id={name},format=raw,cache=writeback",
                "-device", f"virtio-blk-pci,drive={name},id={name}-dev,serial={DISK_SERIALS[name]}"]

    def argv(self, *, pool_disk: bool = True) -> list[str]:
        cpu = (["-accel", "kvm", "-cpu", "host"] if self.accel == "kvm"
               else ["-accel", "tcg,thread=multi", "-cpu", "max"])
        argv = ["qemu-system-x86_64", *cpu,
                "-smp", str(self.cpus), "-m", str(self.memory_mb), "-nodefaults", "-display", "none",
                "-kernel", str(self.image / "vmlinuz"), "-initrd", str(self.image / "initrd.img"),
                "-append", "root=/dev/vda rw console=ttyS0 panic=-1 systemd.show_status=1",
                "-device", "virtio-rng-pci",
                "-serial", f"file:{self.console}",
                "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
                "-drive", f"file={self.work / 'root.qcow2'},if=none,id=root,format=qcow2,cache=writeback",
                "-device", "virtio-blk-pci,drive=root,serial=vmroot",
                "-netdev", f"user,id=n0,restrict=on,hostfwd=tcp:{self.address}:{self.port}-:22"
                           f"{''.join(f',hostfwd=tcp:{self.address}:{p}-:{p}' for p in self.forwards)}"
                           f"{self._guestfwd()}",
                "-device", "virtio-net-pci,netdev=n0"]
        if pool_disk:
            for name in POOL_DISKS:
                argv += self._drive(name)
        argv += self._drive("borg")
        if self.seed is not None:
            argv += ["-drive", f"file={self.seed},if=none,id=seed,format=raw,readonly=on",
                     "-device", "virtio-blk-pci,drive=seed,serial=cidata"]
        return argv

    def _guestfwd(self) -> str:
        # one relay process per connection (cmd:, not a chardev, which serves one connection)
        if self.backup_port is None:
            return ""
        return f",guestfwd=tcp:{BACKUP_SERVER}:22-cmd:{sys.executable} {self.work / 'relay.py'} {self.backup_port}"

    def start(self, *, pool_disk: bool = True) -> None:
        assert self.process is None or self.process.poll() is not None, "the VM is already running"
        with open(self.console, "ab") as log:
            log.write(f"\n==== qemu start {time.strftime('%H:%M:%S')} ====\n".encode())
        self.process = subprocess.Popen(self.argv(pool_disk=pool_disk), stdin=subprocess.DEVNULL,
                                        stdout=open(self.work / "qemu.log", "ab"), stderr=subprocess.STDOUT,
                                        start_new_session=True)
        self._started = time.monotonic()

    def boot(self, *, pool_disk: bool = True, settle: bool = True, timeout: float = 900) -> float:
        """Start qemu and wait for ssh (and, `settle`, for the boot to finish: every start job
        done, the stacks' unit included). Returns the seconds it took."""
        self.start(pool_disk=pool_disk)
        return self.wait_ssh(timeout, settle=settle)

    def wait_ssh(self, timeout: float = 900, *, settle: bool = True) -> float:
        deadline = time.monotonic() + timeout
        probe = "cat /proc/sys/kernel/random/boot_id"
        if settle:
            probe = "systemctl is-system-running --wait >/dev/null 2>&1; " + probe
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"qemu exited ({self.process.returncode}); console:\n{self.tail_console()}")
            r = self.ssh(probe, check=False, timeout=120, connect_timeout=5)
            if r.returncode == 0 and r.stdout.strip():
                took = time.monotonic() - self._started
                self.boots.append(took)
                if settle:
                    self._borg_disk_mounted()
                return took
            time.sleep(3)
        raise TimeoutError(f"no ssh after {timeout:.0f}s; console:\n{self.tail_console()}")

    def _borg_disk_mounted(self) -> None:
        """/srv/borg mounted after a finished boot. Its fstab line is `nofail` with a 20 s device
        timeout, which a loaded TCG host misses (the journal: "Timed out waiting for device
        dev-disk-by\\x2dlabel-borg.device"); the repositories would then go to the OS disk. A
        blank borg disk (the total loss) stays unmounted."""
        r = self.ssh("mountpoint -q /srv/borg || { mount /srv/borg 2>/dev/null && echo late; } || true",
                     check=False)
        if r.stdout.strip() == "late":
            self.late_borg_mounts += 1

    def tail_console(self, lines: int = 40) -> str:
        try:
            text = self.console.read_text(errors="replace")
        except FileNotFoundError:
            return "(no console log)"
        return "\n".join(text.splitlines()[-lines:])

    def kill(self) -> None:
        """The power cut: SIGKILL to qemu, nothing flushed that the guest had not flushed."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=60)

    def reboot(self, timeout: float = 900) -> float:
        """`systemctl reboot` and wait for the new boot. qemu itself keeps running."""
        before = self.boot_id()
        self.ssh("systemctl reboot", check=False, timeout=30)
        self._started = time.monotonic()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(5)
            r = self.ssh("cat /proc/sys/kernel/random/boot_id", check=False, timeout=30, connect_timeout=5)
            if r.returncode == 0 and r.stdout.strip() and r.stdout.strip() != before:
                return self.wait_ssh(max(60.0, deadline - time.monotonic()))
        raise TimeoutError(f"no new boot after {timeout:.0f}s; console:\n{self.tail_console()}")

    def poweroff(self, timeout: float = 300) -> None:
        if self.process and self.process.poll() is None:
            self.ssh("systemctl poweroff", check=False, timeout=30)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def down(self) -> None:
        self.kill()
        shutil.rmtree(self.work, ignore_errors=True)

    # --- disks replaced: the OS disk rebuilt, a total loss -----------------------------------------

    def new_os_disk(self) -> None:
        """A fresh root overlay on the cached image: the OS disk as a reinstall leaves it. The VM
        must be off."""
        assert self.process is None or self.process.poll() is not None, "power the VM off first"
        root = self.work / "root.qcow2"
        root.unlink()
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(self.image / "root.img"),
                        str(root)], check=True, timeout=60)

    def blank_disks(self, prefix: str) -> list[str]:
        """Every disk whose DISK_SERIALS name starts with `prefix` replaced by an empty one of the
        same size (all zeros). The VM must be off. Returns the names."""
        assert self.process is None or self.process.poll() is not None, "power the VM off first"
        names = [name for name in DISK_SERIALS if name.startswith(prefix)]
        for name in names:
            path = self.work / f"{name}.img"
            size = path.stat().st_size
            with open(path, "r+b") as f:
                f.truncate(0)
                f.truncate(size)
        return names

    # --- QMP: hot-plug --------------------------------------------------------------------------

    def qmp(self, command: str, **arguments) -> dict:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(30)
            s.connect(str(self.qmp_path))
            f = s.makefile("rw")
            json.loads(f.readline())  # greeting
            for cmd in ({"execute": "qmp_capabilities"}, {"execute": command, "arguments": arguments}):
                f.write(json.dumps(cmd) + "\n")
                f.flush()
                while True:
                    reply = json.loads(f.readline())
                    if "event" not in reply:
                        break
                if "error" in reply:
                    raise RuntimeError(f"qmp {cmd['execute']}: {reply['error']}")
            return reply

    def plug_pool_disk(self) -> None:
        """The pool's disks appear now, as a slow controller or a late iSCSI/USB disk would: both
        legs of the mirror, back to back (both backends first, then both devices)."""
        for name in POOL_DISKS:
            self.qmp("blockdev-add", **{"node-name": name, "driver": "raw",
                                        "file": {"driver": "file", "filename": str(self.work / f"{name}.img")}})
        for name in POOL_DISKS:
            self.qmp("device_add", driver="virtio-blk-pci", drive=name, id=f"{name}-dev", serial=DISK_SERIALS[name])

    # --- ssh --------------------------------------------------------------------------------------

    def login_as(self, user: str, key: Path, port: int) -> None:
        """From now on ssh() logs in as `user` with `key` on `port` of self.address and runs its
        scripts through `sudo -n` (a provisioned guest: sshd moved, root refused)."""
        self.user, self.key, self.ssh_port = user, key, port

    def ssh_argv(self, connect_timeout: int = 15, *, user: str | None = None, key: Path | None = None,
                 port: int | None = None) -> list[str]:
        return ["ssh", "-i", str(key or self.key), "-p", str(port or self.ssh_port), "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                "-o", f"ConnectTimeout={connect_timeout}", "-o", "ServerAliveInterval=10",
                "-o", "ServerAliveCountMax=6", f"{user or self.user}@{self.address}"]

    def ssh(self, script: str, *, check: bool = True, timeout: float = 600, input: bytes | str | None = None,
            connect_timeout: int = 15) -> subprocess.CompletedProcess:
        """Run `script` with bash -e in the guest, as root. `check`: raise with its output on failure."""
        sudo = [] if self.user == "root" else ["sudo", "-n"]
        argv = self.ssh_argv(connect_timeout) + [*sudo, "bash", "-ec", _quote(script)]
        try:
            r = subprocess.run(argv, input=input, capture_output=True, timeout=timeout,
                               text=not isinstance(input, bytes))
        except subprocess.TimeoutExpired as e:
            if check:
                raise AssertionError(f"timed out after {timeout:.0f}s in the VM: {script}\n"
                                     f"{e.stdout}\n{e.stderr}") from None
            return subprocess.CompletedProcess(argv, 124, "", "timeout")
        if isinstance(r.stdout, bytes):
            r = subprocess.CompletedProcess(argv, r.returncode, r.stdout.decode(errors="replace"),
                                            r.stderr.decode(errors="replace"))
        if check and r.returncode != 0:
            raise AssertionError(f"exit {r.returncode} in the VM: {script}\n--- stdout\n{r.stdout[-4000:]}"
                                 f"\n--- stderr\n{r.stderr[-4000:]}")
        return r

    def boot_id(self) -> str:
        return self.ssh("cat /proc/sys/kernel/random/boot_id").stdout.strip()

    def push_tree(self, files: list[Path], root: Path, dest: str) -> None:
        """Copy `files` (relative to `root`) into `dest` in the guest, as tar over ssh."""
        tar = subprocess.run(["tar", "-C", str(root), "-cf", "-", "--null", "-T", "-"],
                             input=b"\0".join(str(f).encode() for f in files), capture_output=True, check=True,
                             timeout=300)
        self.ssh(f"mkdir -p {dest} && tar -C {dest} -xf -", input=tar.stdout, timeout=600)


def _quote(script: str) -> str:
    # ssh joins its arguments with spaces for the remote shell: quote the script once
    return "'" + script.replace("'", "'\"'\"'") + "'"


def project_files() -> list[Path]:
    """The project as git sees it (tracked and new files, nothing ignored)."""
    out = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "-co", "--exclude-standard"],
                         check=True, capture_output=True, timeout=60).stdout
    return [Path(p.decode()) for p in out.split(b"\0") if p and (REPO / p.decode()).exists()]


def image_versions(image: Path) -> dict[str, str]:
    """What build-image.sh recorded the image was built with: {"docker.io": "26.1.5+dfsg1-...", ...}."""
    try:
        text = (image / "versions").read_text()
    except FileNotFoundError:
        return {}
    return dict(line.split(" ", 1) for line in text.splitlines() if " " in line)


def guest_python(image: Path) -> str | None:
    """The guest's Python as major.minor (3.13 on trixie, 3.11 on bookworm), None when unknown."""
    version = image_versions(image).get("python3", "")
    parts = version.split(".")
    return f"{parts[0]}.{parts[1]}" if len(parts) >= 2 and parts[0].isdigit() else None


def wheelhouse(python: str | None = None) -> Path:
    """requirements.txt as wheels for the guest's Python (`python`, major.minor; default this
    one's), downloaded once per content: the guest has no network, `make install` reads them
    with PIP_NO_INDEX/PIP_FIND_LINKS. PyYAML's wheel is built per Python version."""
    import hashlib

    req = REPO / "requirements.txt"
    host = f"{sys.version_info.major}.{sys.version_info.minor}"
    python = python or host
    key = hashlib.sha256(req.read_bytes() + (b"" if python == host else python.encode())).hexdigest()[:12]
    out = Path(os.environ.get("VM_CACHE", "/var/tmp/orchestrator-vm")) / f"wheels-{key}"
    if not (out / "complete").exists():
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
                        "--only-binary", ":all:", "--python-version", python, "-d", str(tmp), "-r", str(req)],
                       check=True, timeout=900)
        (tmp / "complete").touch()
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    return out


@contextlib.contextmanager
def host_lab_backup_server(lab, name: str):
    """A directory of the host lab's borg server (sshd on 127.0.0.1, user borgsrv, `borg serve`),
    which a guest reaches as BACKUP_SERVER:22 through qemu's guestfwd, with what the guest needs
    to use it: the repository base, BORG_RSH, the lab's borg key (already in the server's
    authorized_keys, so the server's files are not changed) and known_hosts. The directory is
    removed afterwards."""
    path = Path(lab.borg_repos) / lab.unique(name)
    known = [line.split(None, 1)[1] for line in lab.ssh_known_hosts.read_text().splitlines() if line.strip()]
    server = {
        "repo_base": f"ssh://{lab.borg_user}@{BACKUP_SERVER}{path}",
        "rsh": "ssh -i /root/.ssh/borg_ed25519 -o UserKnownHostsFile=/root/.ssh/borg_known_hosts "
               "-o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=30",
        "key": lab.ssh_key.read_text(),
        "known_hosts": "".join(f"{BACKUP_SERVER} {k}\n" for k in known),
    }
    try:
        yield server
    finally:
        shutil.rmtree(path, ignore_errors=True)

