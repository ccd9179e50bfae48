"""BorgBackupRepoManager against real borg: local and ssh repositories (sshd on loopback with a
key restricted to `borg serve`), key export, create/prune/list/extract/check, passphrase only
in the environment."""

from __future__ import annotations

import os
import stat

import pytest

from management.config import load_settings
from management.errors import CommandError, ValidationError
from management.runner import Runner
from management.tools.borg import BorgBackupRepoManager
from tests.lab.envfile import LAB_PASSPHRASE, run_cli, write_lab_env

pytestmark = pytest.mark.lab


def _manager(env_path, clock=None):
    settings, _ = load_settings(env_path)
    runner = Runner(secrets=settings.secrets, default_timeout=300)
    return BorgBackupRepoManager(settings, runner, **({"clock": clock} if clock else {})), settings


@pytest.mark.parametrize("where", ["local", "ssh"])
def test_init_create_prune_list_extract_check(lab, tmp_path, where):
    repo_base = str(tmp_path / "repos") if where == "local" else lab.ssh_repo_base(lab.unique("b"))
    env_path, _ = write_lab_env(tmp_path, lab, ["app/data:REMAPPED_APP_UID"], repo_base=repo_base,
                                extra={"BORG_RETENTION": "daily=1"})
    ticks = iter([1_800_000_000 + i * 60 for i in range(100)])
    borg, settings = _manager(env_path, clock=lambda: next(ticks))

    assert borg.init_repo("app") is True
    assert borg.init_repo("app") is False  # idempotent
    key = settings.borg_keys_dir / "app.key"
    assert key.read_text().startswith("BORG_KEY") and stat.S_IMODE(key.stat().st_mode) == 0o600

    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "a.txt").write_text("alpha")
    (src / "b.bin").write_bytes(os.urandom(4096))
    first = borg.create("app", src)
    assert first.archive.startswith("app-") and first.nfiles == 2 and first.original_size >= 4096
    (src / "c.txt").write_text("gamma")
    second = borg.create("app", src)
    assert second.nfiles == 3

    names = [a["name"] for a in borg.list_archives("app")]
    assert names == [first.archive, second.archive]
    # what the repository holds, as the manager keeps it without asking borg again (from the
    # listing on init, create's archives and prune's kept list), and its files' fingerprint:
    # local only; reading leaves it, every commit moves it
    assert borg.listings["app"].archives == (first.archive, second.archive)
    before = borg.fingerprint("app")
    assert (before is None) == (where == "ssh")
    borg.prune("app")  # daily=1: the two archives are on the same day, the newer one stays
    assert [a["name"] for a in borg.list_archives("app")] == [second.archive]
    assert borg.listings["app"].archives == (second.archive,)
    pruned = borg.fingerprint("app")
    borg.compact("app")
    borg.check("app")
    if where == "local":
        assert pruned != before and borg.fingerprint("app") != pruned
        read = borg.fingerprint("app")
        borg.list_archives("app")
        borg.check("app")
        assert borg.fingerprint("app") == read

    dest = tmp_path / "restored"
    borg.extract("app", second.archive, dest)
    assert (dest / "sub" / "a.txt").read_text() == "alpha" and (dest / "c.txt").read_text() == "gamma"
    with pytest.raises(ValidationError, match="not empty"):
        borg.extract("app", second.archive, dest)


def test_wrong_passphrase_fails_clearly_and_is_never_printed(lab, tmp_path):
    env_path, _ = write_lab_env(tmp_path, lab, ["app/data:REMAPPED_APP_UID"])
    borg, _ = _manager(env_path)
    borg.init_repo("app")
    wrong = "wrong-passphrase-" + "x" * 8
    env2, _ = write_lab_env(tmp_path, lab, ["app/data:REMAPPED_APP_UID"], extra={"BORG_PASSPHRASE": wrong})
    borg2, _ = _manager(env2)
    with pytest.raises(CommandError) as info:
        borg2.is_initialised("app")
    assert "passphrase" in str(info.value).lower() and wrong not in str(info.value)
    r = run_cli(env2, "check-repos")
    assert r.returncode == 1 and wrong not in r.stdout + r.stderr and LAB_PASSPHRASE not in r.stdout + r.stderr


def test_init_repos_cli_and_a_repository_outside_the_restricted_path(lab, tmp_path):
    ok_base = lab.ssh_repo_base(lab.unique("c"))
    env_path, _ = write_lab_env(tmp_path, lab, ["app/data:REMAPPED_APP_UID", "web/x:REMAPPED_ROOT_UID"],
                                repo_base=ok_base)
    r = run_cli(env_path, "init-repos")
    assert r.returncode == 0, r.stderr
    assert "app: initialised" in r.stdout and "web: initialised" in r.stdout
    again = run_cli(env_path, "init-repos")
    assert again.stdout.count("already initialised") == 2
    bad_base = f"ssh://{lab.borg_user}@127.0.0.1:{lab.ssh_port}/tmp/{lab.unique('escape')}"
    env_bad, _ = write_lab_env(tmp_path, lab, ["app/data:REMAPPED_APP_UID"], repo_base=bad_base)
    bad = run_cli(env_bad, "init-repos")
    assert bad.returncode == 1 and "not allowed" in bad.stderr
