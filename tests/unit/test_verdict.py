from management.state import CheckRecord, DrillRecord, MassChange, PruneHold
from management.verdict import AT_RISK, PROTECTED, reasons, verdict

NOW = 2_000_000_000.0
GOOD = dict(now=NOW, stale_after_hours=36, uncovered=0, last_backup=NOW - 3600, drill=DrillRecord(NOW - 3600, True),
            check=CheckRecord(NOW - 86400, True), repo="ssh://b@host/repos/git", pool_health="ONLINE",
            prune_held=None)


def test_a_service_with_everything_in_order_is_protected():
    assert reasons(**GOOD) == [] and verdict([]) == PROTECTED


def test_every_reason_is_named():
    bad = dict(GOOD, uncovered=2, last_backup=NOW - 40 * 3600, drill=DrillRecord(NOW, False),
               check=CheckRecord(NOW - 40 * 86400, True), repo="/srv/borg/git", pool_health="DEGRADED",
               prune_held=PruneHold("x"))
    why = reasons(**bad)
    assert why == ["2 mount(s) no backup reaches", "no good backup within 36h", "its last restore drill failed",
                   "its repository was last checked over 35 days ago", "its repository is on this machine",
                   "the pool is DEGRADED", "its prune is held"]
    assert verdict(why) == AT_RISK


def test_never_and_unknown():
    why = reasons(**dict(GOOD, last_backup=None, drill=None, check=None, pool_health=None))
    assert why == ["never backed up", "never drilled", "its repository was never checked"]


def test_every_reason_has_a_stable_code_in_the_declared_order():
    from management.verdict import RISK_CODES, risks
    worst = dict(GOOD, uncovered=1, last_backup=None, drill=None, check=None, repo="/srv", pool_health="FAULTED",
                 prune_held=PruneHold("x"))
    codes = [c for c, _ in risks(**worst)]
    assert codes == ["uncovered", "never_backed_up", "never_drilled", "never_checked", "repo_local", "pool",
                     "prune_held"]
    assert all(c in RISK_CODES for c in codes) and len(set(RISK_CODES)) == len(RISK_CODES)
    assert [c for c, _ in risks(**GOOD)] == []


def test_a_pool_without_redundancy_is_a_reason_and_unknown_is_not():
    assert reasons(**dict(GOOD, pool_redundant=False)) == [
        "the pool has no redundancy (one disk: corruption is found, not repaired)"]
    assert reasons(**dict(GOOD, pool_redundant=None)) == reasons(**dict(GOOD, pool_redundant=True)) == []


def test_a_mass_change_is_named_with_its_counts_beside_the_held_prune():
    from management.verdict import risks

    hold = PruneHold("mass change: 4,812 of 5,000 files modified (over 50% of its files)",
                     mass_change=MassChange("mass change: 4,812 of 5,000 files modified (over 50% of its files)",
                                            "photo-a", "orchestrator-a"))
    assert risks(**dict(GOOD, prune_held=hold)) == [
        ("mass_change", "mass change: 4,812 of 5,000 files modified (over 50% of its files)"),
        ("prune_held", "its prune is held")]


def test_the_pool_is_read_once_one_way_and_unknown_when_zpool_does_not_say():
    from types import SimpleNamespace

    from management.errors import OrchestratorError
    from management.verdict import pool_says, read_pool

    asked = []

    class Zfs:
        def pool_status(self, pool):
            asked.append(pool)
            return SimpleNamespace(state="DEGRADED", redundant=True)

    class Broken:
        def pool_status(self, pool):
            raise OrchestratorError("zpool: not found")

    assert pool_says(read_pool(Zfs(), "datapool/services")) == ("DEGRADED", True) and asked == ["datapool"]
    assert pool_says(read_pool(Broken(), "datapool/services")) == pool_says(read_pool(None, "x")) == (None, None)


def test_the_verdict_inputs_are_the_run_state_with_the_last_nights_uncovered_by_default(tmp_path):
    from management.state import Night, StateStore
    from management.verdict import VerdictInputs
    from tests.unit.config.test_load import settings_with

    settings = settings_with(tmp_path, f"STATE_DIR={tmp_path}/state\n")
    store = StateStore(settings.state_dir)
    service = settings.services[0]
    store.save_last_success({service: NOW - 3600})
    store.add_nights({service: Night(NOW - 3600, uncovered=2)})
    store.save_prune_holds({service: PruneHold("shrank", 1.0, "a")})
    inputs = VerdictInputs(settings, store)
    codes = [c for c, _ in inputs.risks(service, NOW, ("ONLINE", True))]
    assert codes == ["uncovered", "never_drilled", "never_checked", "repo_local", "prune_held"]
    assert "uncovered" not in [c for c, _ in inputs.risks(service, NOW, ("ONLINE", True), uncovered=0)]
