from management.results import FAILED, OK, DatasetResult, RunReport


def report():
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

