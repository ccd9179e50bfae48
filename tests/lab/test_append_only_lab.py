"""Append-only backup targets with the real sshd (docs/security.md): the VM's own key pair, its
line from `authorized-keys` appended to the lab server's authorized_keys for the test (and
removed again, the file restored byte for byte), nights through it that only grow the archive
count, an attacker's `borg delete` + `borg compact` through it that "succeeds", `prune-trusted`
with the full-access key (the lab's own) holding that repository instead of compacting the
deletes, and the rollback run exactly as docs/security.md writes it bringing every archive back."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.lab.conftest import build_cycle, teardown_cycle
from tests.lab.envfile import LAB_PASSPHRASE, run_cli

pytestmark = [pytest.mark.lab]

ROOT = Path(__file__).resolve().parents[2]
NOTE = "prune/compact left to the trusted machine"


def doc_block(first_line: str) -> str:
    """The ```sh block of docs/security.md that starts with `first_line`."""
    text = (ROOT / "docs" / "security.md").read_text()
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        lines = [ln[3:] if ln.startswith("   ") else ln for ln in block.splitlines()]  # the list's indent
        if lines[0].startswith(first_line):
            return "\n".join(lines) + "\n"
    raise AssertionError(f"docs/security.md has no sh block starting {first_line!r}")


def set_vars(block: str, **values: str) -> str:
    """The block as written, with only its `NAME=...` (or `cd ...`) lines set to ours."""
    for name, value in values.items():
        pattern = r"^cd .*$" if name == "cd" else rf"^{name}=.*$"
        line = f"cd {value}" if name == "cd" else f"{name}={value}"
        block, n = re.subn(pattern, line, block, count=1, flags=re.M)
        assert n == 1, f"{name} not in the block"
    return block


def make(env_file: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-s", "-C", str(ROOT), *args, f"ENV_FILE={env_file}", f"VENV_DIR={sys.prefix}"],
                          capture_output=True, text=True, timeout=600)


def archives(env_file: Path, service: str) -> list[str]:
    r = run_cli(env_file, "list-archives", service)
    assert r.returncode == 0, r.stdout + r.stderr
    return re.findall(rf"^({service}-\S+)", r.stdout, re.M)


@pytest.fixture
def vm_key(lab, tmp_path):
    key = tmp_path / "id_vm"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "vm", "-f", str(key)], check=True)
    return key


class AuthorizedKeys:
    """The lab server's authorized_keys: lines this test adds, and removes again."""

    def __init__(self, path: Path):
        self.path = path
        self.original = path.read_bytes()

    def add(self, line: str) -> None:
        with open(self.path, "ab") as handle:
            handle.write((line.rstrip("\n") + "\n").encode())

    def remove(self, line: str) -> None:
        text = (line.rstrip("\n") + "\n").encode()
        now = self.path.read_bytes()
        assert text in now
        with open(self.path, "r+b") as handle:  # same inode, owner and mode
            handle.write(now.replace(text, b"", 1))
            handle.truncate()


@pytest.fixture
def authorized_keys(lab):
    """Afterwards the file is as it was, byte for byte: only the lines the test added are removed."""
    keys = AuthorizedKeys(Path(pwd.getpwnam(lab.borg_user).pw_dir) / ".ssh" / "authorized_keys")
    added: list[str] = []
    add = keys.add
    keys.add = lambda line: (add(line), added.append(line))  # type: ignore[method-assign]
    yield keys
    now = keys.path.read_bytes()
    for line in added:
        now = now.replace((line + "\n").encode(), b"", 1)
    with open(keys.path, "r+b") as handle:
        handle.write(now)
        handle.truncate()
    assert keys.path.read_bytes() == keys.original


def test_a_compromised_vms_deletes_are_rolled_back_and_only_the_trusted_machine_prunes(
        lab, tmp_path, vm_key, authorized_keys):
    vm_rsh = lab.borg_rsh.replace(f"-i {lab.ssh_key}", f"-i {vm_key}") + " -o IdentitiesOnly=yes"
    assert str(vm_key) in vm_rsh
    cyc = build_cycle(lab, tmp_path, spokes=["git"],
                      extra={"BORG_RSH": vm_rsh, "BORG_APPEND_ONLY": "1", "SKIP_UNCHANGED": "0",
                             "BORG_RETENTION": "daily=1"})
    repos = Path(lab.borg_repos) / cyc.prefix
    try:
        vm_env = cyc.env_path
        # the trusted machine: a copy of the VM's .env (its own state, lock and borg dirs); its key is the lab's
        trusted_dir = tmp_path / "trusted"
        trusted_dir.mkdir()
        trusted_env = trusted_dir / ".env"
        text = vm_env.read_text()
        for key in ("STATE_DIR", "LOCK_FILE", "MANAGEMENT_DIR"):
            text = re.sub(rf"^{key}=.*$", f"{key}={trusted_dir / key.lower()}", text, flags=re.M)
        text = re.sub(r"^BORG_RSH=.*$", f"BORG_RSH={lab.borg_rsh}", text, flags=re.M)
        text = re.sub(r"^BORG_APPEND_ONLY=.*$", "BORG_APPEND_ONLY=0", text, flags=re.M)
        trusted_env.write_text(text)
        os.chmod(trusted_env, 0o600)

        # 1. the server's lines, from the settings and the public keys only
        r = make(vm_env, "authorized-keys", f"TRUSTED_KEY={lab.ssh_key}.pub")
        assert r.returncode == 0, r.stdout + r.stderr
        lines = [ln for ln in r.stdout.splitlines() if ln and not ln.startswith("#")]
        vm_pub = Path(f"{vm_key}.pub").read_text().split()[1]
        assert lines[0] == (f'command="borg serve --append-only --restrict-to-path {repos}/reverseproxy '
                            f'--restrict-to-path {repos}/git",restrict ssh-ed25519 {vm_pub} '
                            "orchestrator-vm-append-only")
        assert lines[1].startswith(f'command="borg serve --restrict-to-path {repos}",restrict ')
        assert "PRIVATE" not in r.stdout and LAB_PASSPHRASE not in r.stdout
        authorized_keys.add(lines[0])  # the lab's own line already gives the lab key full access

        # 2. nights through the append-only key: no prune, no compact, the count only grows
        counts = []
        for _ in range(3):
            night = run_cli(vm_env, "backup", timeout=900)
            assert night.returncode == 0, night.stdout + night.stderr
            assert night.stdout.count(NOTE) == 1, night.stdout
            counts.append(len(archives(vm_env, "git")))
        assert counts == [1, 2, 3], counts  # BORG_RETENTION=daily=1 would have kept one
        assert (repos / "git" / "transactions").read_text().count("transaction") >= 3

        # 3. the trusted machine prunes with the full-access key (its .env's BORG_RSH)
        r = make(trusted_env, "prune-trusted")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "git: pruned and compacted: 1 archive(s) kept" in r.stdout, r.stdout
        assert len(archives(trusted_env, "git")) == 1
        refused = make(vm_env, "prune-trusted")  # the VM's .env says its key is append-only
        assert refused.returncode != 0 and "needs the full-access key" in refused.stderr

        before = archives(trusted_env, "git")
        assert len(before) == 1
        # the attack begins after that: prune-trusted's commits are in no transactions line, only its segments
        time.sleep(1.1)
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
        time.sleep(1.1)

        # 4. the attacker, with the VM's key and passphrase: delete every archive, compact
        env = {**os.environ, "BORG_RSH": vm_rsh, "BORG_PASSPHRASE": LAB_PASSPHRASE,
               "BORG_BASE_DIR": str(tmp_path / "attacker")}
        for argv in (["borg", "delete", "--glob-archives", "git-*", f"ssh://{lab.borg_user}@127.0.0.1:"
                      f"{lab.ssh_port}{repos}/git"], ["borg", "compact", f"ssh://{lab.borg_user}@127.0.0.1:"
                                                     f"{lab.ssh_port}{repos}/git"]):
            attack = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
            assert attack.returncode == 0, attack.stderr  # it "succeeds"
        assert archives(vm_env, "git") == []

        # 5. the trusted machine's next run holds git instead of compacting the deletes into it
        r = make(trusted_env, "prune-trusted", f"BORG_RSH={lab.borg_rsh}")
        assert r.returncode != 0 and "git: prune held" in r.stdout and "are gone" in r.stdout, r.stdout + r.stderr

        # 6. the rollback, as docs/security.md writes it: the VM's line off the server, then on the
        # server as the borg user ...
        authorized_keys.remove(lines[0])
        server = set_vars(doc_block("# rollback, on the backup server"), REPO=str(repos / "git"), SINCE=f'"{since}"')
        r = subprocess.run(["runuser", "-u", lab.borg_user, "--", "bash", "-c", server], capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0 and "rolling" in r.stdout, r.stdout + r.stderr
        assert list(repos.glob("git.compromised-*")), "the evidence copy"
        # ... and on each machine that used the repository since: the trusted one, then the VM (rebuilt,
        # its line back on the server)
        client = set_vars(doc_block("# rollback, on each machine"), cd=str(ROOT), SERVICE="git")
        for env_file in (trusted_env, vm_env):
            if env_file == vm_env:
                authorized_keys.add(lines[0])
            r = subprocess.run(["bash", "-ec", client], capture_output=True, text=True, timeout=300,
                               env={**os.environ, "ENV_FILE": str(env_file), "VENV_DIR": sys.prefix})
            assert r.returncode == 0, r.stdout + r.stderr
            assert re.findall(r"^(git-\S+)", r.stdout, re.M) == before, r.stdout  # every archive is back

        # 7. back to normal: released on the trusted machine, which prunes and compacts again
        assert make(trusted_env, "release-prune", "SERVICE_NAME=git").returncode == 0
        r = make(trusted_env, "prune-trusted", f"BORG_RSH={lab.borg_rsh}")
        assert r.returncode == 0 and "git: pruned and compacted: 1 archive(s) kept" in r.stdout, r.stdout + r.stderr
    finally:
        teardown_cycle(cyc)
        shutil.rmtree(repos, ignore_errors=True)
