"""DockerComposeManager: the stacks under SERVICES_DIR, hub first up and last down.

- Compose v2 (`docker compose`) when present, else v1 (`docker-compose`): detected once.
- The project name is the folder name; every command runs in the stack's folder with
  ZFS_BASE_MOUNTPOINT (and the stack's own .env) available for interpolation.
- Stacks run in parallel with COMPOSE_PARALLEL workers; the hub alone before (start) or after
  (stop) the others. One stack's failure is a failed `StackResult`, never an exception.
- After up/start, containers with a healthcheck are waited for (HEALTH_TIMEOUT).
- Safety: a stack whose bind mount lies under ZFS_BASE_MOUNTPOINT on a dataset that is not
  mounted is not started (its data would land on the OS disk).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .compose_file import NETWORK_RE, PROJECT_RE, Stack, Violation, check_stacks, find_stacks, parse_stack, under
from .config import Settings
from .errors import CommandError, OrchestratorError, ValidationError
from .runner import Runner

PROJECT_LABEL = "com.docker.compose.project"


@dataclass
class StackResult:
    stack: str
    ok: bool
    message: str = ""
    duration: float = 0.0


@dataclass(frozen=True)
class StackStatus:
    stack: str
    running: int
    total: int
    state: str
    health: str


def compose_argv(base: Sequence[str], project: str, file: Path, *args: str) -> list[str]:
    """`docker compose -p <project> -f <file> <args>` (v2) or `docker-compose ...` (v1)."""
    if not PROJECT_RE.match(project):
        raise ValidationError(f"stack folder {project!r} is not a valid compose project name "
                              "(lowercase letters, digits, '-' and '_')")
    return [*base, "-p", project, "-f", str(file), *args]


def order_hub(stacks: Sequence[str], hub: str) -> tuple[list[str], list[str]]:
    """(hub or [], the others)."""
    return ([hub] if hub in stacks else []), [s for s in stacks if s != hub]


class DockerComposeManager:
    def __init__(self, settings: Settings, runner: Runner, zfs=None, echo: Callable[[str], None] | None = None):
        self.s = settings
        self.runner = runner
        self.zfs = zfs
        self.echo = echo or (lambda _m: None)
        self._base: tuple[str, ...] | None = None
        self._network_problems: dict[str, str] = {}

    # -- discovery ---------------------------------------------------------------------------

    def compose_base(self) -> tuple[str, ...]:
        if self._base is None:
            try:
                self.runner.run(["docker", "compose", "version"], mutating=False, timeout=30)
                self._base = ("docker", "compose")
            except CommandError:
                self._base = ("docker-compose",)
        return self._base

    def env(self) -> dict[str, str]:
        return {"ZFS_BASE_MOUNTPOINT": str(self.s.zfs_base_mountpoint)}

    def discover_names(self) -> list[str]:
        return [name for name, _ in find_stacks(self.s.services_dir)]

    def stacks(self, names: Sequence[str] | None = None) -> list[Stack]:
        found = dict(find_stacks(self.s.services_dir))
        if names:
            unknown = [n for n in names if n not in found]
            if unknown:
                raise ValidationError(f"unknown stack(s) {', '.join(map(repr, unknown))} in {self.s.services_dir}; "
                                      f"known: {', '.join(found) or 'none'}")
        wanted = list(names) if names else list(found)
        return [parse_stack(n, found[n], self.env()) for n in wanted]

    def check(self) -> list[Violation]:
        listed = [vp.relative for vp in self.s.volume_paths]
        return check_stacks(self.stacks(), self.s.hub_service, self.s.zfs_base_mountpoint, listed)

    def running_stacks(self) -> list[str]:
        out = self.runner.run(["docker", "ps", "--filter", f"label={PROJECT_LABEL}",
                               "--format", f'{{{{.Label "{PROJECT_LABEL}"}}}}'], mutating=False).stdout
        projects = set(out.split())
        return [n for n in self.discover_names() if n in projects]

    # -- lifecycle ---------------------------------------------------------------------------

    def _compose(self, stack: Stack, *args: str, timeout: float | None = None, mutating: bool = True):
        return self.runner.run(compose_argv(self.compose_base(), stack.name, stack.file, *args),
                               cwd=str(stack.dir), env=self.env(), timeout=timeout, mutating=mutating)

    def _each(self, stacks: list[Stack], action: Callable[[Stack], StackResult]) -> list[StackResult]:
        if not stacks:
            return []
        workers = max(1, min(self.s.compose_parallel, len(stacks)))
        self.compose_base()  # detect v1/v2 once, before the workers race to do it
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="compose") as pool:
            return list(pool.map(lambda st: self._guarded(st, action), stacks))

    def _guarded(self, stack: Stack, action: Callable[[Stack], StackResult]) -> StackResult:
        started = time.monotonic()
        try:
            result = action(stack)
        except OrchestratorError as exc:
            result = StackResult(stack.name, False, self.runner.mask(str(exc)))
        result.duration = time.monotonic() - started
        note = f" - {result.message}" if result.message else ""
        self.echo(f"  {stack.name}: {'ok' if result.ok else 'FAILED'}{note}")
        return result

    def _hub_then_rest(self, names: Sequence[str] | None, action, *, hub_first: bool) -> list[StackResult]:
        try:
            stacks = self.stacks(names)
        except ValidationError as exc:
            return [StackResult(n, False, str(exc)) for n in (names or ["*"])]
        by_name = {s.name: s for s in stacks}
        hub, rest = order_hub([s.name for s in stacks], self.s.hub_service)
        first, second = (hub, rest) if hub_first else (rest, hub)
        results = self._each([by_name[n] for n in first], action)
        results += self._each([by_name[n] for n in second], action)
        return results

    def up(self, names: Sequence[str] | None = None) -> list[StackResult]:
        self._ensure_networks(names)
        return self._hub_then_rest(names, lambda st: self._start_one(st, "up", "-d"), hub_first=True)

    def start(self, names: Sequence[str] | None = None) -> list[StackResult]:
        self._ensure_networks(names)
        return self._hub_then_rest(names, lambda st: self._start_one(st, "start"), hub_first=True)

    def stop(self, names: Sequence[str] | None = None) -> list[StackResult]:
        t = str(self.s.stop_timeout)
        return self._hub_then_rest(names, lambda st: self._simple(st, "stop", "-t", t), hub_first=False)

    def down(self, names: Sequence[str] | None = None) -> list[StackResult]:
        t = str(self.s.stop_timeout)
        return self._hub_then_rest(names, lambda st: self._simple(st, "down", "-t", t), hub_first=False)

    def pull(self, names: Sequence[str] | None = None) -> list[StackResult]:
        return self._hub_then_rest(names, lambda st: self._simple(st, "pull"), hub_first=True)

    def _simple(self, stack: Stack, *args: str) -> StackResult:
        self._compose(stack, *args, timeout=self.s.stop_timeout * 4 + 120)
        return StackResult(stack.name, True)

    def _start_one(self, stack: Stack, *args: str) -> StackResult:
        bad_nets = [self._network_problems[n] for n in sorted(stack.external_networks) if n in self._network_problems]
        if bad_nets:
            return StackResult(stack.name, False, f"not started ({stack.file}): " + "; ".join(bad_nets))
        unmounted = self.unmounted_binds(stack)
        if unmounted:
            return StackResult(stack.name, False, "not started: " + "; ".join(unmounted))
        self._compose(stack, *args)
        if self.runner.dry_run or not stack.healthchecks:
            return StackResult(stack.name, True)
        return self._wait_healthy(stack)

    def unmounted_binds(self, stack: Stack) -> list[str]:
        """Bind mounts under ZFS_BASE_MOUNTPOINT whose dataset is not mounted."""
        if self.zfs is None:
            return []
        problems, checked = [], {}
        for b in stack.binds:
            rel = under(b.source, self.s.zfs_base_mountpoint)
            if rel is None or not rel.parts:
                continue
            dataset = self.s.dataset(rel.parts[0])
            if dataset not in checked:
                try:
                    checked[dataset] = self.zfs.is_mounted(dataset)
                except OrchestratorError:
                    checked[dataset] = False
                if not checked[dataset]:
                    problems.append(f"{b.source} is on dataset {dataset}, which is not mounted "
                                    "(its data would land on the OS disk)")
        return problems

    def _project_containers(self, stack: Stack, all_states: bool = False) -> list[str]:
        argv = ["docker", "ps", "-q", "--filter", f"label={PROJECT_LABEL}={stack.name}"]
        if all_states:
            argv.insert(2, "-a")
        return self.runner.run(argv, mutating=False).stdout.split()

    def _inspect(self, ids: list[str]) -> list[tuple[str, str, str]]:
        """(name, state, health) per container; health is 'none' without a healthcheck."""
        if not ids:
            return []
        fmt = "{{.Name}}\t{{.State.Status}}\t{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}"
        out = self.runner.run(["docker", "inspect", "--format", fmt, *ids], mutating=False).stdout
        rows = []
        for line in out.splitlines():
            parts = line.split("\t")
            if len(parts) == 3:
                rows.append((parts[0].lstrip("/"), parts[1], parts[2]))
        return rows

    def _wait_healthy(self, stack: Stack) -> StackResult:
        deadline = time.monotonic() + self.s.health_timeout
        while True:
            rows = self._inspect(self._project_containers(stack))
            waiting = [n for n, _state, health in rows if health not in ("healthy", "none")]
            if not waiting:
                return StackResult(stack.name, True, "healthy" if rows else "")
            if time.monotonic() >= deadline:
                detail = ", ".join(f"{n} ({h})" for n, _s, h in rows if h not in ("healthy", "none"))
                return StackResult(stack.name, False, f"not healthy after {self.s.health_timeout}s: {detail}")
            time.sleep(0.5)

    def _ensure_networks(self, names: Sequence[str] | None) -> None:
        """Create the external networks the stacks declare, and only those, before anything
        starts. A name docker should not get (it would read '-x' as an option) or a create
        that fails is remembered, and only the stacks that need that network are refused."""
        self._network_problems = {}
        try:
            stacks = self.stacks(names)
        except ValidationError:
            return  # reported per stack by the caller
        wanted = set().union(*(s.external_networks for s in stacks)) if stacks else set()
        for net in sorted(n for n in wanted if not NETWORK_RE.match(n)):
            self._network_problems[net] = (f"external network {net!r} is not a valid name "
                                           "(letters, digits, '_', '.', '-'; not starting with '-')")
        wanted -= set(self._network_problems)
        if not wanted:
            return
        # one query for all of them: this runs inside the backup's downtime window
        existing = set(self.runner.run(["docker", "network", "ls", "--format", "{{.Name}}"],
                                       mutating=False).stdout.split())
        for net in sorted(wanted - existing):
            self.echo(f"creating external network {net}")
            try:
                self.runner.run(["docker", "network", "create", net])
            except CommandError as exc:
                self._network_problems[net] = f"external network {net!r} cannot be created: {exc}"

    # -- status ------------------------------------------------------------------------------

    def status(self, names: Sequence[str] | None = None) -> list[StackStatus]:
        rows = []
        for stack in self.stacks(names):
            containers = self._inspect(self._project_containers(stack, all_states=True))
            running = sum(1 for _n, state, _h in containers if state == "running")
            health = sorted({h for _n, _s, h in containers if h != "none"})
            state = "running" if containers and running == len(containers) else (
                "stopped" if not running else "partial")
            rows.append(StackStatus(stack.name, running, len(containers), state if containers else "absent",
                                    ",".join(health) or "-"))
        return rows
