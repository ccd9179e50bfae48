"""What compose v2 itself prints when it refuses a stack, as the tool passes it on: its logrus
lines (`time="..." level=warning msg="..."` away from a terminal) reduced to their messages.
Only `docker compose config` runs: no daemon state is touched."""

from __future__ import annotations

import pytest

from management.errors import CommandError
from management.runner import Runner
from management.tools.compose import compose_error, config_argv
from tests.lab.envfile import LAB_COMPOSE

pytestmark = [pytest.mark.lab, pytest.mark.compose,
              pytest.mark.skipif(LAB_COMPOSE != "v2", reason="v1 prints no logfmt lines")]


def test_a_refused_stack_shows_composes_messages_without_logfmt(tmp_path):
    stack = tmp_path / "x"
    stack.mkdir()
    (stack / "compose.yaml").write_text('version: "3"\nservices:\n  app:\n    image: "busybox${NOPE}"\n'
                                        "    networks: [missing]\n")
    with pytest.raises(CommandError) as info:
        Runner().run(config_argv(("docker", "compose"), "x"), cwd=str(stack), mutating=False, timeout=60,
                     unset_env=("COMPOSE_FILE", "COMPOSE_PROJECT_NAME"))
    assert "level=warning" in info.value.stderr_tail  # what compose really printed
    error = compose_error(info.value)
    assert "time=" not in error and "level=" not in error and "msg=" not in error
    assert 'The "NOPE" variable is not set. Defaulting to a blank string.' in error
    assert f"{stack}/compose.yaml: the attribute `version` is obsolete" in error
    assert error.endswith('service "app" refers to undefined network missing: invalid compose project')
