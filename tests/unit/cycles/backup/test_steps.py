"""Each service's borg step: unchanged, create, the guards, prune and compaction, and their merge."""

from pathlib import Path

from management.results import FAILED, OK
from management.state import PRUNE_HOLDS, MassChange, StateStore
from tests.unit.config.test_load import settings_with
from tests.unit.cycles.backup.world import (
    World,
    kinds,
    mass_world,
    orchestrator,
    run_nights,
)


def test_one_dataset_failing_does_not_stop_the_others(settings):
    world = World()
    world.fail[("create", "git")] = True
    report = orchestrator(settings, world).backup()
    results = {d.service: d.result for d in report.datasets}
    assert results == {"git": FAILED, "photo": OK}
    assert not report.ok and world.snaps == set() and world.views == set()


def test_sigterm_during_borg_removes_views_and_snapshot(settings):
    world = World()
    world.fail[("signal-during-create", "git")] = True
    report = orchestrator(settings, world).backup()
    assert report.interrupted and world.snaps == set() and world.views == set()
    assert world.running == {"git", "photo", "reverseproxy"}


def test_compact_runs_when_due_and_state_is_kept(settings):
    world = World()
    orchestrator(settings, world).backup()
    assert kinds(world, "compact") == ["git", "photo"]
    world.events.clear()
    orchestrator(settings, world).backup()
    assert kinds(world, "compact") == []  # default every 7 days
    assert Path(settings.state_dir / "compact.json").exists()


def test_an_unchanged_dataset_costs_no_borg_and_names_the_archive_that_holds_it(keeping):
    world = World()
    orch, _ = run_nights(keeping, world, 1)
    held = orch.kept()["git"]
    world.events.clear()
    world.written = {"datapool/services/git": 0}
    _, report = run_nights(keeping, world, 1)
    results = {d.service: d for d in report.datasets}
    assert results["git"].result == "unchanged" and results["git"].archive == held.archive
    assert "nothing written since" in results["git"].message
    assert kinds(world, "create") == ["photo"] and report.ok
    assert kinds(world, "view") == ["datapool/orchestrator-views/photo"]  # ZFS alone said so: no clone for git
    assert orch.kept()["git"] == held  # the archive's own snapshot stays, tonight's is gone
    assert not any(s.endswith(report.snapshot.split("@")[1]) and s.startswith("datapool/services/git")
                   for s in world.snaps)


def test_an_unchanged_dataset_whose_archive_is_gone_from_the_repository_is_backed_up_in_full(keeping):
    from management.tools.borg import Listing

    world = World()
    world.written = {"datapool/services/git": 0, "datapool/services/photo": 0}
    orchestrator(keeping, world).backup()
    first = {s: e.archive for s, e in StateStore(keeping.state_dir).kept().items()}
    assert StateStore(keeping.state_dir).kept()["git"].repository == "repo-id-1"
    world.events.clear()
    # git's repository still holds its archive; photo's was replaced by an empty one
    world.listings = {"git": Listing("repo-id-1", (first["git"],)), "photo": Listing("other-id", ())}
    report = orchestrator(keeping, world).backup()
    by = {d.service: d for d in report.datasets}
    assert by["git"].result == "unchanged" and by["git"].archives == 1  # counted from the repository
    assert by["photo"].result == "ok" and "is not the repository that held" in by["photo"].message
    assert kinds(world, "create") == ["photo"]
    world.listings = {"git": Listing("repo-id-1", ()), "photo": Listing("repo-id-1", (first["photo"],))}
    report = orchestrator(keeping, world).backup()
    assert "is not in" in {d.service: d for d in report.datasets}["git"].message


def test_a_held_prune_keeps_every_archive_until_released(keeping):
    world = World()
    orchestrator(keeping, world).backup()
    state = StateStore(keeping.state_dir)
    counts = state.archive_counts()
    counts["photo"].files, counts["photo"].bytes = 1000, 10_000_000  # the night before held far more
    state.save_archive_counts(counts)
    world.events.clear()
    report = orchestrator(keeping, world).backup()
    assert not report.ok and list(report.held) == ["photo"] and "fewer" in report.held["photo"]
    assert kinds(world, "prune") == ["git"]
    world.events.clear()
    again = orchestrator(keeping, world).backup()  # held until a person says otherwise
    assert kinds(world, "prune") == ["git"] and "photo" in again.held
    assert state.release_prune("photo").reason == report.held["photo"]
    world.events.clear()
    assert orchestrator(keeping, world).backup().ok and sorted(kinds(world, "prune")) == ["git", "photo"]


def test_a_hold_file_cut_short_lets_every_prune_wait_with_a_hint_that_works(keeping):
    """A hold it held is unknown: no prune until the file is put back or removed, a WARNING
    (not a hold that release-prune could not find), and removing the file lifts it."""
    world = World()
    orchestrator(keeping, world).backup()
    state = StateStore(keeping.state_dir)
    state.path("prune_holds.json").write_text('{"photo": {"rea')
    world.events.clear()
    report = orchestrator(keeping, world).backup()
    assert kinds(world, "prune") == [] and report.held == {}
    assert all(d.result == "warning" and "prune_holds.json does not parse" in d.message
               for d in report.datasets if d.archive), report.datasets
    assert any("prune_holds.json does not parse: read as empty" in n for n in report.notes)
    state.path("prune_holds.json").unlink()  # the hint, followed
    world.events.clear()
    assert orchestrator(keeping, world).backup().ok and sorted(kinds(world, "prune")) == ["git", "photo"]


def test_a_hold_on_a_replaced_repository_is_dropped_with_a_note_and_a_new_one_records_its_repository(keeping):
    from management.tools.borg import Listing

    world = World()
    state = StateStore(keeping.state_dir)
    orchestrator(keeping, world).backup()
    counts = state.archive_counts()
    counts["photo"].files, counts["photo"].bytes = 1000, 10_000_000
    state.save_archive_counts(counts)
    held = orchestrator(keeping, world).backup()
    assert "photo" in held.held and state.prune_holds()["photo"].repository == "repo-id-1"
    # the hold stays while its repository is the same one, holding its archive
    world.listings = {"photo": Listing("repo-id-1", (state.prune_holds()["photo"].archive,))}
    assert "photo" in orchestrator(keeping, world).backup().held
    # the repository was replaced (a new init): the hold names an archive that is no longer there
    world.listings = {"photo": Listing("new-repo-id", ())}
    world.events.clear()
    report = orchestrator(keeping, world).backup()
    assert "photo" not in report.held and "photo" not in state.prune_holds()
    assert "photo: prune hold dropped: it was set on repository repo-id-1, and the repository is now new-repo-id " \
           "(replaced)" in report.notes
    assert "photo" in kinds(world, "prune")
    # an older hold, without a repository id, whose archive is gone: dropped too
    (keeping.state_dir / PRUNE_HOLDS).write_text('{"photo": {"reason": "x", "since": 1.0, "archive": "photo-gone"}}')
    report = orchestrator(keeping, world).backup()
    assert "photo" not in report.held and any("photo-gone, is no longer in the repository" in n for n in report.notes)


def test_a_repository_nothing_was_pruned_from_yet_is_not_compacted_until_a_prune_removes_one(settings):
    """Its first nights: compact would free nothing. The schedule starts with the first prune
    that removes an archive; where the repository's listing is unknown, it compacts as due."""
    from management.tools.borg import Listing

    world = World()
    world.listings = {"git": Listing("id", ("git-1", "git-2")),
                      "photo": Listing("id", ("photo-1", "photo-2", "photo-3"))}
    orch = orchestrator(settings, world)
    orch.borg.listings = world.listings
    orch.backup()  # git: 3 archives, prune keeps 3 (the fake's): nothing removed; photo: 4 -> 3
    assert kinds(world, "compact") == ["photo"]
    world.events.clear()
    world.listings = {"git": Listing("id", ("git-1", "git-2", "git-3"))}
    orch = orchestrator(settings, world)
    orch.borg.listings = world.listings
    orch.backup()  # git: 4 -> 3, its first removal; photo's listing unknown and not due (7 days)
    assert kinds(world, "compact") == ["git"]


def test_an_append_only_night_never_prunes_or_compacts_and_says_so_once(tmp_path):
    from management.cycles.backup import APPEND_ONLY_NOTE
    from management.tools.borg import Listing

    s = settings_with(tmp_path, f"LOCK_FILE={tmp_path}/lock\nSTATE_DIR={tmp_path}/state\nHUB_SERVICE=reverseproxy\n"
                                "BORG_APPEND_ONLY=1\nBORG_COMPACT_EVERY_DAYS=0\n")
    world = World()
    world.listings = {"git": Listing("id", ("git-1", "git-2")), "photo": Listing("id", ())}
    orch = orchestrator(s, world)
    orch.borg.listings = world.listings
    report = orch.backup()
    assert report.ok and kinds(world, "create") and not kinds(world, "prune") and not kinds(world, "compact")
    assert report.notes.count(APPEND_ONLY_NOTE) == 1
    assert "prune/compact left to the trusted machine" in APPEND_ONLY_NOTE
    archives = {d.service: d.archives for d in report.datasets}
    assert archives["git"] == 3 and archives["photo"] == 1  # counted from the repository: it only grows


def test_a_mass_change_archives_holds_the_prune_keeps_the_snapshot_before_and_is_not_ok(keeping):
    state = StateStore(keeping.state_dir)
    world = mass_world(keeping)
    orch, first = run_nights(keeping, world, 1)
    assert first.ok and state.nights()["photo"][-1].changed.to_json() == {"added": 1000, "modified": 0, "deleted": None,
                                                                   "files": 1000, "bytes": 10}
    before = orch.kept()["photo"]
    world.changes["photo"] = {"nfiles": 1000, "added": 500, "modified": 500}
    world.events.clear()
    _, night = run_nights(keeping, world, 1)
    photo = next(d for d in night.datasets if d.service == "photo")
    assert kinds(world, "create") == ["git", "photo"]  # the night still archives
    assert kinds(world, "prune") == ["git"]  # photo's prune is held
    assert not night.ok and photo.result == "warning" and "mass change: 500 of 1,000 files modified" in photo.message
    assert night.mass_changes["photo"] == MassChange(night.held["photo"], before.archive, before.snapshot)
    hold = state.prune_holds()["photo"]
    assert hold.mass_change.snapshot == before.snapshot and hold.reason.startswith("mass change: ")
    assert f"datapool/services/photo@{before.snapshot}" in world.snaps  # the version before stays
    assert state.nights()["photo"][-1].changed.held is True
    # the next night changes little: still held, the snapshot before still kept (also through a leftover cleanup)
    world.changes["photo"] = {"nfiles": 1000, "added": 0, "modified": 3}
    _, third = run_nights(keeping, world, 1)
    assert "photo" in third.held and not third.mass_changes and not third.ok
    assert f"datapool/services/photo@{before.snapshot}" in world.snaps
    assert state.prune_holds()["photo"].mass_change.snapshot == before.snapshot  # the first one's
    # released: prune again, and the snapshot before goes with the next night's cleanup
    assert state.release_prune("photo")
    world.events.clear()
    _, fourth = run_nights(keeping, world, 1)
    assert fourth.ok and "photo" in kinds(world, "prune")
    assert f"datapool/services/photo@{before.snapshot}" not in world.snaps


def test_a_stack_that_rewrites_on_purpose_declares_its_limit_or_turns_the_guard_off(keeping):
    world = mass_world(keeping)
    world.policies["photo"] = {"mass-change": {"limit": "off", "reason": "re-encodes every night"}}
    run_nights(keeping, world, 1)
    world.changes["photo"] = {"nfiles": 1000, "added": 0, "modified": 1000}
    _, night = run_nights(keeping, world, 1)
    assert night.ok and not night.held
    world.policies["photo"] = {"mass-change": {"limit": 90, "reason": "thumbnails rebuilt"}}
    world.changes["photo"] = {"nfiles": 1000, "added": 0, "modified": 850}
    _, night = run_nights(keeping, world, 1)
    assert night.ok and not night.held
    world.changes["photo"] = {"nfiles": 1000, "added": 0, "modified": 950}
    _, night = run_nights(keeping, world, 1)
    assert "photo" in night.mass_changes and "declared limit 90%: thumbnails rebuilt" in night.held["photo"]
    # a declaration with a problem is noted, and the default applies
    StateStore(keeping.state_dir).release_prune("photo")
    world.policies["photo"] = {"mass-change": {"limit": "sometimes"}}
    world.changes["photo"] = {"nfiles": 1000, "added": 0, "modified": 600}
    _, night = run_nights(keeping, world, 1)
    assert "photo" in night.mass_changes
    assert any("mass-change.limit: 'sometimes'" in n and "CHANGE_GUARD_PERCENT applies" in n for n in night.notes)


def test_the_notification_gives_the_counts_and_the_commands_that_bring_the_version_before_back(keeping):
    from management.monitoring.notify import backup_message

    world = mass_world(keeping)
    orch, _ = run_nights(keeping, world, 1)
    before = orch.kept()["photo"]
    world.changes["photo"] = {"nfiles": 1000, "added": 500, "modified": 500}
    _, night = run_nights(keeping, world, 1)
    message = backup_message(night)
    assert not message.ok and "photo: mass change" in message.title
    assert "mass change: photo: 500 of 1,000 files modified, 500 deleted, 500 added" in message.body
    assert f"make restore SERVICE_NAME=photo ARCHIVE_NAME={before.archive}" in message.body
    assert f"make restore-path SERVICE_NAME=photo FILE=<path> WHEN={before.snapshot}" in message.body


def test_what_finished_before_a_sigterm_in_the_borg_phase_is_merged_and_recorded(keeping):
    world = World()
    world.fail[("signal-during-create", "photo")] = True  # git's step has finished by then (BORG_PARALLEL=1)
    report = orchestrator(keeping, world).backup()
    assert report.interrupted == "interrupted by SIGTERM"
    git = next(d for d in report.datasets if d.service == "git")
    assert (git.result, git.archive, git.pruned) == ("ok", "git-x", True)
    assert "git" in StateStore(keeping.state_dir).kept()  # its snapshot is the kept one: its step's record merged
    assert world.views == set() and world.running == {"git", "photo", "reverseproxy"}


def test_the_night_after_a_restore_is_not_weighed_by_the_guard_and_says_why(keeping):
    """A restore gives every file it brings back a new inode and ctime: borg lists them all as
    modified (63 of 63 in the lab). The night after a restore-safety snapshot newer than the last
    night is not weighed; one made before the last night does not spare the next."""
    state = StateStore(keeping.state_dir)
    world = mass_world(keeping)
    run_nights(keeping, world, 1)
    last_night = state.nights()["photo"][-1].time
    world.snaps.add("datapool/services/photo@restore-safety-20261105T120000Z")
    world.created["datapool/services/photo@restore-safety-20261105T120000Z"] = int(last_night) + 3600
    world.changes["photo"] = {"nfiles": 1000, "added": 0, "modified": 1000}
    _, night = run_nights(keeping, world, 1)
    photo = next(d for d in night.datasets if d.service == "photo")
    assert night.ok and not night.held and not night.mass_changes, night
    assert "not weighed by the mass-change guard: restored since the last night " \
           "(restore-safety-20261105T120000Z)" in photo.message and "1,000 of 1,000 files modified" in photo.message
    changed = state.nights()["photo"][-1].changed
    assert not changed.held and changed.restored and "held" not in changed.to_json()
    from management.cycles.backup import change_baseline
    assert change_baseline(state.nights()["photo"])[1] == [0]  # the restore's 1,000 do not raise the bar
    # the same rewrite a night later, with no restore since: held
    _, after = run_nights(keeping, world, 1)
    assert "photo" in after.mass_changes and not after.ok


def test_on_zfs_fuse_a_view_is_walked_once_a_night_and_the_walk_that_found_a_change_is_recorded(keeping,
                                                                                                 monkeypatch):
    """No `written@` (zfs-fuse): the skip-unchanged check walks the view; on a changed night that
    same digest becomes the kept one (a second walk of 200,000 files would cost as much again)."""
    from management.cycles.backup import steps

    walks: list[str] = []
    digest = {"git": "one", "photo": "one"}

    def fake_manifest(root, taken_at, skip_top=frozenset()):
        walks.append(Path(root).name)
        return digest[Path(root).name], True

    monkeypatch.setattr(steps, "tree_manifest", fake_manifest)
    world = World()
    world.written = {"datapool/services/git": None, "datapool/services/photo": None}  # zfs-fuse
    orch, _ = run_nights(keeping, world, 1)
    assert sorted(walks) == ["git", "photo"] and orch.kept()["git"].manifest == "one"
    walks.clear()
    digest["git"] = "two"  # git changed, photo did not
    _, report = run_nights(keeping, world, 1)
    results = {d.service: d.result for d in report.datasets}
    assert results == {"git": OK, "photo": "unchanged"}
    assert sorted(walks) == ["git", "photo"]  # once each, not twice for git
    assert orch.kept()["git"].manifest == "two"
