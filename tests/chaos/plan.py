"""A step drawn from (seed, step) alone: the same seed gives the same steps, so a violation's
step is replayed by running the campaign with that seed up to it. Pure: no lab here."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from tests.chaos.faults import CATALOGUE, CLOCK_MOVES, Armed

SPOKES = ("git", "photo")

# operation: (weight, programs it runs, wrapped commands it runs, seconds it takes), the last
# two measured on the lab (2 cores, zfs-fuse): a fault's moment is drawn below them
OPERATIONS = {
    "backup": (45, ("zfs", "docker", "borg"), 60, 6.0),
    "backup-one": (10, ("zfs", "docker", "borg"), 34, 4.0),
    "restore-path": (9, ("zfs", "borg"), 11, 1.0),
    "restore": (4, ("zfs", "docker", "borg"), 19, 4.5),
    "drill": (9, ("zfs", "borg"), 35, 4.0),
    "update": (5, ("docker",), 12, 3.0),
    "reboot": (5, ("zfs", "docker"), 12, 3.0),
    "adopt": (4, ("zfs", "docker"), 40, 8.0),
}
FAULT_COUNTS = (0, 1, 2)
FAULT_COUNT_WEIGHTS = (25, 50, 25)


@dataclass
class Step:
    index: int
    op: str
    service: str  # for the operations on one service
    pick: int  # which file restore-path takes back (an index into the service's files)
    changes: list[tuple[str, str, int]]  # (service, file, bytes) the day writes before the operation
    faults: list[Armed] = field(default_factory=list)
    heal: bool = False  # the clean night after a fault

    def label(self) -> str:
        what = f"{self.op} {self.service}" if self.op in ("backup-one", "restore-path", "restore", "adopt") \
            else self.op
        if self.heal:
            return f"{what} (the night after)"
        return f"{what} + {', '.join(a.label() for a in self.faults) or 'no fault'}"


def step_rng(seed: int, index: int) -> random.Random:
    return random.Random(f"chaos/{seed}/{index}")


def draw(seed: int, index: int, *, heal: bool) -> Step:
    rng = step_rng(seed, index)
    changes = [(rng.choice(SPOKES), f"day/{rng.randrange(12)}.bin", rng.choice((10, 500, 4000, 60_000)))
               for _ in range(rng.randint(1, 4))]
    if heal:
        return Step(index, "backup", "", 0, changes, heal=True)
    ops = list(OPERATIONS)
    op = rng.choices(ops, weights=[OPERATIONS[o][0] for o in ops])[0]
    step = Step(index, op, rng.choice(SPOKES), rng.randrange(1000), changes)
    _, programs, calls, seconds = OPERATIONS[op]
    names = [n for n, f in CATALOGUE.items() if all(p in programs for p in f.needs)]
    count = rng.choices(FAULT_COUNTS, weights=FAULT_COUNT_WEIGHTS)[0]
    for name in rng.sample(names, count):
        fault = CATALOGUE[name]
        moment = ("call", float(rng.randint(1, calls))) if rng.random() < 0.7 else \
            ("time", round(rng.uniform(0.2, seconds), 1))
        armed = Armed(fault, moment)
        if name == "clock-moved":
            armed.clock = rng.choice(CLOCK_MOVES)
        step.faults.append(armed)
    return step
