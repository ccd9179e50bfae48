from management.stacks.coverage import COPIED, COVERED, EPHEMERAL, UNCOVERED, Coverage
from management.views.coverage import copied, summary


def cov(verdict):
    return Coverage("git", "db", "/x", "/y", verdict, "somewhere")


def test_summary_counts_each_verdict_and_always_says_uncovered():
    assert summary({"git": [cov(COVERED), cov(COVERED)], "web": [cov(EPHEMERAL)]}) == \
        "coverage: 3 mounts in 2 stacks: 2 covered, 1 ephemeral, 0 uncovered"


def test_what_the_stack_folders_copy_holds_is_counted_and_said_without_being_a_problem():
    coverage = {"git": [cov(COVERED), cov(COPIED)], "web": [cov(UNCOVERED)]}
    assert summary(coverage) == "coverage: 3 mounts in 2 stacks: 1 covered, 1 copied, 1 uncovered"
    assert copied(coverage) == ["git: service 'db' /x -> /y: somewhere"]
    assert not cov(COPIED).problem
