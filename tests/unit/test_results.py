from management.results import FAILED, OK, DatasetResult, RunReport


def report():
    """A night with one good and one failed dataset, shared by the tests of what renders it."""
    r = RunReport(started_at=0.0, snapshot="datapool/services@orchestrator-x", downtime=3.25,
                  stopped_stacks=["git", "photo"], restarted_stacks=["git", "photo"])
    r.datasets = [
        DatasetResult("git", OK, "git-x", 12.5, 1500, 2_500_000, 1_000),
        DatasetResult("photo", FAILED, message="borg: repository does not exist\nmore"),
    ]
    return r


def test_ok_requires_every_dataset_ok_and_no_stack_failure():
    r = report()
    assert not r.ok
    r.datasets.pop()
    assert r.ok
    r.stack_failures.append("git: start failed")
    assert not r.ok


def test_drill_report_is_ok_only_when_something_was_drilled_and_nothing_failed():
    from management.results import COMPARED, DrillReport, DrillResult

    assert not DrillReport().ok
    good = DrillResult("git", "git-1", "s", COMPARED, entries=3, bytes=10)
    assert DrillReport([good]).ok and not DrillReport([good, DrillResult("web")]).ok
    assert good.line().startswith("git: OK git-1 == s: 3 entries")
