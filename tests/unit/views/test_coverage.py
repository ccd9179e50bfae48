from management.tools.coverage import COVERED, EPHEMERAL, Coverage
from management.views.coverage import summary


def cov(verdict):
    return Coverage("git", "db", "/x", "/y", verdict, "somewhere")


def test_summary_counts_each_verdict_and_always_says_uncovered():
    assert summary({"git": [cov(COVERED), cov(COVERED)], "web": [cov(EPHEMERAL)]}) == \
        "coverage: 3 mounts in 2 stacks: 2 covered, 1 ephemeral, 0 uncovered"
