"""`make adopt SERVICE_NAME=`: bring a stack's uncovered data onto its dataset without editing
the compose file upstream ships. A writable directory in the stack folder (`copied`: the night's
copy of the folder holds it) is moved too: on the dataset it is in the snapshot and local history.

    plan (DRY_RUN=1 stops here: every move with its size)
    -> lock -> free space on the pool -> stop the stack
    -> per mount: copy the docker volume / directory into the dataset (numeric owners, modes,
       ACLs, xattrs, hard links, sparse files), verify the two trees are equal, rename into place
    -> an override compose merges by itself (each moved mount replaced by target with a bind of
       the dataset directory), and compose's resolved model checked to show the binds on it
    -> the new paths in SERVICE_VOLUME_PATHS_AND_OWNERS (.env, validated before it is replaced)
    -> `up` (the containers are recreated with the new mounts), healthy

Any failure, and SIGINT/SIGTERM, on the way puts back what was there (compose files, .env, the
copies removed) and starts the stack as it was: it runs on its old data. Nothing old is removed:
each volume or directory stays, named in the state (adopted.json), until `adopt --remove-old`.
Compose v1 is refused: its merge of `volumes:` by target is not what v2 does.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from management.config import COMPOSE_FILES, load_settings
from management.cycles.context import Cycle
from management.cycles.frame import RunFrame
from management.errors import OrchestratorError, ValidationError, brief
from management.lock import SignalGuard
from management.stacks.compose_file import Stack
from management.stacks.coverage import COPIED, UNCOVERED, Coverage, stack_coverage
from management.stacks.trees import compare_trees, walk
from management.state import AdoptedMove, write_atomic
from management.text import human_size
from management.tools.files import Files

MARKER = "# Managed by orchestrator (make adopt): the stack's data on its ZFS dataset."
OWN_FILE = "compose.orchestrator.yaml"
NAME_RE = re.compile(r"[^A-Za-z0-9_.-]+")
SPACE_MARGIN = 1.1  # the copies may take this much more than the sum of file sizes (metadata, blocks)


@dataclass
class Move:
    """One mount to bring onto the dataset."""

    service: str  # the compose service
    target: str  # its path in the container
    kind: str  # volume | bind
    source: str  # the volume's name in docker, or the host directory
    path: Path | None  # where its bytes are now on the host (None: a volume never created)
    destination: Path  # the directory on the dataset
    bytes: int = 0
    uid: int = 0
    gid: int = 0
    copy: bool = True  # False: another service mounts the same volume or directory, copied once

    def line(self) -> str:
        what = f"volume {self.source}" if self.kind == "volume" else self.source
        size = human_size(self.bytes) if self.path else "empty (never created)"
        return f"{self.service}:{self.target}: {what} -> {self.destination} ({size}, owner {self.uid}:{self.gid})"


@dataclass
class Plan:
    stack: str
    moves: list[Move] = field(default_factory=list)
    left: list[str] = field(default_factory=list)  # uncovered mounts adopt cannot move, with why

    @property
    def bytes(self) -> int:
        return sum(m.bytes for m in self.moves)


def disk_usage(root: Path) -> int:
    """Bytes the files below `root` take on disk: each inode once (hard links), holes left out."""
    seen, total = set(), 0
    for _rel, st in walk(root):
        if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


def override_name(compose_file: Path) -> str:
    """The override compose merges by itself beside this compose file."""
    stem, suffix = compose_file.name.rsplit(".", 1)
    return f"{stem}.override.{suffix}"


def override_text(moves: Sequence[Move], earlier: str = "") -> str:
    """Each moved mount replaced by target (compose v2 merges a service's volumes by target).
    `earlier`: the file an earlier adopt of the stack wrote; its moves stay (one moved again, by
    the same service and target, is replaced), so a second adopt adds to the first."""
    binds: dict[tuple[str, str], str] = {}
    for service, spec in ((yaml.safe_load(earlier) or {}).get("services") or {}).items() if earlier else ():
        for volume in (spec or {}).get("volumes") or []:
            if isinstance(volume, dict) and volume.get("target") and volume.get("source"):
                binds[(str(service), str(volume["target"]))] = str(volume["source"])
    for m in moves:
        binds[(m.service, m.target)] = str(m.destination)
    lines = [MARKER, "# Written by `make adopt`; the data that was elsewhere is on the dataset now.", "services:"]
    by_service: dict[str, list[tuple[str, str]]] = {}
    for (service, target), source in binds.items():
        by_service.setdefault(service, []).append((source, target))
    for service, binds_of in by_service.items():
        lines += [f"  {service}:", "    volumes:"]
        for source, target in binds_of:
            lines += ["      - type: bind", f"        source: {source}", f"        target: {target}"]
    return "\n".join(lines) + "\n"


def compose_file_of(env_text: str) -> list[str] | None:
    """The files a stack's .env names in COMPOSE_FILE (':'-separated), or None."""
    for line in reversed(env_text.splitlines()):
        match = re.match(r"^\s*(?:export\s+)?COMPOSE_FILE\s*=\s*(.*)$", line)
        if match:
            value = match.group(1).strip().strip("'\"")
            return [f for f in value.split(":") if f] or None
    return None


def with_compose_file(env_text: str, files: Sequence[str]) -> str:
    """The stack's .env with COMPOSE_FILE naming `files` (replacing one that is there)."""
    line = "COMPOSE_FILE=" + ":".join(files)
    kept = [ln for ln in env_text.splitlines() if not re.match(r"^\s*(export\s+)?COMPOSE_FILE\s*=", ln)]
    return "\n".join([*kept, line]) + "\n"


def with_volume_lines(env_text: str, lines: Sequence[str]) -> str:
    """The tool's .env with `lines` added inside SERVICE_VOLUME_PATHS_AND_OWNERS="...";
    ValidationError when the value is not the multi-line double-quoted form the docs show."""
    match = re.search(r'^(SERVICE_VOLUME_PATHS_AND_OWNERS\s*=\s*")(.*?)(")', env_text, re.M | re.S)
    if not match:
        raise ValidationError('SERVICE_VOLUME_PATHS_AND_OWNERS is not written as a double-quoted value ("...")')
    body = match.group(2).rstrip("\n")
    new_body = "\n".join([body, *lines]) + "\n" if body else "\n" + "\n".join(lines) + "\n"
    return env_text[:match.start(2)] + new_body + env_text[match.end(2):]


def uid_key_for(uid: int, remapped: dict[str, int], service: str, name: str) -> tuple[str, str | None]:
    """A REMAPPED_*_UID key whose value is `uid`, or a new one (key, its line to add)."""
    for key, value in sorted(remapped.items()):
        if value == uid:
            return key, None
    key = "REMAPPED_" + re.sub(r"[^A-Za-z0-9]+", "_", f"{service}_{name}").upper().strip("_") + "_UID"
    return key, f"{key}={uid}"


class AdoptOrchestrator(Cycle):
    """Moves a stack's uncovered data onto its dataset (see the module docstring)."""

    # -- the plan ---------------------------------------------------------------------------

    def plan(self, service: str) -> Plan:
        stack = self._stack(service)
        base = self.s.zfs_base_mountpoint
        plan = Plan(service)
        taken: set[str] = set()
        planned: dict[tuple[str, str], Move] = {}  # (kind, source) -> its first move
        for cov in stack_coverage(stack, base, list(self.s.services)):
            if cov.verdict not in (UNCOVERED, COPIED):
                continue
            mount = next(m for m in stack.mounts if m.service == cov.service and m.target == cov.target)
            if cov.verdict == COPIED and Path(mount.source).is_file():
                continue  # a file the stack folder's copy holds whole: nothing wrong, and adopt moves directories
            if mount.kind == "volume" and not mount.source:
                plan.left.append(f"{cov.service}:{cov.target}: an anonymous volume; name it in the compose file "
                                 "first (volumes: [name:{target}]) or declare it ephemeral")
                continue
            if mount.kind == "volume" and mount.external:
                plan.left.append(f"{cov.service}:{cov.target}: volume {mount.source} is external (shared, made "
                                 "outside this stack); move it by hand")
                continue
            first = planned.get((mount.kind, mount.source))
            if first is not None:  # the same volume or directory in another service: moved once
                plan.moves.append(Move(cov.service, cov.target, first.kind, first.source, first.path,
                                       first.destination, 0, first.uid, first.gid, copy=False))
                continue
            name = self._unique(NAME_RE.sub("-", mount.source if mount.kind == "volume"
                                            else Path(mount.source).name).strip("-.") or "data", taken)
            destination = self.s.mountpoint(service) / name
            if os.path.lexists(destination):
                plan.left.append(f"{cov.service}:{cov.target}: {destination} already exists; move it away first")
                continue
            if mount.kind == "volume":
                source, path = mount.volume_name, self.docker.volumes.path(mount.volume_name)
            else:
                # through a symlink out of the stack folder: its copy and its size are what it leads to
                source, path = mount.source, Path(os.path.realpath(mount.source))
                if path.exists() and not path.is_dir():
                    plan.left.append(f"{cov.service}:{cov.target}: {path} is a file; mount it read-only (':ro') "
                                     "if it is configuration, or move it into a directory first")
                    continue
                path = path if path.exists() else None
            move = Move(cov.service, cov.target, mount.kind, source, path, destination)
            if path is not None:
                st = path.stat()
                move.uid, move.gid = st.st_uid, st.st_gid
                move.bytes = disk_usage(path)
            else:
                # never created (a stack adopted before its first start): owned as docker would
                # create it under userns-remap, by the container's root; owned by the host's root,
                # the container could not write it (nor chown it to its own user)
                move.uid = move.gid = self.s.subid_start
            plan.moves.append(move)
            planned[(mount.kind, mount.source)] = move
        return plan

    @staticmethod
    def _unique(name: str, taken: set[str]) -> str:
        out, n = name, 2
        while out in taken:
            out, n = f"{name}-{n}", n + 1
        taken.add(out)
        return out

    def _stack(self, service: str) -> Stack:
        if service not in self.docker.discover_names():
            raise ValidationError(f"no stack folder {service!r} in {self.s.services_dir}")
        if self.docker.is_v1:
            raise ValidationError("adopt needs compose v2: v1 does not merge a service's volumes by target the way "
                                  "the override relies on; install compose v2 (docs/services.md)")
        self.docker.forget([service])
        [stack] = self.docker.stacks([service])
        if stack.error:
            raise ValidationError(f"compose cannot read {stack.file}: {stack.error}")
        return stack

    # -- the run ----------------------------------------------------------------------------

    def adopt(self, service: str, dry_run: bool = False) -> Plan:
        plan = self.plan(service)
        for line in plan.left:
            self.echo(f"left as it is: {line}")
        if not plan.moves:
            self.echo(f"adopt: nothing of {service} to bring onto {self.s.dataset(service)}")
            return plan
        for m in plan.moves:
            self.echo(f"{'would move' if dry_run else 'move'} {m.line()}" if m.copy else
                      f"{m.service}:{m.target}: the same {m.destination.name}, bound there too")
        self.echo(f"adopt: {len(plan.moves)} mount(s), {human_size(plan.bytes)} in all")
        if dry_run:
            return plan
        with RunFrame(self, "adopt") as frame:
            self._check_space(plan)
            self._run(plan, frame.guard)
        return plan

    def _check_space(self, plan: Plan) -> None:
        dataset = self.s.dataset(plan.stack)
        if not self.zfs.is_mounted(dataset):
            raise ValidationError(f"{dataset} is not mounted: run `make setup-storage` first")
        free = int(self.zfs.get("available", dataset))
        if plan.bytes * SPACE_MARGIN > free:
            raise ValidationError(f"the pool has {human_size(free)} free for {dataset}, the data takes "
                                  f"{human_size(plan.bytes)}: nothing was stopped or copied")

    def _run(self, plan: Plan, guard: SignalGuard) -> None:
        stack = self._stack(plan.stack)
        undo = _Undo(self.runner)
        was_running = plan.stack in self.docker.running_stacks()
        try:
            with guard.critical():
                self._expect_ok(self.docker.stop([plan.stack]), "stop")
            for m in plan.moves:  # a signal here interrupts the copy: everything is put back
                if m.copy:
                    self._copy(m, undo)
            with guard.critical():  # files are written whole or not at all
                self._write_compose(stack, plan, undo)
                self._write_env(plan, undo)
            self.docker.forget([plan.stack])
            self._verify_model(plan)
            if was_running:
                with guard.critical():
                    self._expect_ok(self.docker.up([plan.stack]), "up")
        except BaseException as exc:
            self.echo(f"adopt: {brief(exc) if isinstance(exc, OrchestratorError) else exc}; putting everything back")
            with guard.critical():
                undo.run(self.echo)
                self.docker.forget([plan.stack])
                if was_running:
                    self.docker.up([plan.stack])
            raise
        self._record(plan)
        state = "runs" if was_running else "(left stopped, as it was) will run"
        self.echo(f"adopt: {plan.stack} {state} on {self.s.dataset(plan.stack)}; the old data stays until "
                  f"`make adopt SERVICE_NAME={plan.stack} REMOVE_OLD=1`")

    @staticmethod
    def _expect_ok(results, verb: str) -> None:
        bad = [r for r in results if not r.ok]
        if bad:
            raise OrchestratorError(f"{verb} failed: {bad[0].message}")

    def _copy(self, m: Move, undo: _Undo) -> None:
        tmp = m.destination.with_name(f".{m.destination.name}.adopting")
        if os.path.lexists(tmp):
            Files(self.runner).remove_tree(tmp)  # a killed adopt's
        undo.remove(tmp)
        if m.path is None:
            tmp.mkdir(mode=0o755)
            os.chown(tmp, m.uid, m.gid)
        else:
            self.echo(f"copying {m.path} -> {m.destination} ({human_size(m.bytes)})")
            Files(self.runner).copy_tree(m.path, tmp, sparse=True, timeout=float(self.s.borg_timeout))
            cmp = compare_trees(m.path, tmp)
            if cmp.differences:
                raise OrchestratorError(f"the copy of {m.path} differs: {'; '.join(cmp.differences[:3])}")
        os.rename(tmp, m.destination)
        undo.remove(m.destination)

    def _write_compose(self, stack: Stack, plan: Plan, undo: _Undo) -> None:
        """The override compose merges by itself when the stack has none and its .env names no
        COMPOSE_FILE; otherwise our own file, added to COMPOSE_FILE in the stack's .env (compose
        reads it there), so a plain `docker compose up` in the folder uses it too. A file an
        earlier adopt of the stack wrote gets these moves added, its own stay (chaos campaign,
        seed 37: a second adopt rewrote it with its moves alone, and the first adopt's service
        went back to its old volume)."""
        env = stack.dir / ".env"
        env_text = env.read_text() if env.exists() else ""
        named = compose_file_of(env_text)
        existing = [stack.dir / override_name(stack.dir / f) for f in COMPOSE_FILES
                    if (stack.dir / override_name(stack.dir / f)).exists()]
        ours = [f for f in (stack.dir / OWN_FILE, *existing) if f.is_file() and f.read_text().startswith(MARKER)]
        target = ours[0] if ours else None
        if target is None and named is None and not existing:
            target = stack.dir / override_name(stack.file)
        if target is not None and target.name != OWN_FILE:  # the override: compose merges it by itself
            earlier = target.read_text() if target.exists() else ""
            self._will_write(undo, target, earlier)
            write_atomic(target, override_text(plan.moves, earlier))
            self.echo(f"wrote {target} (compose merges it by itself)")
            return
        own = stack.dir / OWN_FILE
        earlier = own.read_text() if target == own else ""
        self._will_write(undo, own, earlier)
        write_atomic(own, override_text(plan.moves, earlier))
        files = [f for f in named or [stack.file.name, *(p.name for p in existing[:1])] if f != OWN_FILE] + [OWN_FILE]
        if files != named:
            undo.restore(env, env_text if env.exists() else None)
            mode = env.stat().st_mode & 0o777 if env.exists() else 0o644
            write_atomic(env, with_compose_file(env_text, files), mode=mode)
        self.echo(f"wrote {own} and COMPOSE_FILE={':'.join(files)} in {env}")

    @staticmethod
    def _will_write(undo: _Undo, path: Path, earlier: str) -> None:
        """An undo puts back what an earlier adopt wrote, or removes a file this one made."""
        if earlier:
            undo.restore(path, earlier)
        else:
            undo.remove(path)

    def _write_env(self, plan: Plan, undo: _Undo) -> None:
        env = self.s.env_file
        text = env.read_text()
        keys, new_keys = [], []
        for m in [m for m in plan.moves if m.copy]:
            key, line = uid_key_for(m.uid, dict(self.s.remapped_uids), plan.stack, m.destination.name)
            keys.append(f"{plan.stack}/{m.destination.name}:{key}" + ("" if m.gid == m.uid else
                                                                      f":{self._gid_key(m, plan, new_keys)}"))
            if line and line not in new_keys:
                new_keys.append(line)
        updated = with_volume_lines(text, keys)
        if new_keys:
            updated = updated.rstrip("\n") + "\n" + "\n".join(new_keys) + "\n"
        probe = env.with_name(f".{env.name}.adopt-check")
        try:
            write_atomic(probe, updated, mode=0o600)
            load_settings(probe)  # the whole file as the next run will read it
        finally:
            probe.unlink(missing_ok=True)
        undo.restore(env, text)
        write_atomic(env, updated, mode=env.stat().st_mode & 0o777)
        self.echo(f"added to SERVICE_VOLUME_PATHS_AND_OWNERS in {env}: {', '.join(keys)}")

    def _gid_key(self, m: Move, plan: Plan, new_keys: list[str]) -> str:
        key, line = uid_key_for(m.gid, dict(self.s.remapped_uids), plan.stack, f"{m.destination.name}-group")
        if line and line not in new_keys:
            new_keys.append(line)
        return key

    def _verify_model(self, plan: Plan) -> None:
        stack = self._stack(plan.stack)
        by_target = {(c.service, c.target): c for c in stack_coverage(stack, self.s.zfs_base_mountpoint,
                                                                      list(self.s.services))}
        wrong = [m for m in plan.moves if by_target.get((m.service, m.target), _NONE).source != str(m.destination)]
        if wrong:
            raise OrchestratorError("compose's resolved model does not show the new binds for "
                                    + ", ".join(f"{m.service}:{m.target}" for m in wrong))

    def _record(self, plan: Plan) -> None:
        records = self.state.adopted()
        records.setdefault(plan.stack, []).extend(
            AdoptedMove(m.service, m.target, m.kind, m.source, str(m.destination), self.clock())
            for m in plan.moves if m.copy)
        self.state.save_adopted(records)

    # -- removing what adopt left -----------------------------------------------------------

    def remove_old(self, service: str, dry_run: bool = False) -> list[str]:
        """Remove the old volumes and directories adopt recorded for this stack (nothing else)."""
        records = self.state.adopted()
        entries = records.get(service, [])
        done = []
        for entry in entries:
            what = f"volume {entry.old}" if entry.kind == "volume" else entry.old
            if dry_run:
                self.echo(f"would remove {what} (now at {entry.new})")
                continue
            if entry.kind == "volume":
                self.docker.volumes.remove(entry.old)
            elif os.path.isdir(entry.old) and not os.path.islink(entry.old):
                shutil.rmtree(entry.old)
            self.echo(f"removed {what}")
            done.append(what)
        if not dry_run:
            records.pop(service, None)
            self.state.save_adopted(records)
        if not entries:
            self.echo(f"adopt: nothing recorded for {service}")
        return done


_NONE = Coverage("", "", "", "", "", "")


class _Undo:
    """What to put back, newest first, when an adopt does not get through."""

    def __init__(self, runner):
        self.runner = runner
        self.steps: list[tuple[str, Path, str | None]] = []

    def remove(self, path: Path) -> None:
        self.steps.append(("remove", path, None))

    def restore(self, path: Path, text: str | None) -> None:
        self.steps.append(("restore", path, text))

    def run(self, echo) -> None:
        for kind, path, text in reversed(self.steps):
            try:
                if kind == "restore":
                    if text is None:
                        path.unlink(missing_ok=True)
                    else:
                        write_atomic(path, text, mode=path.stat().st_mode & 0o777 if path.exists() else 0o600)
                elif os.path.lexists(path):
                    if path.is_dir() and not path.is_symlink():
                        Files(self.runner).remove_tree(path)
                    else:
                        path.unlink()
            except (OrchestratorError, OSError) as exc:
                echo(f"warning: could not put back {path}: {exc}")


def asdicts(plan: Plan) -> dict:
    return {"stack": plan.stack, "bytes": plan.bytes, "left": plan.left,
            "moves": [asdict(m) | {"path": str(m.path) if m.path else None, "destination": str(m.destination)}
                      for m in plan.moves]}

