"""Image updates with a data snapshot and a health-gated rollback.

    outdated: per service, the image it runs vs what the registry serves for its reference
              (a manifest query: nothing is pulled, nothing restarts)
    update:   per stack, one at a time, under the run lock (never during a backup):
              record running image IDs -> pull -> nothing new? stop here, nothing restarted
              -> keep the old images (tag orchestrator-rollback/<stack>-<service>:<stamp>)
              -> stop (grace periods) -> snapshot <dataset>@pre-update-<stamp> -> up -d
              -> health gate (healthchecks healthy; the rest running, no restart, UPDATE_SETTLE_SECONDS)
              -> pass: keep the snapshot (the newest UPDATE_SNAPSHOTS_KEEP)
              -> fail or SIGINT/SIGTERM: stop -> zfs rollback -> the old image IDs tagged back on
                 their references -> up -d -> "rolled back" with the failing service and why
    rollback: the same way back, by hand, to the last (or a named) pre-update snapshot.

A rolled-back reference points at the old image locally, so `docker-up` (and the boot unit)
keep starting the old version; only a later pull moves it. Only snapshots named
`pre-update-<UTC stamp>` that have a state file written by this tool are ever destroyed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from management.cycles.context import Cycle, RunContext
from management.cycles.frame import RunFrame
from management.cycles.history import SNAPSHOT_TIME
from management.errors import CommandError, OrchestratorError, ValidationError
from management.lock import Interrupted, SignalGuard
from management.monitoring.publish import UpdateOutcome
from management.results import FAILED, ROLLED_BACK, SKIPPED, UNCHANGED, UPDATED, UpdateResult
from management.stacks.compose_file import Stack
from management.state import UPDATE_PREFIX, UpdatePoint

UPDATE_SNAP_RE = re.compile(rf"^{UPDATE_PREFIX}-\d{{8}}T\d{{6}}Z$")
ROLLBACK_REPO = "orchestrator-rollback"



@dataclass
class ImageRow:
    stack: str
    service: str
    image: str
    running: str | None  # image ID the container runs, None when not running
    status: str  # up to date | newer available | built locally | not running | registry: <why>
    registry: str | None = None


def rollback_tag(stack: str, service: str, stamp: str) -> str:
    """Where the old image is kept: a tag no prune of dangling images removes."""
    safe = re.sub(r"[^a-z0-9_.-]", "-", f"{stack}-{service}".lower())
    return f"{ROLLBACK_REPO}/{safe}:{stamp}"


def stamp_of(now: float) -> str:
    return time.strftime(SNAPSHOT_TIME, time.gmtime(now))


def expired(snapshots: Sequence[str], keep: int) -> list[str]:
    """The pre-update snapshots beyond the newest `keep` (names sort by time)."""
    ours = sorted(s for s in snapshots if UPDATE_SNAP_RE.match(s))
    return ours[:-keep] if keep else ours


class UpdateOrchestrator(Cycle):
    def __init__(self, ctx: RunContext):
        super().__init__(ctx)
        self._current: UpdateResult | None = None  # the stack in progress, for an interrupted run

    # -- state -----------------------------------------------------------------------------

    def _load(self, stack: str, snap: str) -> UpdatePoint:
        point = self.state.update_point(stack, snap)
        if point is None:
            path = self.state.update_point_path(stack, snap)
            raise ValidationError(f"{stack}: no record of update snapshot {snap!r} ({path})")
        return point

    def recorded(self, stack: str) -> list[str]:
        return self.state.update_points(stack)

    # -- outdated --------------------------------------------------------------------------

    def outdated(self, names: Sequence[str] | None = None) -> list[ImageRow]:
        rows = []
        for stack in self.docker.stacks(names):
            if stack.error:
                rows.append(ImageRow(stack.name, "-", "-", None, f"compose cannot read it: {stack.error}"))
                continue
            running = {c["service"]: c["image"] for c in self.docker.containers.describe(stack.name)
                       if c["state"] == "running"}
            for svc in stack.services.values():
                row = ImageRow(stack.name, svc.name, svc.image or "-", running.get(svc.name), "")
                if svc.build or not svc.image:
                    row.status = "built locally"
                elif row.running is None:
                    row.status = "not running"
                else:
                    try:
                        row.registry = self.docker.images.registry_id(svc.image)
                        row.status = "up to date" if row.registry == row.running else "newer available"
                    except OrchestratorError as exc:
                        why = exc.stderr_tail.strip().splitlines()[-1] if isinstance(exc, CommandError) and \
                            exc.stderr_tail.strip() else str(exc).splitlines()[0]
                        row.status = f"registry: {self.runner.mask(why)}"
                rows.append(row)
        return rows

    # -- update ----------------------------------------------------------------------------

    def plan(self, names: Sequence[str] | None = None) -> list[str]:
        """The dry run of `update`: what would happen to each service with a newer image."""
        return [f"would update {r.stack}/{r.service} ({r.image}): stop, snapshot "
                f"{self.s.dataset(r.stack)}@{UPDATE_PREFIX}-<time>, up -d, health gate, roll back on failure"
                for r in self.outdated(names) if r.status == "newer available"]

    def update(self, names: Sequence[str] | None = None) -> list[UpdateResult]:
        """Every named stack (all by default), the hub first, one at a time. SIGINT/SIGTERM
        is held back while a stack is between stop and a settled state; it ends the run after
        that stack (which is then on its old or new version with matching data)."""
        results: list[UpdateResult] = []
        interrupted: Interrupted | None = None
        with RunFrame(self, "update", ping=UpdateOutcome) as frame:
            guard = frame.guard
            stacks = self.docker.stacks(names)
            hub = self.s.hub_service
            ordered = [s for s in stacks if s.name == hub] + [s for s in stacks if s.name != hub]
            for stack in ordered:
                if interrupted:
                    results.append(UpdateResult(stack.name, SKIPPED, "interrupted before this stack"))
                    continue
                self._current = UpdateResult(stack.name, FAILED, "interrupted")
                try:
                    result = self._update_stack(stack, guard)
                except OrchestratorError as exc:
                    result = UpdateResult(stack.name, FAILED, self.runner.mask(str(exc).splitlines()[0]))
                except Interrupted as exc:
                    interrupted, result = exc, self._current
                    result.message = f"{result.message} ({exc})".strip()
                self.echo(f"{stack.name}: {result.result}" + (f" - {result.message}" if result.message else ""))
                results.append(result)
            frame.done(UpdateOutcome(results))  # state for status and the textfile: per stack the last result
        if interrupted:
            raise interrupted
        return results

    def _update_stack(self, stack: Stack, guard: SignalGuard) -> UpdateResult:
        if stack.error:
            return UpdateResult(stack.name, FAILED, f"compose cannot read it ({stack.file}): {stack.error}")
        running = {c["service"]: c["image"] for c in self.docker.containers.describe(stack.name)
                   if c["state"] == "running"}
        pullable = [s for s in stack.services.values() if s.image and not s.build and s.name in running]
        if not running:
            return UpdateResult(stack.name, SKIPPED, "not running; start it first (nothing was pulled)")
        if not pullable:
            return UpdateResult(stack.name, UNCHANGED, "no pulled image (built locally)")
        self.echo(f"{stack.name}: pulling {', '.join(s.image for s in pullable)}")
        try:
            self.docker.pull_services(stack, [s.name for s in pullable])
        except CommandError as exc:
            tail = exc.stderr_tail.strip().splitlines()
            return UpdateResult(stack.name, FAILED, "pull failed, nothing was stopped: "
                                + self.runner.mask(tail[-1] if tail else exc.reason))
        services = {}
        for s in pullable:
            new = self.docker.images.id(s.image)
            if new and new != running[s.name]:
                services[s.name] = {"ref": s.image, "old": running[s.name], "new": new}
        if not services:
            return UpdateResult(stack.name, UNCHANGED, "already on the newest images; nothing restarted")
        # every service of the stack goes back on failure, not only the changed ones
        for s in pullable:
            services.setdefault(s.name, {"ref": s.image, "old": running[s.name], "new": running[s.name]})
        return self._apply(stack, services, guard)

    def _apply(self, stack: Stack, services: dict, guard: SignalGuard) -> UpdateResult:
        stamp = stamp_of(self.clock())
        snap = f"{UPDATE_PREFIX}-{stamp}"
        dataset = self.s.dataset(stack.name)
        has_data = self.zfs.exists(dataset)
        for svc, info in services.items():
            info["keep"] = rollback_tag(stack.name, svc, stamp)
            self.docker.images.tag(info["old"], info["keep"])
        self.state.save_update_point(stack.name, snap, UpdatePoint(dataset if has_data else None, services))
        result = self._current = UpdateResult(stack.name, UPDATED, snapshot=f"{dataset}@{snap}" if has_data else "",
                                              services=services)
        with guard.critical():  # a signal from here on waits until the stack is settled
            self.echo(f"{stack.name}: stopping for the update")
            stopped = self.docker.stop([stack.name])[0]
            if not stopped.ok:
                self._start_old(stack, services)
                self._forget(stack.name, snap, None)
                result.result, result.message = FAILED, f"could not stop: {stopped.message}; not updated"
                return result
            if has_data:
                self.zfs.snapshot(dataset, snap, recursive=False)
                self.echo(f"{stack.name}: snapshot {dataset}@{snap}")
            self.echo(f"{stack.name}: starting the new images")
            gate = self.docker.up_gated(stack, self.s.update_settle_seconds, abort=lambda: guard.pending is not None)
            if gate.ok:
                result.message = ", ".join(f"{s}: {i['ref']}" for s, i in services.items() if i["new"] != i["old"])
                self._expire(stack.name, dataset if has_data else None)
                return result
            self.echo(f"{stack.name}: {gate.message}; rolling back")
            back = self._roll_back(stack, services, dataset if has_data else None, snap)
            if back.ok:  # back where it was: this pre-update point holds nothing new
                self._forget(stack.name, snap, dataset if has_data else None)
                result.result, result.message = ROLLED_BACK, f"rolled back: {gate.message}"
            else:
                result.result = FAILED
                result.message = (f"update failed ({gate.message}) and the old version did not come back: "
                                  f"{back.message}; data is at {dataset}@{snap}, see docs/updates.md")
        return result

    def _retag_old(self, services: dict) -> None:
        for info in services.values():
            self.docker.images.tag(info["keep"] if self.docker.images.id(info["keep"]) else info["old"], info["ref"])

    def _start_old(self, stack: Stack, services: dict):
        self._retag_old(services)
        return self.docker.up_gated(stack, self.s.update_settle_seconds)

    def _roll_back(self, stack: Stack, services: dict, dataset: str | None, snap: str):
        self.docker.stop([stack.name])
        if dataset:
            self.zfs.rollback(dataset, snap)
        return self._start_old(stack, services)

    def rollback(self, name: str, snap: str | None = None) -> UpdateResult:
        """By hand: the stack back to a pre-update snapshot (default: the last) and its images."""
        with RunFrame(self, "rollback") as frame:
            (stack,) = self.docker.stacks([name])
            if stack.error:
                raise ValidationError(f"{name}: compose cannot read it ({stack.file}): {stack.error}")
            snaps = self.recorded(name)
            if not snaps:
                raise ValidationError(f"{name}: no update to roll back (no pre-update record in "
                                      f"{self.state.update_dir(name)})")
            snap = snap or snaps[-1]
            if snap not in snaps:
                raise ValidationError(f"{name}: no pre-update snapshot {snap!r}; known: {', '.join(snaps)}")
            point = self._load(name, snap)
            with frame.guard.critical():
                back = self._roll_back(stack, point.services, point.dataset, snap)
            result = UpdateResult(name, ROLLED_BACK if back.ok else FAILED,
                                  f"to {snap}" if back.ok else f"rollback to {snap} did not come up: {back.message}",
                                  snapshot=snap, services=point.services)
            frame.done(UpdateOutcome([result]))
        return result

    def _expire(self, stack: str, dataset: str | None) -> None:
        """Keep the newest UPDATE_SNAPSHOTS_KEEP pre-update points of a stack: snapshot, record and
        kept images. Only what this tool recorded."""
        for snap in expired(self.recorded(stack), self.s.update_snapshots_keep):
            self._forget(stack, snap, dataset)

    def _forget(self, stack: str, snap: str, dataset: str | None) -> None:
        try:
            point = self._load(stack, snap)
            if dataset and self.zfs.exists(f"{dataset}@{snap}"):
                self.zfs.destroy_snapshot(f"{dataset}@{snap}")
            for info in point.services.values():
                if info.get("keep"):  # an image record: the tag that held the old image, if one was made
                    self.docker.images.untag(info["keep"])
            self.state.remove_update_point(stack, snap)
        except (OrchestratorError, OSError) as exc:
            self.echo(f"warning: {stack}: could not remove pre-update point {snap}: {exc}")


def as_dicts(items) -> list[dict]:
    return [asdict(i) for i in items]
