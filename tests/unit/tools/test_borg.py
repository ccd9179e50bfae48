"""Borg argv builders, retention, the manager's environment (secrets never in argv), and the
cron/logrotate rendering."""

from __future__ import annotations

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
    prune_argv,
    retention_args,
)
from management.tools.trees import (
    copy_tree_argv,
)
from tests.fakes import FakeRunner
from tests.unit.test_config import settings_with


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


def test_argv_for_the_archive_layout():
    assert copy_tree_argv(Path("/srv/git"), Path("/v/git/.orchestrator-stack")) == \
        ["cp", "-a", "--", "/srv/git/.", "/v/git/.orchestrator-stack"]
    assert extract_argv("/r/git", "git-1", (STACK_PREFIX,)) == \
        ["borg", "extract", "--numeric-ids", "/r/git::git-1", STACK_PREFIX]
    assert extract_argv("/r/git", "git-1", excludes=(STACK_PREFIX,)) == \
        ["borg", "extract", "--numeric-ids", f"--exclude=pp:{STACK_PREFIX}", "/r/git::git-1"]



def test_latest_archive_is_the_services_own_newest():
    archives = [{"name": "git-2026-01-02T03:30:00Z", "time": "2026-01-02T03:30:01"},
                {"name": "git-2026-01-03T03:30:00Z", "time": "2026-01-03T03:30:01"},
                {"name": "gitea-2026-01-04T03:30:00Z", "time": "2026-01-04T03:30:01"}]
    assert latest_archive(archives, "git") == "git-2026-01-03T03:30:00Z"
    assert latest_archive([], "git") is None
