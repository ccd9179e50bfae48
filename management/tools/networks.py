"""Networks: the external networks the stacks declare, created (and only those) before anything
starts; what could not be had is remembered per network, so only the stacks needing it are refused."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from management.errors import CommandError
from management.runner import Runner
from management.stacks.compose_file import NETWORK_RE


class Networks:
    def __init__(self, runner: Runner, echo: Callable[[str], None] | None = None):
        self.runner = runner
        self.echo = echo or (lambda _m: None)

    def ensure(self, wanted: Iterable[str]) -> dict[str, str]:
        """Create the `wanted` external networks that do not exist. Returns network -> why it
        cannot be had: a name docker should not get (it would read '-x' as an option), or a
        create that failed."""
        wanted = set(wanted)
        problems = {net: (f"external network {net!r} is not a valid name "
                          "(letters, digits, '_', '.', '-'; not starting with '-')")
                    for net in sorted(n for n in wanted if not NETWORK_RE.match(n))}
        wanted -= set(problems)
        if not wanted:
            return problems
        # one query for all of them: this runs inside the backup's downtime window
        existing = set(self.runner.run(["docker", "network", "ls", "--format", "{{.Name}}"],
                                       mutating=False).stdout.split())
        for net in sorted(wanted - existing):
            self.echo(f"creating external network {net}")
            try:
                self.runner.run(["docker", "network", "create", net])
            except CommandError as exc:
                problems[net] = f"external network {net!r} cannot be created: {exc}"
        return problems
