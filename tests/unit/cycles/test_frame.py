import signal
from types import SimpleNamespace

import pytest

from management.cycles import frame as frame_module
from management.cycles.frame import RunFrame
from management.lock import Interrupted, LockHeld, RunLock
from management.monitoring.publish import BackupOutcome, DrillOutcome, UpdateOutcome
from management.results import RunReport


@pytest.fixture
def seen(monkeypatch):
    seen = []
    monkeypatch.setattr(frame_module, "push", lambda url, event: seen.append(("push", url, event)))
    monkeypatch.setattr(frame_module, "publish", lambda outcome, s, store, mask, echo, now, pool:
                        seen.append(("publish", outcome, now)))
    return seen


def cycle(tmp_path):
    settings = SimpleNamespace(lock_file=tmp_path / "lock", push_url="https://hc/b", update_push_url="https://hc/u")
    return SimpleNamespace(s=settings, state=None, runner=SimpleNamespace(mask=str), echo=print,
                           clock=lambda: 42.0, pool_health=lambda: (None, None))


def test_the_frame_holds_the_lock_and_the_signals_while_the_work_runs(tmp_path, seen):
    before = signal.getsignal(signal.SIGTERM)
    with RunFrame(cycle(tmp_path), "backup") as frame:
        with pytest.raises(LockHeld, match="backup started"), RunLock(tmp_path / "lock", "drill"):
            pass
        assert frame.guard is not None and signal.getsignal(signal.SIGTERM) != before
    assert signal.getsignal(signal.SIGTERM) == before
    with RunLock(tmp_path / "lock", "drill"):  # released
        pass
    with RunFrame(cycle(tmp_path), "check", signals=False) as frame:
        assert frame.guard is None and signal.getsignal(signal.SIGTERM) == before
    assert seen == []  # no ping, no outcome: nothing published


def test_the_start_ping_is_the_outcome_kinds_push_url(tmp_path, seen):
    for kind, url in ((BackupOutcome, "https://hc/b"), (UpdateOutcome, "https://hc/u"), (DrillOutcome, None)):
        with RunFrame(cycle(tmp_path), "x", ping=kind):
            pass
        assert seen.pop() == ("push", url, "start")


def test_the_outcome_handed_in_is_published_on_every_way_out(tmp_path, seen):
    outcome = BackupOutcome(RunReport(started_at=1.0))
    with pytest.raises(RuntimeError), RunFrame(cycle(tmp_path), "backup") as frame:
        frame.done(outcome)
        raise RuntimeError("a bug half-way")
    assert seen == [("publish", outcome, 42.0)]
    with pytest.raises(Interrupted), RunFrame(cycle(tmp_path), "backup") as frame:
        frame.done(outcome, now=7.0)
        raise Interrupted(signal.SIGTERM)
    assert seen[-1] == ("publish", outcome, 7.0)
    with pytest.raises(RuntimeError), RunFrame(cycle(tmp_path), "drill"):
        raise RuntimeError("before the outcome was handed in: nothing to publish")
    assert len(seen) == 2


def test_a_held_lock_publishes_nothing_and_pings_nothing(tmp_path, seen):
    with RunLock(tmp_path / "lock", "backup"), pytest.raises(LockHeld):
        with RunFrame(cycle(tmp_path), "drill", ping=BackupOutcome):
            pass
    assert seen == []
