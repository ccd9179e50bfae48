"""Borg argv builders, retention, the manager's environment (secrets never in argv), and the
cron/logrotate rendering."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from management.errors import ValidationError
from management.tools.borg import (
    STACK_PREFIX,
    BorgBackupRepoManager,
    archive_name,
    create_argv,
    extract_argv,
    init_argv,
    latest_archive,
    list_path_argv,
    mount_argv,
    prune_argv,
    retention_args,
    umount_argv,
)
from tests.fakes import FakeRunner
from tests.unit.config.test_load import BASE, settings_with


@pytest.fixture
def settings(tmp_path):
    return settings_with(tmp_path, f"BORG_BASE_DIR={tmp_path}/borgbase\nBORG_KEYS_DIR={tmp_path}/keys\n")



def test_argv_builders():
    assert init_argv("/r/git") == ["borg", "init", "--encryption=repokey-blake2", "--make-parent-dirs", "/r/git"]
    argv = create_argv("/r/git", "git-2026-01-01T00:00:00Z", compression="zstd,3", excludes=Path("/x/ex.txt"))
    assert argv[-2:] == ["/r/git::git-2026-01-01T00:00:00Z", "."]
    assert "--compression=zstd,3" in argv and "--exclude-from=/x/ex.txt" in argv and "--json" in argv
    assert extract_argv("/r/git", "git-1") == ["borg", "extract", "--numeric-ids", "/r/git::git-1"]
    assert archive_name("git", 0) == "git-1970-01-01T00:00:00Z"



def test_retention_and_prune_only_touch_the_services_archives():
    assert retention_args({"daily": "7", "weekly": "4", "monthly": "0", "within": "2d"}) == [
        "--keep-within=2d", "--keep-daily=7", "--keep-weekly=4"]
    argv = prune_argv("/r/git", "git", {"daily": "365"})
    assert "--glob-archives=git-*" in argv and "--keep-daily=365" in argv
    with pytest.raises(ValidationError, match="keeps nothing"):
        prune_argv("/r/git", "git", {"daily": "0"})



@pytest.mark.parametrize("bad", ["../x", "a b", "x;id", "$(id)", ""])
def test_bad_archive_or_service_names_are_rejected(bad):
    with pytest.raises(ValidationError):
        extract_argv("/r/git", bad)



def test_passphrase_goes_to_the_environment_never_argv(settings):
    fake = FakeRunner({("borg", "info"): "{}"}, secrets=settings.secrets)
    borg = BorgBackupRepoManager(settings, fake)
    assert borg.init_repo("git") is False
    call = fake.calls[0]
    assert call.env["BORG_PASSPHRASE"] == settings.borg_passphrase
    assert all(settings.borg_passphrase not in a for a in call.argv)
    assert call.env["BORG_BASE_DIR"] == str(settings.borg_base_dir)
    assert call.mutating is False



def test_create_parses_stats_and_counts_files_read(settings, tmp_path):
    from management.runner import Result

    out = '{"archive": {"stats": {"nfiles": 5, "original_size": 1000, "deduplicated_size": 10}}}'
    stderr = "\n".join([
        '{"type": "file_status", "status": "A", "path": "a"}',
        '{"original_size": 4096, "nfiles": 1, "path": "a", "type": "archive_progress", "finished": false}',
        '{"type": "file_status", "status": "M", "path": "b"}',
        '{"message": "Initializing cache transaction", "type": "progress_message", "finished": false}',
        '{"type": "log_message", "levelname": "WARNING", "message": "b: file changed while we backed it up"}',
        '{"time": 1.0, "type": "archive_progress", "finished": true}',
    ])
    fake = FakeRunner({("borg", "create"): Result(("borg",), 1, out, stderr)})
    seen = []
    created = BorgBackupRepoManager(settings, fake, clock=lambda: 0).create("git", tmp_path,
                                                                            progress=lambda *a: seen.append(a))
    assert (created.nfiles, created.original_size, created.deduplicated_size, created.files_read) == (5, 1000, 10, 2)
    assert created.warning == "borg warning: b: file changed while we backed it up"
    assert seen == [(4096, None, 1, "a")]  # the final event is not progress
    assert fake.calls[0].cwd == str(tmp_path)



def test_prune_reports_how_many_archives_it_keeps(settings):
    from management.runner import Result

    stderr = ("Keeping archive (rule: daily #1):        git-2026-11-24T03:30:00Z    Tue, 2026-11-24 03:30:01 [ab]\n"
              "Keeping archive (rule: daily #2):        git-2026-11-23T03:30:00Z    Mon, 2026-11-23 03:30:01 [cd]\n"
              "Pruning archive (1/1):                   git-2026-11-01T03:30:00Z    Sun, 2026-11-01 03:30:01 [ef]\n")
    fake = FakeRunner({("borg", "prune"): Result(("borg",), 0, "", stderr)})
    assert BorgBackupRepoManager(settings, fake).prune("git") == 2


def test_create_and_prune_keep_the_listing_as_they_leave_the_repository(settings, tmp_path):
    """What the repository holds after tonight, without another `borg list`: create adds its
    archive, prune leaves the others' archives and the ones it names as kept."""
    from management.runner import Result
    from management.tools.borg import Listing, kept_by_prune

    stderr = ("Keeping archive (rule: daily #1):        git-2026-11-24T03:30:00Z    Tue, 2026-11-24 03:30:01 [ab]\n"
              "Pruning archive (1/1):                   git-2026-11-01T03:30:00Z    Sun, 2026-11-01 03:30:01 [ef]\n")
    assert kept_by_prune(stderr) == ("git-2026-11-24T03:30:00Z",)
    assert kept_by_prune("Keeping archive: git-1 Mon\n") == ("git-1",)  # borg 1.1's form
    assert kept_by_prune("Keeping archive, but no name\n") is None  # not read: nothing assumed
    created = '{"archive": {"stats": {}}, "repository": {"id": "rid"}}'
    fake = FakeRunner({("borg", "create"): Result(("borg",), 0, created, ""),
                       ("borg", "prune"): Result(("borg",), 0, "", stderr)})
    borg = BorgBackupRepoManager(settings, fake, clock=lambda: 1795000000.0)
    borg.listings["git"] = Listing("rid", ("git-2026-11-01T03:30:00Z", "manual-1"))
    archive = borg.create("git", tmp_path).archive
    assert borg.listings["git"].archives == ("git-2026-11-01T03:30:00Z", "manual-1", archive)
    borg.prune("git")
    assert borg.listings["git"] == Listing("rid", ("manual-1", "git-2026-11-24T03:30:00Z"))
    fake = FakeRunner({("borg", "prune"): Result(("borg",), 0, "", "Keeping archive, unreadable\n")})
    borg = BorgBackupRepoManager(settings, fake)
    borg.listings["git"] = Listing("rid", ())
    borg.prune("git")
    assert "git" not in borg.listings  # unknown now: the next run asks borg


def test_a_local_repositorys_fingerprint_changes_with_every_commit_and_is_none_where_unknown(tmp_path):
    from management.tools.borg import local_fingerprint

    repo = tmp_path / "git"
    repo.mkdir()
    (repo / "config").write_text("[repository]\nversion = 1\nid = 00ab\n")
    (repo / "index.12").write_bytes(b"")
    assert local_fingerprint(str(repo)) == "00ab:12"
    (repo / "index.12").rename(repo / "index.15")  # a commit: create, prune, delete, compact
    assert local_fingerprint(str(repo)) == "00ab:15"
    (repo / "config").write_text("[repository]\nversion = 1\nid = 77cd\n")  # another repository in its place
    assert local_fingerprint(str(repo)) == "77cd:15"
    (repo / "index.16").write_bytes(b"")  # mid-commit: two indexes
    assert local_fingerprint(str(repo)) is None
    (repo / "index.15").unlink()
    (repo / "lock.exclusive").mkdir()  # being written
    assert local_fingerprint(str(repo)) is None
    assert local_fingerprint(str(tmp_path / "missing")) is None
    assert local_fingerprint("ssh://borg@host:22/srv/git") is None
    assert local_fingerprint("borg@host:/srv/git") is None


def test_argv_for_the_archive_layout():
    assert extract_argv("/r/git", "git-1", (STACK_PREFIX,)) == \
        ["borg", "extract", "--numeric-ids", "/r/git::git-1", f"pp:{STACK_PREFIX}"]
    assert extract_argv("/r/git", "git-1", excludes=(STACK_PREFIX,)) == \
        ["borg", "extract", "--numeric-ids", f"--exclude=pp:{STACK_PREFIX}", "/r/git::git-1"]



def test_latest_archive_is_the_services_own_newest():
    archives = [{"name": "git-2026-01-02T03:30:00Z", "time": "2026-01-02T03:30:01"},
                {"name": "git-2026-01-03T03:30:00Z", "time": "2026-01-03T03:30:01"},
                {"name": "gitea-2026-01-04T03:30:00Z", "time": "2026-01-04T03:30:01"}]
    assert latest_archive(archives, "git") == "git-2026-01-03T03:30:00Z"
    assert latest_archive([], "git") is None


# --- the backup server's authorized_keys (docs/security.md) -------------------------------------

VM_PUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0b3Rz vm@host\n"
FULL_PUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFVsbA== admin@pc\n"


@pytest.mark.parametrize("base, path", [
    ("ssh://borg@backup:22/./repos", "repos"),
    ("ssh://borg@backup/~/repos/", "repos"),
    ("ssh://borg@10.0.0.2:2222/srv/borg", "/srv/borg"),
])
def test_the_served_path_is_what_borg_serve_resolves(base, path):
    from management.tools.borg import served_path

    assert served_path(base) == path


@pytest.mark.parametrize("base, why", [
    ("/srv/local/repos", "needs the repositories on another machine"),
    ("ssh://borg@backup/~other/repos", "/~user/ paths are not supported"),
    ("ssh://borg@backup/srv/my repos", "cannot carry safely"),
    ('ssh://borg@backup/srv/"x', "cannot carry safely"),
])
def test_a_base_path_no_authorized_keys_line_can_carry_is_refused(base, why):
    from management.tools.borg import served_path

    with pytest.raises(ValidationError, match=why):
        served_path(base)


def test_the_line_allows_only_borg_serve_append_only_on_each_repository():
    from management.tools.borg import authorized_keys_line, public_key

    line = authorized_keys_line(["repos/git", "repos/photo"], public_key(VM_PUB, "k"), append_only=True,
                                comment="orchestrator-vm")
    assert line == ('command="borg serve --append-only --restrict-to-path repos/git --restrict-to-path repos/photo",'
                    'restrict ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0b3Rz orchestrator-vm')
    full = authorized_keys_line(["repos"], public_key(FULL_PUB, "k"), append_only=False, comment="c")
    assert full.startswith('command="borg serve --restrict-to-path repos",restrict ssh-ed25519 ')


def test_a_private_key_is_refused_without_a_byte_of_it_in_the_message():
    from management.tools.borg import public_key

    secret = ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n"
              "-----END OPENSSH PRIVATE KEY-----\n")
    with pytest.raises(ValidationError) as exc:
        public_key(secret, "/root/.ssh/id_borg")
    assert "private key" in str(exc.value) and "b3BlbnNz" not in str(exc.value)
    with pytest.raises(ValidationError, match="not one OpenSSH public key"):
        public_key("hello world\n", "f")


@pytest.mark.parametrize("rsh, key", [
    ("ssh -i /root/.ssh/id_borg -o BatchMode=yes", "/root/.ssh/id_borg"),
    ("ssh -i/k/a -p 22", "/k/a"),
    ("ssh -o IdentityFile=/k/b", "/k/b"),
    ("ssh -oIdentityFile=/k/c", "/k/c"),
    ("ssh -o BatchMode=yes", None),
    ("", None),
])
def test_the_key_file_is_read_from_borg_rsh(rsh, key):
    from management.tools.borg import identity_file

    assert identity_file(rsh) == (Path(key) if key else None)


def test_the_lines_come_from_the_settings_and_read_only_public_keys(tmp_path):
    from management.tools.borg import authorized_keys_lines

    (tmp_path / "id_vm").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nnever-read\n")
    (tmp_path / "id_vm.pub").write_text(VM_PUB)
    (tmp_path / "full.pub").write_text(FULL_PUB)
    ssh_base = BASE.replace("BORG_REPO_BASE_PATH=/backup/repos", "BORG_REPO_BASE_PATH=ssh://borg@backup:22/./repos")
    s = settings_with(tmp_path, f"BORG_RSH=ssh -i {tmp_path}/id_vm -o BatchMode=yes\n", base=ssh_base)
    lines = authorized_keys_lines(s, trusted_key=tmp_path / "full.pub")
    keys = [ln for ln in lines if not ln.startswith("#")]
    assert len(keys) == 2 and "never-read" not in "\n".join(lines)
    assert keys[0].startswith('command="borg serve --append-only ' + " ".join(
        f"--restrict-to-path repos/{svc}" for svc in s.services) + '",restrict ssh-ed25519 ')
    assert keys[1].startswith('command="borg serve --restrict-to-path repos",restrict ') and "IFVsbA==" in keys[1]
    no_key = settings_with(tmp_path, "BORG_RSH=ssh\n", base=ssh_base)
    with pytest.raises(ValidationError, match="BORG_RSH names no key file"):
        authorized_keys_lines(no_key)
    with pytest.raises(ValidationError, match="cannot read"):
        authorized_keys_lines(no_key, vm_key=tmp_path / "missing.pub")


def test_last_archives_reads_borgs_stored_stats(settings):
    import json

    out = {"archives": [{"name": "git-1", "stats": {"nfiles": 3, "original_size": 30}},
                        {"name": "git-2", "stats": {"nfiles": 1, "original_size": 10}}]}
    runner = FakeRunner({("borg", "info"): json.dumps(out)})
    assert BorgBackupRepoManager(settings, runner).last_archives("git", 2) == [
        {"name": "git-1", "nfiles": 3, "original_size": 30}, {"name": "git-2", "nfiles": 1, "original_size": 10}]
    assert runner.argvs[0] == ("borg", "info", "--json", "--glob-archives=git-*", "--last=2", "/backup/repos/git")
    assert not runner.calls[0].mutating


def test_forget_cache_drops_the_cache_and_only_this_repositorys_manifest_time(settings):
    runner = FakeRunner()
    borg = BorgBackupRepoManager(settings, runner)
    security = Path(settings.borg_base_dir) / ".config" / "borg" / "security"
    for rid, repo in (("aa", "/backup/repos/git"), ("bb", "/backup/repos/photo")):
        (security / rid).mkdir(parents=True)
        (security / rid / "location").write_text(repo + "\n")
        (security / rid / "manifest-timestamp").write_text("2026-12-01T00:00:00")
    assert borg.forget_cache("git") == [security / "aa" / "manifest-timestamp"]
    assert runner.argvs == [("borg", "delete", "--cache-only", "/backup/repos/git")]
    assert (security / "bb" / "manifest-timestamp").exists()


def test_one_path_of_an_archive_is_named_as_a_path_never_a_pattern():
    # `pp:` whatever the name holds: `re:x`, `*`, a space or a newline stay literal
    assert list_path_argv("/r/photo", "photo-1", "a b/re:x*") == \
        ["borg", "list", "--json-lines", "/r/photo::photo-1", "pp:a b/re:x*"]
    assert extract_argv("/r/photo", "photo-1", ("lib/2024",), sparse=True) == \
        ["borg", "extract", "--numeric-ids", "--sparse", "/r/photo::photo-1", "pp:lib/2024"]
    with pytest.raises(ValidationError):
        list_path_argv("/r/photo", "photo-1; rm -rf /", "x")


def test_mount_is_read_only_the_repository_or_one_archive():
    assert mount_argv("ssh://b@h/r/photo", Path("/mnt/o/photo")) == \
        ["borg", "mount", "-o", "ro", "ssh://b@h/r/photo", "/mnt/o/photo"]
    assert mount_argv("/r/photo", Path("/mnt/o/photo"), "photo-1")[-2:] == ["/r/photo::photo-1", "/mnt/o/photo"]
    assert umount_argv(Path("/mnt/o/photo")) == ["borg", "umount", "/mnt/o/photo"]


def test_create_counts_the_datas_added_and_modified_files_without_the_stack_folders_copy(settings, tmp_path):
    from management.runner import Result

    out = '{"archive": {"stats": {"nfiles": 6, "original_size": 1000, "deduplicated_size": 10}}}'
    stderr = "\n".join(json.dumps({"type": "file_status", "status": status, "path": path}) for status, path in [
        ("A", "photos/new.jpg"), ("M", "photos/a.jpg"), ("M", "./photos/b.jpg"), ("E", "photos/unreadable"),
        ("M", ".orchestrator-stack/compose.yaml"), ("A", ".orchestrator-stack/.env"),
        ("M", ".orchestrator-stackish/x")])
    fake = FakeRunner({("borg", "create"): Result(("borg",), 0, out, stderr)})
    created = BorgBackupRepoManager(settings, fake, clock=lambda: 0).create("git", tmp_path)
    assert (created.files_read, created.added, created.modified) == (7, 1, 3)


def test_the_archive_this_machine_made_last_wins_over_one_dated_later():
    """Chaos campaign, seed 37: a night made with the clock 3 days ahead is dated after every
    real night since; by date alone, drill and restore-all took it, older data."""
    archives = [{"name": "git-2026-12-10T03:30:00Z", "time": "2026-12-10T03:30:00"},  # the clock ran ahead
                {"name": "git-2026-12-08T03:30:00Z", "time": "2026-12-08T03:30:00"}]  # made after it
    assert latest_archive(archives, "git", "git-2026-12-08T03:30:00Z") == "git-2026-12-08T03:30:00Z"
    assert latest_archive(archives, "git") == "git-2026-12-10T03:30:00Z"  # no record (a new machine): the date
    assert latest_archive(archives, "git", "git-gone") == "git-2026-12-10T03:30:00Z"  # pruned since
