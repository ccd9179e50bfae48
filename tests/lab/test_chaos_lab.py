"""The chaos campaign in CI: a short one on every commit, its seed taken from the commit, so
each commit walks other steps of the same catalogue (`make chaos NIGHTS=300` runs the long one;
docs/reliability.md has its table). A violation fails the test with the step, the seed and
the command that replays it."""

from __future__ import annotations

import pytest

from tests.chaos.campaign import Campaign
from tests.chaos.world import World
from tests.conftest import _commit

pytestmark = [pytest.mark.lab]

CI_STEPS = 15


def test_a_short_chaos_campaign_seeded_by_the_commit_finds_no_violation(lab, capsys):
    seed = int(_commit()[:8] or "1", 16)
    lines: list[str] = []
    world = World.build()
    try:
        tally = Campaign(world, seed, say=lines.append).run(CI_STEPS)
    finally:
        world.teardown()
    with capsys.disabled():
        print("\n" + "\n".join(lines) + "\n\n" + tally.table())
    assert tally.violations == [], "\n".join(lines[-12:])
    assert tally.steps == CI_STEPS
    assert sum(tally.fired.values()) > 0, tally.table()  # the campaign did break something
