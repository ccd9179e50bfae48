from management.views.report import render_table
from tests.unit.test_results import report


def test_table_names_every_service_the_downtime_and_the_failed_one():
    text = render_table(report())
    assert "git" in text and "1500" in text and "2.5 MB" in text and "1.0 kB" in text
    assert "downtime: 3.2s" in text or "downtime: 3.3s" in text
    assert "result: FAILED (photo)" in text
    assert "more" not in text  # only the first line of a message goes in the table

