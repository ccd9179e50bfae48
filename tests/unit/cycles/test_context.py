from management.cycles.context import Cycle, RunContext
from management.monitoring.progress import Progress
from management.state import StateStore
from tests.fakes import FakeRunner
from tests.unit.config.test_load import settings_with


def test_the_context_defaults_state_to_state_dir_and_progress_to_its_echo(tmp_path):
    settings = settings_with(tmp_path, f"STATE_DIR={tmp_path}/state\n")
    said = []
    ctx = RunContext(settings, FakeRunner(), zfs=None, echo=said.append)
    assert isinstance(ctx.state, StateStore) and ctx.state.root == tmp_path / "state"
    assert isinstance(ctx.progress, Progress)
    cycle = Cycle(ctx)
    assert (cycle.s, cycle.state, cycle.echo) == (settings, ctx.state, said.append)


def test_the_context_cannot_be_changed_after_it_is_built(tmp_path):
    ctx = RunContext(settings_with(tmp_path), FakeRunner(), zfs=None)
    try:
        ctx.echo = print  # type: ignore[misc]
    except AttributeError:
        return
    raise AssertionError("RunContext is not frozen")
