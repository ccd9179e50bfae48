"""Run the steps: for each, the day's changes, the operation with its faults fired at their
moments, the faults undone, then every invariant. A violation stops the campaign with the
seed, the step and the command that replays it."""

from __future__ import annotations

import hashlib
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.chaos import invariants
from tests.chaos.faults import CATALOGUE, Armed
from tests.chaos.plan import Step, draw, step_rng
from tests.chaos.world import Run, World, alive

RUN_TIMEOUT = 900  # a run that takes longer has hung: a violation


@dataclass
class Tally:
    seed: int
    steps: int = 0
    seconds: float = 0.0
    ops: Counter = field(default_factory=Counter)
    armed: Counter = field(default_factory=Counter)
    fired: Counter = field(default_factory=Counter)
    exits: Counter = field(default_factory=Counter)
    heals: int = 0
    violations: list[str] = field(default_factory=list)
    failed_step: int = 0

    def table(self) -> str:
        rows = [f"Seed {self.seed}: {self.steps} steps in {self.seconds / 60:.1f} min, "
                f"{len(self.violations)} violation(s), {self.heals} nights after a fault, each OK "
                f"(nights to heal: {'1' if self.heals and not self.violations else '-'}).", "",
                "| operation | steps |", "|---|---|"]
        rows += [f"| {op} | {n} |" for op, n in self.ops.most_common()]
        rows += ["", "| fault | what | armed | fired |", "|---|---|---|---|"]
        rows += [f"| {name} | {f.what} | {self.armed[name]} | {self.fired[name]} |" for name, f in CATALOGUE.items()]
        rows += ["", "| exit code of the step's run | steps |", "|---|---|"]
        rows += [f"| {code} | {n} |" for code, n in sorted(self.exits.items(), key=lambda kv: str(kv[0]))]
        return "\n".join(rows)


class Campaign:
    def __init__(self, world: World, seed: int, say=print, log_dir: Path | None = None):
        self.world, self.seed, self.say = world, seed, say
        self.log_dir = log_dir or world.lab.dir / "chaos" / f"seed-{seed}"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.versions: dict[tuple[str, str], set[str]] = {}  # (service, file) -> every content it had
        self.networks = invariants.current_networks(world)
        self.points: invariants.RestorePoints | None = None  # after the first night
        self.tally = Tally(seed)
        self.night_files: dict[str, set[str]] = {}  # service -> its files as its last good night held them
        self.last_archive: dict[str, str] = {}  # service -> the archive its last good night reported
        self.pending_adopt = ""  # a spoke whose adopt a fault broke: the night after adopts it again first
        for service in world.cycle.spokes:
            for path in world.data(service).rglob("*"):
                if path.is_file():
                    rel = str(path.relative_to(world.data(service)))
                    self.versions.setdefault((service, rel), set()).add(_digest(path.read_bytes()))

    def run(self, nights: int, first: int = 1, minutes: float | None = None) -> Tally:
        """`nights` steps, or fewer when `minutes` run out first (the table says how many ran)."""
        heal = False
        started = time.monotonic()
        first_night = self.world.run("backup", "--json")
        self.note_night(first_night)
        self.points = invariants.RestorePoints(self.world)
        if first_night.code != 0:
            self.tally.violations = [f"the first night, before any fault, failed:\n{first_night.output[-3000:]}"]
            return self.tally
        for index in range(first, first + nights):
            if minutes is not None and time.monotonic() - started > minutes * 60 and not heal:
                self.say(f"chaos: {minutes:g} minutes are up after {self.tally.steps} steps")
                break
            step = draw(self.seed, index, heal=heal)
            t0 = time.monotonic()
            runs, violations = self.step(step)
            self.tally.steps += 1
            self.tally.ops[step.op] += 1
            self.tally.heals += step.heal
            code = runs[0].code if runs else None
            self.tally.exits[code] += 1
            fired = [a for a in step.faults if a.fired]
            calls = runs[0].calls if runs else 0
            self.say(f"step {index:>4}  {step.label():<60} exit {code}  {time.monotonic() - t0:5.1f}s {calls:3d} cmds"
                     + (f"  fired: {'; '.join(a.fired for a in fired)}" if fired else ""))
            self.keep_log(step, runs, violations)
            if violations:
                self.tally.violations = violations
                self.tally.failed_step = index
                self.say(self.violation_report(step, violations))
                break
            heal = bool(fired) or (code not in (0, None) and not step.heal)
        self.tally.seconds = time.monotonic() - started
        return self.tally

    def keep_log(self, step: Step, runs: list[Run], violations: list[str]) -> None:
        """Each step's runs, whole, in LAB_DIR/chaos/seed-S/step-NNNN.txt (the table says where)."""
        parts = [f"step {step.index}: {step.label()}"]
        parts += [f"fault {a.label()}: {a.fired or 'not reached'}" for a in step.faults]
        for r in runs:
            parts.append(f"\n$ {' '.join(r.args)}   (exit {r.code}, {r.seconds:.1f}s, {r.calls} commands)")
            parts += [r.stdout, r.stderr]
        parts += [f"VIOLATION: {v}" for v in violations]
        (self.log_dir / f"step-{step.index:04d}.txt").write_text("\n".join(parts) + "\n")

    def violation_report(self, step: Step, violations: list[str]) -> str:
        lines = [f"VIOLATION at step {step.index} of seed {self.seed}: {step.label()}"]
        lines += [f"  - {v}" for v in violations]
        lines.append(f"the step's runs, whole: {self.log_dir / f'step-{step.index:04d}.txt'}")
        lines.append(f"replay: make chaos SEED={self.seed} NIGHTS={step.index}   (the same steps up to this one)")
        return "\n".join(lines)

    # --- one step ----------------------------------------------------------------------------------

    def step(self, step: Step) -> tuple[list[Run], list[str]]:
        w = self.world
        setup = self.day(step)
        before = w.cycle.containers()
        if self.points:
            self.points.start()
        for armed in step.faults:
            self.tally.armed[armed.fault.name] += 1
        run, extra = self.operate(step)
        for armed in reversed(step.faults):
            armed.fault.undo(w, armed)
            if armed.fired:
                self.tally.fired[armed.fault.name] += 1
        runs = [run, *setup, *extra]
        second = [a.extra for a in step.faults if a.fault.name == "second-run" and isinstance(a.extra, tuple)]
        runs += [Run(("backup",), code, out, "", 0.0) for code, out in second]
        crashed = any(a.fired and a.fault.crash for a in step.faults)
        violations = []
        if run.code is None:
            violations.append(f"`{' '.join(run.args)}` hung for {RUN_TIMEOUT} s and was killed")
        violations += [f"the second run exited {code}:\n{out[-1500:]}" for code, out in second if code not in (0, 1, 4)]
        if run.code not in (0, None) and not any(a.fired for a in step.faults):
            violations.append(f"`{' '.join(run.args)}` failed (exit {run.code}) with no fault fired")
        violations += [f"`{' '.join(r.args)}` before the step failed (exit {r.code}):\n{r.output[-2000:]}"
                       for r in setup if r.code != 0]
        if step.op == "adopt" and (run.code != 0 or any(a.fired for a in step.faults)):
            self.pending_adopt = step.service
        violations += invariants.no_traceback(runs)
        violations += invariants.stacks(w, before, runs, crashed)
        violations += invariants.leftovers(w, self.networks, crashed)
        violations += invariants.state_files(w)
        violations += invariants.secrets(w, runs)
        if self.points:
            violations += self.points.check(runs, crashed)
        violations += self.restored_file(step, run)
        if step.op in ("backup", "backup-one"):
            self.note_night(run)
        if step.heal:
            violations += invariants.healed(run)
            self.follow_hint(run)
        if not violations and step.op in ("backup", "backup-one"):
            found, drill = invariants.archives_equal_snapshots(w, run)
            violations += found
            if drill:
                violations += invariants.no_traceback([drill]) + invariants.secrets(w, [drill])
        return runs, violations

    def follow_hint(self, run: Run) -> None:
        """What a person does after the night that healed: a cut prune_holds.json makes every prune
        wait until it is put back or removed (the tool says so), and the campaign removes it."""
        holds = Path(self.world.cycle.values["STATE_DIR"]) / "prune_holds.json"
        if "remove it to lift every hold" in run.output and str(holds) in self.world.truncated:
            holds.unlink()
            del self.world.truncated[str(holds)]

    def day(self, step: Step) -> list[Run]:
        """The day's writes before the operation (content from the seed, so a replay writes the
        same); before an adopt, a new service with its data in a docker volume, started; before
        the night after a broken adopt, that adopt again. Returns the runs it made (each must pass)."""
        rng = step_rng(self.seed, step.index * 7 + 1)
        for service, rel, size in step.changes:
            content = rng.randbytes(size)
            self.world.write(service, rel, content)
            self.versions.setdefault((service, rel), set()).add(_digest(content))
        if step.op == "adopt":
            self.world.add_uncovered(step.service)
            return [self.world.run("docker-up", step.service)]
        if step.heal and self.pending_adopt:
            spoke, self.pending_adopt = self.pending_adopt, ""
            return [self.world.run("adopt", spoke, "--yes")]
        return []

    def operate(self, step: Step) -> tuple[Run, list[Run]]:
        w, extra = self.world, []
        if step.op == "backup":
            args = ("backup", "--json")
        elif step.op == "backup-one":
            args = ("backup", "--json", step.service)
        elif step.op == "drill":
            args = ("drill", "--json")
        elif step.op == "update":
            if step.pick % 2:
                w.push_new_spoke_image()
            args = ("update", "--yes")
        elif step.op == "reboot":
            w.reboot()
            args = ("docker-up",)
        elif step.op == "adopt":
            args = ("adopt", step.service, "--yes")
        elif step.op == "restore-path":
            rel = self.damaged_file(step)
            args = ("restore-path", step.service, f"data/{rel}", "--yes")  # FILE is in the dataset
        else:  # restore: data and stack folder from the archive of the service's last good night
            # (not the one dated latest: a night with the clock ahead dated an older one later)
            listing = w.run("list-archives", step.service)
            extra.append(listing)
            names = [line.split()[0] for line in listing.stdout.splitlines()
                     if line.startswith(f"{step.service}-")]
            if not names:
                return listing, []
            chosen = self.last_archive.get(step.service)
            args = ("restore", step.service, chosen if chosen in names else names[-1], "--yes")
        return self.with_faults(args, step.faults), extra

    def note_night(self, run: Run) -> None:
        """The files each service's good night in `run` held (restore-path takes one of them back)."""
        for d in run.json().get("datasets", []):
            if d.get("result") in invariants.GOOD and d.get("service") in self.world.cycle.spokes:
                self.night_files[d["service"]] = {rel for (svc, rel) in self.versions if svc == d["service"]}
                if d.get("archive"):
                    self.last_archive[d["service"]] = d["archive"]

    def damaged_file(self, step: Step) -> str:
        """A file the service's last good night held, broken by the user today: restore-path
        brings it back."""
        files = sorted(self.night_files.get(step.service, ()))
        rel = files[step.pick % len(files)] if files else "index.html"
        path = self.world.data(step.service) / rel
        if path.is_file():
            path.write_bytes(b"broken by the user today\n")
        return rel

    def restored_file(self, step: Step, run: Run) -> list[str]:
        if step.op != "restore-path" or run.code != 0 or len(run.args) < 3:
            return []
        rel = run.args[2].removeprefix("data/")
        known = self.versions.get((step.service, rel))
        path = self.world.data(step.service) / rel
        if known is None or not path.is_file():
            return [] if known is None else [f"restore-path said OK and {path} is missing"]
        if _digest(path.read_bytes()) not in known:
            return [f"restore-path said OK and {step.service}/{rel} holds none of the versions it ever had"]
        return []

    def with_faults(self, args: tuple[str, ...], faults: list[Armed]) -> Run:
        w = self.world
        clock = next((a.clock for a in faults if a.fault.name == "clock-moved"), None)
        for armed in faults:
            if armed.fault.at_start:
                armed.fired = armed.fault.fire(w, armed)
        base = w.call_count()
        t0 = time.monotonic()
        proc = w.start(*args, clock=clock)
        watchers = []
        for armed in faults:
            armed.pid, armed.base = proc.pid, base
            if not armed.fault.at_start:
                t = threading.Thread(target=self._fire_at, args=(armed, proc, t0), daemon=True)
                t.start()
                watchers.append(t)
        try:
            out, err = proc.communicate(timeout=RUN_TIMEOUT)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            code = None
        for t in watchers:
            t.join(timeout=120)
        # children of a killed tool run on (their own sessions): let them end as they would
        self._wait_orphans(base)
        return Run(args, code, out, err, time.monotonic() - t0, w.call_count() - base)

    def _fire_at(self, armed: Armed, proc, t0: float) -> None:
        kind, value = armed.moment
        while proc.poll() is None:
            reached = (self.world.call_count() - armed.base >= value) if kind == "call" \
                else (time.monotonic() - t0 >= value)
            if reached:
                armed.fired = armed.fault.fire(self.world, armed)
                return
            time.sleep(0.01)

    def _wait_orphans(self, base: int, limit: float = 300) -> None:
        deadline = time.monotonic() + limit
        for pid, _ in self.world.calls_since(base):
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def main(nights: int, seed: int, keep: bool = False, minutes: float | None = None) -> int:
    say = lambda line: print(line, flush=True)  # noqa: E731 - progress, one line a step
    say(f"chaos: seed {seed}, {nights} steps; building the lab's hub and two spokes")
    world = World.build()
    try:
        tally = Campaign(world, seed, say).run(nights, minutes=minutes)
    finally:
        if keep:
            say(f"chaos: --keep: the lab's cycle stays ({world.cycle.env_path})")
        else:
            world.teardown()
    say("")
    say(tally.table())
    return 1 if tally.violations else 0

