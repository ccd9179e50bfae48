"""`prune-trusted`: the prune and compaction of every repository from a trusted machine, while
the VM's own key is append-only (BORG_APPEND_ONLY=1 there). See docs/security.md."""

from __future__ import annotations

import time
from collections.abc import Sequence

from management.cycles.context import Cycle
from management.cycles.frame import RunFrame
from management.cycles.holds import PruneHolds, prune_hold, vanished
from management.errors import OrchestratorError, ValidationError, brief
from management.monitoring.publish import TrustedPruneOutcome
from management.results import FAILED, OK, SKIPPED, DatasetResult, RunReport
from management.state import ArchiveCount, PruneHold


class TrustedPrune(Cycle):
    """`prune-trusted`: prune and compact every repository from a trusted machine holding the
    full-access key, while the VM's own key is append-only (BORG_APPEND_ONLY=1 there). The same
    prune and compact as the night, behind two guards: the prune guard (the newest archive against
    the one before it, PRUNE_GUARD_SHRINK) and archives that vanished since the last trusted prune.
    A held service keeps every archive (no prune, no compact) until `release-prune` on this machine."""

    def run(self, services: Sequence[str] | None = None) -> RunReport:
        unknown = [s for s in services or () if s not in self.s.services]
        if unknown:
            raise ValidationError(f"unknown service(s) {', '.join(map(repr, unknown))}; known: "
                                  f"{', '.join(self.s.services)}")
        targets = list(services or self.s.services)
        report = RunReport(started_at=self.clock())
        report.datasets = [DatasetResult(s) for s in targets]
        with RunFrame(self, "prune-trusted", signals=False) as frame:
            holds = PruneHolds(self.state)
            seen = self.state.trusted_kept()
            for d in report.datasets:
                self._one(d, holds, seen, report)
            holds.save()
            self.state.save_trusted_kept(seen)
            report.finished_at = self.clock()
            frame.done(TrustedPruneOutcome(report), report.finished_at)  # a hold says so loudly
        return report

    def _one(self, d: DatasetResult, holds: PruneHolds, seen: dict[str, list[str]], report: RunReport) -> None:
        service = d.service
        started = time.monotonic()
        try:
            present = [str(a.get("name", "")) for a in self.borg.list_archives(service)]
            reason = holds.reason(service) or vanished(seen.get(service, []), present)
            if not reason:
                # every archive made since the last trusted prune against the one before it (a night
                # this machine missed is compared too), or only the newest when there is no record
                new = [a for a in present if a.startswith(f"{service}-") and a not in seen.get(service, [])]
                last = self.borg.last_archives(service, max(2, len(new) + 1))
                for before, after in zip(last, last[1:], strict=False):
                    reason = prune_hold(ArchiveCount(files=before["nfiles"], bytes=before["original_size"]),
                                        after["nfiles"], after["original_size"], after["name"],
                                        self.s.prune_guard_shrink)
                    if reason:
                        break
            if reason:
                holds.hold(service, PruneHold(reason, self.clock(), max(present, default="")))
                report.held[service] = reason
                d.result, d.message, d.archives = SKIPPED, f"prune held, every archive kept: {reason}", len(present)
                self.echo(f"{service}: {d.message}; `make release-prune SERVICE_NAME={service}` here once it "
                          "was meant")
                return
            d.archives = self.borg.prune(service)
            d.pruned = True
            self.borg.compact(service)
            d.compacted = True
            if not self.runner.dry_run:
                seen[service] = [str(a.get("name", "")) for a in self.borg.list_archives(service)]
                d.archives = len(seen[service])
            d.result = OK
            d.message = f"pruned and compacted: {d.archives} archive(s) kept"
            self.echo(f"{service}: {d.message}")
        except OrchestratorError as exc:
            d.result, d.message = FAILED, brief(exc)
            self.echo(f"{service}: {d.message}")
        finally:
            d.duration = time.monotonic() - started
