"""DockerComposeManager: the stacks under SERVICES_DIR, hub first up and last down.

- Compose v2 (`docker compose`) when present, else `docker-compose`, detected once: v1
  (1.29), or v2 on its own (Debian 13's `docker-compose` package is compose 2.26, a docker CLI
  plugin that /usr/bin/docker-compose links to), told apart by its version.
  COMPOSE_COMMAND=v1|v2 picks one.
- Every fact about a stack comes from compose's own resolved model (`config`), read once per
  run, in parallel, before anything is stopped. Every compose command runs in the stack's
  folder without `-f`, so compose picks the same files (override, `.env`, COMPOSE_FILE and
  COMPOSE_PROFILES set there) as `docker compose up` typed in that folder. The project name is
  the folder name. The read-only views (status, check-stacks) reuse a model kept in STATE_DIR
  while every input compose could read is the same (stacks/model_key.py); what acts on stacks
  always asks compose.
- One stack's problem is that stack's problem: a stack compose cannot read is refused alone,
  with compose's message; the others go on. One stack's failure is a failed `StackResult`.
- `stop`/`down` honour each service's `stop_grace_period` (no `-t`); STOP_TIMEOUT bounds the
  whole stop of one stack: past it the tool gives up waiting and reports.
- Stacks run in parallel with COMPOSE_PARALLEL workers; the hub alone before (start) or after
  (stop) the others. After up/start, containers with a healthcheck are waited for.
- Safety: a stack with a bind source or volume device under ZFS_BASE_MOUNTPOINT on a dataset
  that is not mounted is not started (its data would land on the OS disk).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from management.config import PROJECT_RE, Settings
from management.errors import CommandError, OrchestratorError, ValidationError
from management.runner import Runner
from management.stacks.compose_file import (
    Stack,
    StackDir,
    find_stacks,
    stack_from_model,
)
from management.stacks.house import StackQuestions
from management.stacks.model_key import model_key
from management.stacks.rules import under
from management.state import StateStore
from management.tools.containers import Containers
from management.tools.images import Images
from management.tools.networks import Networks
from management.tools.volumes import Volumes

# Taken from the caller's shell these would apply to every stack at once (and differ between a
# login shell and cron): compose reads them from each stack's own .env instead.
COMPOSE_ENV_UNSET = ("COMPOSE_FILE", "COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "COMPOSE_PATH_SEPARATOR",
                     "COMPOSE_ENV_FILES", "COMPOSE_PROJECT_DIRECTORY")
CONFIG_TIMEOUT = 120
HEALTH_POLL = 0.2  # seconds between health polls: inside the backup window, every poll counts


@dataclass
class StackResult:
    stack: str
    ok: bool
    message: str = ""
    duration: float = 0.0
    started_at: float = 0.0  # time.monotonic() when the action on this stack began
    finished_at: float = 0.0  # ... and when it ended (after the health wait, for up/start)


@dataclass(frozen=True)
class StackStatus:
    stack: str
    running: int
    total: int
    state: str
    health: str


def compose_argv(base: Sequence[str], project: str, *args: str) -> list[str]:
    """`docker compose -p <project> <args>` (v2) or `docker-compose -p <project> <args>` (v1).
    No `-f`: run in the stack's folder, compose picks its files (and the override) itself."""
    if not PROJECT_RE.match(project):
        raise ValidationError(f"stack folder {project!r} is not a valid compose project name "
                              "(lowercase letters, digits, '-' and '_')")
    return [*base, "-p", project, *args]


def config_argv(base: Sequence[str], project: str, *, v1: bool | None = None) -> list[str]:
    """Compose's resolved model: JSON on v2, YAML on v1 (which has no --format). `v1` defaults
    to what the command says (`docker compose` is v2); `docker-compose` may be v2 too."""
    v1 = base[0] != "docker" if v1 is None else v1
    return compose_argv(base, project, "config", *([] if v1 else ["--format", "json"]))


def is_v1_version(short: str) -> bool:
    """`docker-compose version --short`: 1.29.2 on v1; 2.26.1 (or v2.26.1) on v2."""
    major = short.strip().lstrip("v").split(".", 1)[0]
    return not (major.isdigit() and int(major) >= 2)


def order_hub(stacks: Sequence[str], hub: str) -> tuple[list[str], list[str]]:
    """(hub or [], the others)."""
    return ([hub] if hub in stacks else []), [s for s in stacks if s != hub]


def v1_profiles(stack_dir: Path) -> set[str]:
    """COMPOSE_PROFILES as v1 reads it from the stack's .env (v2 applies profiles itself)."""
    from dotenv import dotenv_values

    env = stack_dir / ".env"
    raw = (dotenv_values(env).get("COMPOSE_PROFILES") or "") if env.is_file() else ""
    return {p.strip() for p in raw.split(",") if p.strip()}


_LOGFMT_MSG = re.compile(r'(?:^|\s)msg=("(?:[^"\\]|\\.)*"|\S+)')
_GO_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}


def compose_message(line: str) -> str:
    """compose v2 logs through logrus: away from a terminal a line reads `time="..." level=warning
    msg="..."`. Its message alone (Go's quoting undone); any other line as it is."""
    found = _LOGFMT_MSG.search(line) if "level=" in line else None
    if not found:
        return line.strip()
    value = found.group(1)
    if value.startswith('"'):
        value = re.sub(r"\\(.)", lambda m: _GO_ESCAPES.get(m.group(1), m.group(1)), value[1:-1])
    return value.strip()


def compose_error(exc: CommandError) -> str:
    """Compose's own words on why it cannot read a stack (the last lines it printed, each its
    message only: no logfmt timestamps and levels)."""
    lines = [compose_message(ln) for ln in exc.stderr_tail.splitlines() if ln.strip()]
    return " ".join(ln for ln in lines[-4:] if ln) or exc.reason


class DockerComposeManager(StackQuestions):
    """Compose projects: discovery, their models, up/start/stop/down/pull hub first or last, the
    health wait, the update's gated up, throwaway stacks. What it drives besides compose is its
    own wrapper (containers, images, networks, volumes); check, accepted and coverage come from
    the stack models (StackQuestions)."""

    def __init__(self, settings: Settings, runner: Runner, zfs=None, echo: Callable[[str], None] | None = None,
                 models: StateStore | None = None):
        self.s = settings
        self.runner = runner
        self.zfs = zfs
        self.store = models  # compose's models kept across runs (status, check-stacks), or None
        self.echo = echo or (lambda _m: None)
        self._base: tuple[str, ...] | None = None
        self._v1 = False
        self._network_problems: dict[str, str] = {}
        self._mounted: set[str] | None = None  # read once per start/up (_read_mounts), else None
        self._models: dict[str, Stack] = {}  # one `config` per stack per run
        # what compose drives, each its own wrapper of the docker CLI
        self.containers = Containers(settings, runner)
        self.images = Images(runner)
        self.networks = Networks(runner, self.echo)
        self.volumes = Volumes(runner)

    # -- discovery ---------------------------------------------------------------------------

    def compose_base(self) -> tuple[str, ...]:
        if self._base is None:
            choice = self.s.compose_command
            if choice == "v1":
                self._base, self._v1 = ("docker-compose",), True
            elif choice == "v2":
                self._base = ("docker", "compose")
            else:
                try:
                    self.runner.run(["docker", "compose", "version"], mutating=False, timeout=30)
                    self._base = ("docker", "compose")
                except CommandError:
                    # `docker-compose`: v1, or v2 without the docker CLI finding it as a plugin
                    self._base = ("docker-compose",)
                    try:
                        short = self.runner.run(["docker-compose", "version", "--short"], mutating=False,
                                                timeout=30).stdout
                    except CommandError:
                        short = ""  # not there either: compose's own error comes with the first stack
                    self._v1 = is_v1_version(short)
        return self._base

    @property
    def is_v1(self) -> bool:
        self.compose_base()
        return self._v1

    def env(self, stack_dir: Path | None = None) -> dict[str, str]:
        env = {"ZFS_BASE_MOUNTPOINT": str(self.s.zfs_base_mountpoint)}
        if stack_dir is not None:
            env["PWD"] = str(stack_dir)
        return env

    def stack_dirs(self) -> list[StackDir]:
        return find_stacks(self.s.services_dir)[0]

    def discover_names(self) -> list[str]:
        return [d.name for d in self.stack_dirs()]

    def _read(self, d: StackDir) -> Stack:
        try:
            out = self._config(d)
            if self.is_v1:
                import yaml

                return stack_from_model(d, yaml.safe_load(out), v1_profiles(d.dir))
            return stack_from_model(d, json.loads(out))
        except CommandError as exc:
            return Stack(d.name, d.dir, d.file, error=self.runner.mask(compose_error(exc)))
        except (ValidationError, ValueError) as exc:
            return Stack(d.name, d.dir, d.file, error=str(exc))

    def _config(self, d: StackDir) -> str:
        """What `compose config` prints for the stack: from the store when it holds the model for
        these very inputs (stacks/model_key.py), else from compose (and then kept)."""
        env = self.env(d.dir)
        key = None
        if self.store is not None:
            key = model_key(d.dir, self.compose_base(), self.runner.environment(env, COMPOSE_ENV_UNSET))
            kept = self.store.compose_model(d.name, key) if key else None
            if kept is not None:
                return kept
        out = self.runner.run(config_argv(self.compose_base(), d.name, v1=self.is_v1), cwd=str(d.dir), env=env,
                              unset_env=COMPOSE_ENV_UNSET, timeout=CONFIG_TIMEOUT, mutating=False).stdout
        if key and not self.runner.dry_run:
            try:
                self.store.save_compose_model(d.name, key, out)
            except OSError:
                pass  # a STATE_DIR this user cannot write: the next run asks compose again
        return out

    def stacks(self, names: Sequence[str] | None = None) -> list[Stack]:
        """The named stacks (all when None; none for an empty list) as compose resolves them; a stack compose cannot
        read comes back with `error` set. Read once per run, COMPOSE_PARALLEL at a time."""
        found = {d.name: d for d in self.stack_dirs()}
        if names:
            unknown = [n for n in names if n not in found]
            if unknown:
                raise ValidationError(f"unknown stack(s) {', '.join(map(repr, unknown))} in {self.s.services_dir}; "
                                      f"known: {', '.join(found) or 'none'}")
        wanted = list(found) if names is None else list(names)  # [] is no stack, not every stack
        missing = [found[n] for n in wanted if n not in self._models and PROJECT_RE.match(n)]
        if missing:
            self.compose_base()  # detect v1/v2 once, before the workers race to do it
            workers = max(1, min(self.s.compose_parallel, len(missing)))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="config") as pool:
                for stack in pool.map(self._read, missing):
                    self._models[stack.name] = stack
        for n in wanted:
            if n not in self._models:  # a folder compose would not take as a project name
                d = found[n]
                self._models[n] = Stack(n, d.dir, d.file, error=f"folder name {n!r} is not a valid compose "
                                        "project name (lowercase letters, digits, '-' and '_')")
        return [self._models[n] for n in wanted]

    def running_stacks(self) -> list[str]:
        projects = self.containers.running_projects()
        return [n for n in self.discover_names() if n in projects]

    # -- lifecycle ---------------------------------------------------------------------------

    def _compose(self, stack: Stack, *args: str, timeout: float | None = None, mutating: bool = True):
        return self.runner.run(compose_argv(self.compose_base(), stack.name, *args), cwd=str(stack.dir),
                               env=self.env(stack.dir), unset_env=COMPOSE_ENV_UNSET, timeout=timeout,
                               mutating=mutating)

    def _each(self, stacks: list[Stack], action: Callable[[Stack], StackResult | None]) -> list[StackResult]:
        """`action` on each stack, COMPOSE_PARALLEL at a time. An action that returns None started
        its stack and leaves the health wait to this: every such stack is then waited for
        together, so a stack waiting for its healthcheck holds no compose worker."""
        if not stacks:
            return []
        workers = max(1, min(self.s.compose_parallel, len(stacks)))
        self.compose_base()  # detect v1/v2 once, before the workers race to do it
        started: dict[str, float] = {}
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="compose") as pool:
            first = list(pool.map(lambda st: self._guarded(st, action, started), stacks))
        pending = [st for st, result in zip(stacks, first, strict=True) if result is None]
        settled = self._wait_all_healthy(pending, lambda result: self._finish(result, started[result.stack]))
        return [result or settled[st.name] for st, result in zip(stacks, first, strict=True)]

    def _guarded(self, stack: Stack, action: Callable[[Stack], StackResult | None],
                 started: dict[str, float]) -> StackResult | None:
        started[stack.name] = time.monotonic()
        try:
            if stack.error:
                result = StackResult(stack.name, False, f"refused ({stack.file}): {stack.error}")
            else:
                result = action(stack)
        except OrchestratorError as exc:
            result = StackResult(stack.name, False, self.runner.mask(str(exc)))
        return None if result is None else self._finish(result, started[stack.name])

    def _finish(self, result: StackResult, started: float) -> StackResult:
        result.started_at, result.finished_at = started, time.monotonic()
        result.duration = result.finished_at - started
        note = f" - {result.message}" if result.message else ""
        self.echo(f"  {result.stack}: {'ok' if result.ok else 'FAILED'}{note}")
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
        self._read_mounts()
        try:
            return self._hub_then_rest(names, lambda st: self._start_one(st, "up", "-d"), hub_first=True)
        finally:
            self._mounted = None

    def start(self, names: Sequence[str] | None = None) -> list[StackResult]:
        self._ensure_networks(names)
        self._read_mounts()
        try:
            return self._hub_then_rest(names, lambda st: self._start_one(st, "start"), hub_first=True)
        finally:
            self._mounted = None

    def _read_mounts(self) -> None:
        """Which datasets are mounted, asked once before a start or up (one `zfs get` for every
        stack, not one per stack on the way to healthy); unknown when zfs cannot say."""
        self._mounted = None
        if self.zfs is None:
            return
        try:
            self._mounted = self.zfs.mounted_below(self.s.zfs_parent_dataset)
        except OrchestratorError:
            self._mounted = None

    def stop(self, names: Sequence[str] | None = None) -> list[StackResult]:
        return self._hub_then_rest(names, lambda st: self._stop_one(st, "stop"), hub_first=False)

    def down(self, names: Sequence[str] | None = None) -> list[StackResult]:
        return self._hub_then_rest(names, lambda st: self._stop_one(st, "down"), hub_first=False)

    def pull(self, names: Sequence[str] | None = None) -> list[StackResult]:
        return self._hub_then_rest(names, lambda st: self._simple(st, "pull"), hub_first=True)

    def run_hook(self, stack: Stack, service: str, command: Sequence[str], timeout: float) -> str:
        """A before-snapshot command in a running service: `compose exec -T` (no TTY, as cron)."""
        return self._compose(stack, "exec", "-T", service, *command, timeout=timeout).stdout

    def _simple(self, stack: Stack, *args: str) -> StackResult:
        self._compose(stack, *args, timeout=self.s.command_timeout)
        return StackResult(stack.name, True)

    def _stop_one(self, stack: Stack, verb: str) -> StackResult:
        """No `-t`: compose gives each service its own stop_grace_period. STOP_TIMEOUT bounds
        the whole stop; past it the tool stops waiting and says so (the containers may still
        be stopping)."""
        try:
            self._compose(stack, verb, timeout=self.s.stop_timeout)
        except CommandError as exc:
            if exc.exit_code is None and exc.reason.startswith("timed out"):
                return StackResult(stack.name, False, f"{verb} did not finish within STOP_TIMEOUT="
                                                      f"{self.s.stop_timeout}s (longest declared stop_grace_period: "
                                                      f"{stack.max_stop_grace:g}s)")
            raise
        return StackResult(stack.name, True)

    def _start_one(self, stack: Stack, *args: str) -> StackResult | None:
        bad_nets = [self._network_problems[n] for n in sorted(stack.external_networks) if n in self._network_problems]
        if bad_nets:
            return StackResult(stack.name, False, f"not started ({stack.file}): " + "; ".join(bad_nets))
        unmounted = self.unmounted_binds(stack)
        if unmounted:
            return StackResult(stack.name, False, "not started: " + "; ".join(unmounted))
        self._compose(stack, *args)
        if self.runner.dry_run or not stack.healthchecks:
            return StackResult(stack.name, True)
        return None  # started: _each waits for its health with the others'

    def unmounted_binds(self, stack: Stack) -> list[str]:
        """Bind sources and volume devices under ZFS_BASE_MOUNTPOINT whose dataset is not mounted."""
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
                    checked[dataset] = dataset in self._mounted if self._mounted is not None else \
                        self.zfs.is_mounted(dataset)
                except OrchestratorError:
                    checked[dataset] = False
                if not checked[dataset]:
                    problems.append(f"{b.source} is on dataset {dataset}, which is not mounted "
                                    "(its data would land on the OS disk)")
        return problems

    def forget(self, names: Sequence[str]) -> None:
        """Drop the cached compose model of these stacks (their folder was replaced)."""
        for name in names:
            self._models.pop(name, None)

    def _wait_healthy(self, stack: Stack) -> StackResult:
        return self._wait_all_healthy([stack])[stack.name]

    def _wait_all_healthy(self, stacks: Sequence[Stack],
                          settled: Callable[[StackResult], object] = lambda result: None) -> dict[str, StackResult]:
        """Every container of each stack healthy (or without a healthcheck) and running; one
        that exited with an error, or died, fails its stack at once instead of being waited for
        (or overlooked). A container that exited 0 finished its job (an init or migration).
        One `docker inspect` per poll for every stack still waited for; `settled` hears each
        stack's result the moment it is known. HEALTH_TIMEOUT counts from this call."""
        results: dict[str, StackResult] = {}
        if not stacks:
            return results
        deadline = time.monotonic() + self.s.health_timeout
        try:
            ids = self.containers.of_projects([st.name for st in stacks])  # listed once: a poll is one inspect
        except CommandError as exc:
            for stack in stacks:
                results[stack.name] = StackResult(stack.name, False, "its containers cannot be listed: "
                                                  f"{self.runner.mask(str(exc))}")
                settled(results[stack.name])
            return results
        while True:
            waited = [st for st in stacks if st.name not in results]
            if not waited:
                return results
            for stack, rows in zip(waited, self._poll_states([st.name for st in waited], ids), strict=True):
                result = self._health_verdict(stack, rows, time.monotonic() >= deadline)
                if result is not None:
                    results[stack.name] = result
                    settled(result)
            if len(results) < len(stacks):
                time.sleep(HEALTH_POLL)

    def _poll_states(self, names: Sequence[str],
                     ids: dict[str, list[str]]) -> list[list[tuple[str, str, str, int]] | str]:
        """Each stack's (name, state, health, exit code) rows from one inspect of all their
        containers (docker prints them in the order asked); when one went away (recreated by
        hand?), each stack is listed and inspected again on its own (a message for a stack
        whose containers cannot be read even then)."""
        every = [i for name in names for i in ids[name]]
        try:
            rows = self.containers.states(every)
        except CommandError:
            rows = None
        if rows is not None and len(rows) == len(every):
            out, at = [], 0
            for name in names:
                out.append(rows[at:at + len(ids[name])])
                at += len(ids[name])
            return out
        out: list[list[tuple[str, str, str, int]] | str] = []
        for name in names:
            try:
                out.append(self.containers.states(ids[name]))
            except CommandError:
                try:
                    ids[name] = self.containers.of_project(name, all_states=True)
                    out.append(self.containers.states(ids[name]))
                except CommandError as exc:  # this stack's problem alone
                    out.append(self.runner.mask(str(exc)))
        return out

    def _health_verdict(self, stack: Stack, rows: list[tuple[str, str, str, int]] | str,
                        late: bool) -> StackResult | None:
        if isinstance(rows, str):
            return StackResult(stack.name, False, f"its containers cannot be inspected: {rows}")
        crashed = [f"{n} ({state}, exit code {code})" for n, state, _h, code in rows
                   if state == "dead" or (state == "exited" and code != 0)]
        if crashed:
            return StackResult(stack.name, False, f"{', '.join(crashed)}{self._last_words(stack)}")
        waiting = [n for n, state, health, _c in rows if state not in ("running", "exited") or health not in
                   ("healthy", "none")]
        if not waiting:
            return StackResult(stack.name, True, "healthy" if rows else "")
        if late:
            detail = ", ".join(f"{n} ({h if s == 'running' else s})" for n, s, h, _c in rows if n in waiting)
            return StackResult(stack.name, False, f"not healthy after {self.s.health_timeout}s: {detail}")
        return None

    def _last_words(self, stack: Stack) -> str:
        """': <its last log lines>' of a stack whose container crashed (best effort)."""
        try:
            out = self._compose(stack, "logs", "--no-color", "--tail", "3", timeout=60, mutating=False).stdout
        except OrchestratorError:
            return ""
        last = [ln.strip() for ln in out.splitlines() if ln.strip()][-2:]
        return f": {' | '.join(last)}" if last else ""

    def _ensure_networks(self, names: Sequence[str] | None) -> None:
        """Create the external networks the stacks declare before anything starts (Networks.ensure);
        what cannot be had refuses only the stacks that need it (_start_one)."""
        self._network_problems = {}
        try:
            stacks = [s for s in self.stacks(names) if not s.error]
        except ValidationError:
            return  # reported per stack by the caller
        wanted = set().union(*(s.external_networks for s in stacks)) if stacks else set()
        self._network_problems = self.networks.ensure(wanted)

    # -- throwaway stacks (the boot drill) ---------------------------------------------------

    def resolved_model(self, folder: Path, project: str) -> dict:
        """compose's resolved model of the stack folder `folder` (v2's JSON), as `up` would see it."""
        out = self.runner.run(config_argv(self.compose_base(), project, v1=self.is_v1), cwd=str(folder),
                              env=self.env(folder),
                              unset_env=COMPOSE_ENV_UNSET, timeout=CONFIG_TIMEOUT, mutating=False).stdout
        return json.loads(out)

    def _sandbox(self, project: str, file: Path, *args: str, timeout: float | None = None):
        return self.runner.run([*self.compose_base(), "-p", project, "-f", str(file), *args], cwd=str(file.parent),
                               env=self.env(file.parent), unset_env=COMPOSE_ENV_UNSET, timeout=timeout)

    def sandbox_up(self, project: str, file: Path) -> StackResult:
        """Start a throwaway stack from `file` (local images only) and wait for its healthchecks."""
        self._sandbox(project, file, "up", "-d", "--no-build", "--pull", "never",
                      timeout=float(self.s.health_timeout) + 120)
        return self._wait_healthy(Stack(project, file.parent, file))

    def sandbox_exec(self, project: str, file: Path, service: str, command: Sequence[str], timeout: float) -> str:
        return self._sandbox(project, file, "exec", "-T", service, *command, timeout=timeout).stdout

    def sandbox_down(self, project: str, file: Path) -> None:
        self._sandbox(project, file, "down", "-v", "--remove-orphans", "--timeout", "10", timeout=300)

    def pull_services(self, stack: Stack, services: Sequence[str]) -> None:
        self._compose(stack, "pull", *services, timeout=self.s.command_timeout)

    def up_gated(self, stack: Stack, settle: float, abort: Callable[[], bool] = lambda: False) -> StackResult:
        """`up -d`, then the health gate: every container with a healthcheck healthy, every
        container running without a restart for `settle` seconds; any exit, restart or
        HEALTH_TIMEOUT fails it, naming the service and its last health output."""
        try:
            self._compose(stack, "up", "-d")
        except CommandError as exc:
            return StackResult(stack.name, False, f"up failed: {compose_error(exc)}")
        started = time.monotonic()
        deadline = started + max(self.s.health_timeout, settle)
        baseline: dict[str, int] = {}
        while True:
            rows = self.containers.describe(stack.name)
            for r in rows:
                baseline.setdefault(r["name"], r["restarts"])
            bad = [r for r in rows if not r["done"] and (r["state"] != "running" or r["health"] == "unhealthy"
                                                          or r["restarts"] > baseline[r["name"]])]
            if bad:
                r = bad[0]
                if r["health"] == "unhealthy":
                    why = "unhealthy"
                elif r["state"] == "running":
                    why = f"restarted {r['restarts'] - baseline[r['name']]} time(s)"
                else:
                    why = r["state"]
                detail = f": {r['last_health']}" if r["last_health"] else ""
                return StackResult(stack.name, False, f"service {r['service']!r} ({r['name']}) {why}{detail}")
            waiting = [r for r in rows if not r["done"] and r["health"] not in ("healthy", "none")]
            now = time.monotonic()
            if not waiting and now - started >= settle:
                return StackResult(stack.name, True, "healthy")
            if abort():
                return StackResult(stack.name, False, "interrupted during the health wait")
            if now >= deadline:
                names = ", ".join(f"{r['service']} ({r['health']})" for r in waiting)
                return StackResult(stack.name, False, f"not healthy after {self.s.health_timeout}s: {names}")
            time.sleep(HEALTH_POLL)

    # -- status ------------------------------------------------------------------------------

    def status(self, names: Sequence[str] | None = None) -> list[StackStatus]:
        """Each stack's containers running/total, state and health: one `docker ps` and one
        `docker inspect` for every stack together (two per stack made `status` at 100 stacks
        200 docker processes one after the other); a stack whose containers changed between
        the two is asked again on its own (`_poll_states`)."""
        rows = []
        found = [d.name for d in self.stack_dirs()]
        wanted = list(names or found)
        for name in wanted:
            if name not in found:
                raise ValidationError(f"unknown stack {name!r} in {self.s.services_dir}; known: {', '.join(found)}")
        ids = self.containers.of_projects(wanted) if wanted else {}
        for name, states in zip(wanted, self._poll_states(wanted, ids), strict=True):
            if isinstance(states, str):
                raise OrchestratorError(f"{name}: its containers cannot be inspected: {states}")
            containers = [row[:3] for row in states]
            running = sum(1 for _n, state, _h in containers if state == "running")
            health = sorted({h for _n, _s, h in containers if h != "none"})
            state = "running" if containers and running == len(containers) else (
                "stopped" if not running else "partial")
            rows.append(StackStatus(name, running, len(containers), state if containers else "absent",
                                    ",".join(health) or "-"))
        return rows
