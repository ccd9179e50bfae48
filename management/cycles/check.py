"""`make check-repos` and its schedule: is every repository intact, including what the latest
archive does not use (which a drill of that archive never reads)?

`borg check --repository-only` verifies every segment's CRC (for an ssh:// repository on the
server itself: nothing crosses the network); the default check also checks the archives'
metadata; `--verify-data` reads and verifies every chunk. Each service's result goes through the
one publish path (state, `<name>_check.prom`, notification); one service's damage is that
service's failure, the others are checked all the same.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from management.cycles.context import Cycle
from management.cycles.frame import RunFrame
from management.errors import OrchestratorError, ValidationError
from management.monitoring.publish import CheckOutcome
from management.results import CheckReport, CheckResult

REPOSITORY, FULL, VERIFY_DATA = "repository", "full", "verify-data"


class CheckOrchestrator(Cycle):
    """borg check of each service's repository, under the run lock."""

    def check(self, services: Sequence[str] | None = None, *, verify_data: bool = False,
              repository_only: bool = False, wait: float = 0.0) -> CheckReport:
        targets = list(services) if services else list(self.s.services)
        unknown = [t for t in targets if t not in self.s.services]
        if unknown:
            raise ValidationError(f"unknown service(s) {', '.join(map(repr, unknown))}; "
                                  f"known: {', '.join(self.s.services)}")
        mode = VERIFY_DATA if verify_data else REPOSITORY if repository_only else FULL
        report = CheckReport(started_at=self.clock())
        with RunFrame(self, "check", wait=wait, signals=False) as frame:
            for service in targets:
                result = CheckResult(service, mode=mode)
                started = time.monotonic()
                try:
                    self.borg.check(service, verify_data=verify_data, repository_only=repository_only)
                    result.ok = True
                except OrchestratorError as exc:
                    result.message = self.runner.mask(str(exc))
                result.duration = time.monotonic() - started
                report.results.append(result)
                self.echo(result.line())
            report.finished_at = self.clock()
            frame.done(CheckOutcome(report), report.finished_at)
        return report
