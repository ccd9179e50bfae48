from management.tools.coverage import COVERED, EPHEMERAL, FOREIGN, UNCOVERED, Coverage
from management.views.coverage import cell, summary


def cov(verdict):
    return Coverage("git", "db", "/x", "/y", verdict, "somewhere")


def test_summary_counts_each_verdict_and_always_says_uncovered():
    assert summary({"git": [cov(COVERED), cov(COVERED)], "web": [cov(EPHEMERAL)]}) == \
        "coverage: 3 mounts in 2 stacks: 2 covered, 1 ephemeral, 0 uncovered"


def test_the_status_cell_counts_uncovered_and_foreign_and_highlights_them():
    assert cell([cov(COVERED)]) == ("ok", False)
    assert cell([cov(UNCOVERED), cov(FOREIGN), cov(COVERED)]) == ("2 uncovered", True)
    assert cell(None) == ("?", False)
