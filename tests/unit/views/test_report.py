from management.results import FAILED, OK, DatasetResult, RunReport
from management.views.report import render_table


def report():
    r = RunReport(started_at=0.0, snapshot="datapool/services@orchestrator-x", downtime=3.25,
                  stopped_stacks=["git", "photo"], restarted_stacks=["git", "photo"])
    r.datasets = [
        DatasetResult("git", OK, "git-x", 12.5, 1500, 2_500_000, 1_000),
        DatasetResult("photo", FAILED, message="borg: repository does not exist\nmore"),
    ]
    return r



def test_table_names_every_service_the_downtime_and_the_failed_one():
    text = render_table(report())
    assert "git" in text and "1500" in text and "2.5 MB" in text and "1.0 kB" in text
    assert "downtime: 3.2s" in text or "downtime: 3.3s" in text
    assert "result: FAILED (photo)" in text
    assert "more" not in text  # only the first line of a message goes in the table

