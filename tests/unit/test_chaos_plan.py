"""The chaos campaign's steps come from (seed, step) alone: a replay walks the same steps, the
night after a fault is a clean backup, and a fault is only drawn for an operation that runs
the program it breaks."""

from collections import Counter

from tests.chaos.faults import CATALOGUE
from tests.chaos.plan import OPERATIONS, draw


def test_the_same_seed_draws_the_same_steps_and_another_seed_others():
    def labels(seed):
        return [draw(seed, i, heal=False).label() for i in range(1, 60)]
    assert labels(7) == labels(7)
    assert labels(7) != labels(8)


def test_the_night_after_a_fault_is_a_clean_backup():
    step = draw(7, 12, heal=True)
    assert (step.op, step.faults, step.heal) == ("backup", [], True)


def test_faults_fit_their_operation_and_every_kind_is_drawn():
    seen, counts = Counter(), Counter()
    for i in range(1, 2000):
        step = draw(3, i, heal=False)
        counts[len(step.faults)] += 1
        programs = OPERATIONS[step.op][1]
        assert len({a.fault.name for a in step.faults}) == len(step.faults)  # no fault twice in a step
        for armed in step.faults:
            seen[armed.fault.name] += 1
            assert all(p in programs for p in armed.fault.needs), (step.op, armed.fault.name)
            kind, value = armed.moment
            assert (kind == "call" and 1 <= value <= OPERATIONS[step.op][2]) or \
                (kind == "time" and 0 < value <= OPERATIONS[step.op][3])
            if armed.fault.name == "clock-moved":
                assert armed.clock
    assert set(seen) == set(CATALOGUE)
    assert set(counts) == {0, 1, 2}
