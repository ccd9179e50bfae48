import dataclasses

import pytest

from management.cycles.context import RunContext
from management.state import StateStore
from tests.fakes import FakeRunner
from tests.unit.config.test_load import settings_with


@pytest.fixture
def keeping(tmp_path):
    return settings_with(tmp_path, f"LOCK_FILE={tmp_path}/lock\nSTATE_DIR={tmp_path}/state\nHUB_SERVICE=reverseproxy\n"
                                   "SNAPSHOT_RETENTION=off\n")


class Repos:
    """A fake borg for the trusted machine: archives per service with their stats."""

    def __init__(self, archives):
        self.archives = {svc: list(names) for svc, names in archives.items()}
        self.stats = {}  # archive -> (nfiles, size)
        self.events = []

    def list_archives(self, service):
        return [{"name": n} for n in self.archives[service]]

    def last_archives(self, service, last=2):
        stats = [(n, *self.stats.get(n, (10, 1000))) for n in self.archives[service][-last:]]
        return [{"name": n, "nfiles": files, "original_size": size} for n, files, size in stats]

    def prune(self, service):
        self.events.append(("prune", service))
        self.archives[service] = self.archives[service][-2:]  # the retention keeps two
        return 2

    def compact(self, service):
        self.events.append(("compact", service))


def trusted(settings, repos):
    from management.cycles.prune import TrustedPrune

    return TrustedPrune(RunContext(settings, FakeRunner(), None, None, repos, echo=lambda _: None))


def test_the_trusted_machine_prunes_and_compacts_and_holds_when_archives_vanished(keeping):
    repos = Repos({"git": ["git-1", "git-2", "git-3"], "photo": ["photo-1", "photo-2", "photo-3"]})
    report = trusted(keeping, repos).run(["git", "photo"])
    assert report.ok
    assert repos.events == [("prune", "git"), ("compact", "git"), ("prune", "photo"), ("compact", "photo")]
    assert StateStore(keeping.state_dir).trusted_kept() == {"git": ["git-2", "git-3"], "photo": ["photo-2", "photo-3"]}
    # the VM's key deleted photo's history (append-only: still recoverable until a compact)
    repos.archives["photo"] = ["photo-4"]
    repos.archives["git"].append("git-4")
    repos.events.clear()
    report = trusted(keeping, repos).run(["git", "photo"])
    assert not report.ok and list(report.held) == ["photo"] and "2 archive(s) the last trusted prune kept are gone" \
        in report.held["photo"]
    assert ("prune", "photo") not in repos.events and ("compact", "photo") not in repos.events
    assert ("prune", "git") in repos.events
    repos.events.clear()
    assert "photo" in trusted(keeping, repos).run(["photo"]).held and repos.events == []  # held until released
    StateStore(keeping.state_dir).release_prune("photo")  # the loss was meant (or rolled back and accepted)
    assert trusted(keeping, repos).run(["photo"]).ok and ("compact", "photo") in repos.events


def test_the_trusted_prune_keeps_the_prune_guard(keeping, monkeypatch):
    from management.monitoring import notify

    sent = []
    monkeypatch.setattr(notify, "send", lambda urls, message, mask: sent.append(message))
    repos = Repos({"git": ["git-1", "git-2"]})
    repos.stats = {"git-1": (1000, 10_000_000), "git-2": (0, 0)}  # emptied
    orch = trusted(keeping, repos)
    orch.s = dataclasses.replace(orch.s, notify_urls=("json://localhost/x",))
    report = orch.run(["git"])
    assert "git" in report.held and "empty" in report.held["git"] and repos.events == []
    assert StateStore(keeping.state_dir).prune_holds()["git"].reason == report.held["git"]
    [message] = sent  # the trusted machine says it loudly, as the night does
    assert not message.ok and "1 held" in message.title and "prune held: git:" in message.body


def test_the_trusted_prune_compares_every_night_it_missed(keeping):
    repos = Repos({"git": ["git-1", "git-2"]})
    assert trusted(keeping, repos).run(["git"]).ok  # keeps git-1, git-2
    repos.archives["git"] += ["git-3", "git-4", "git-5"]  # three nights while the trusted machine was off
    repos.stats = {"git-3": (0, 0), "git-4": (0, 0), "git-5": (0, 0)}  # emptied on the first of them
    repos.events.clear()
    report = trusted(keeping, repos).run(["git"])
    assert "git-3 is empty" in report.held["git"] and repos.events == []


# -- what changed each night, and the mass-change guard -------------------------------------------
