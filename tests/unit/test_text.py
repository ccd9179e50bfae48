from management.results import FAILED, OK, DatasetResult, RunReport
from management.text import human_size


def report():
    r = RunReport(started_at=0.0, snapshot="datapool/services@orchestrator-x", downtime=3.25,
                  stopped_stacks=["git", "photo"], restarted_stacks=["git", "photo"])
    r.datasets = [
        DatasetResult("git", OK, "git-x", 12.5, 1500, 2_500_000, 1_000),
        DatasetResult("photo", FAILED, message="borg: repository does not exist\nmore"),
    ]
    return r



def test_human_size():
    assert (human_size(None), human_size(999), human_size(1_500_000_000)) == ("-", "999 B", "1.5 GB")

