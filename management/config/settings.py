"""The `Settings` class, built from the table: one frozen attribute per setting, and what every
Settings object can answer besides its values (services, datasets, repositories, secrets, rows).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from management.config.kinds import COMPOSE_FILES, PROJECT_RE, SERVICE_NAME_RE, Setting, VolumePath
from management.config.table import SETTINGS


def stack_folders(services_dir: Path) -> list[str]:
    """Folders of SERVICES_DIR holding a compose file compose picks up by itself, whose name is a
    valid project name (check-stacks names the others). Symlinked folders are followed."""
    try:
        entries = sorted(services_dir.iterdir())
    except OSError:
        return []
    return [d.name for d in entries if not d.name.startswith(".") and PROJECT_RE.match(d.name)
            and SERVICE_NAME_RE.match(d.name) and any((d / c).is_file() for c in COMPOSE_FILES)]


def _compose_file_problem(path: Path) -> str | None:
    """'<file>: <why>' when the file cannot be read, or is not YAML (line and column, as PyYAML
    says); None otherwise. Only the syntax: tags like compose's `!reset` are not constructed."""
    import yaml

    try:
        yaml.compose(path.read_text(), Loader=yaml.SafeLoader)
    except OSError as exc:
        return f"{path}: {exc.strerror}"
    except UnicodeDecodeError as exc:
        return f"{path}: not UTF-8 text (byte {exc.start})"
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return f"{path}:{where}: {getattr(exc, 'problem', None) or exc}"
    return None


class _SettingsMethods:
    """What every Settings object can answer besides its values (the attributes)."""

    env_file: Path
    volume_paths: tuple[VolumePath, ...]

    @property
    def listed_services(self) -> tuple[str, ...]:
        """The services SERVICE_VOLUME_PATHS_AND_OWNERS names, in the order they first appear."""
        seen: dict[str, None] = {}
        for vp in self.volume_paths:
            seen.setdefault(vp.service, None)
        return tuple(seen)

    @property
    def services(self) -> tuple[str, ...]:
        """Every service (= child dataset, borg repository): the listed ones, then every stack
        folder in SERVICES_DIR that none of them names, by name. A stack folder is backed up
        (its folder at least) whether or not a path of it is listed."""
        listed = self.listed_services
        return listed + tuple(n for n in stack_folders(self.services_dir) if n not in listed)

    def stack_problems(self) -> list[str]:
        """What `config check` says of SERVICES_DIR against SERVICE_VOLUME_PATHS_AND_OWNERS, per
        service: a listed service with no stack folder (or one without a compose file), a compose
        file that cannot be read as YAML (syntax only: what it means is compose's answer, in
        check-stacks), and a stack no line lists (only its folder is backed up, no directory of
        it is made or owned). Warnings: the settings themselves are valid."""
        folders = stack_folders(self.services_dir)
        listed = self.listed_services
        out = []
        for service in listed:
            folder = self.services_dir / service
            if service in folders:
                continue
            if folder.is_symlink() and not folder.exists():
                out.append(f"{service}: listed in SERVICE_VOLUME_PATHS_AND_OWNERS, but {folder} is a symlink to "
                           f"{os.readlink(folder)}, which does not exist: nothing of it can start")
            elif not folder.is_dir():
                out.append(f"{service}: listed in SERVICE_VOLUME_PATHS_AND_OWNERS, but {folder} does not exist: its "
                           "dataset is made and backed up, and no stack uses it (a typo, or the stack folder is "
                           "still to come?)")
            else:
                out.append(f"{service}: listed in SERVICE_VOLUME_PATHS_AND_OWNERS, but {folder} holds no compose "
                           f"file ({', '.join(COMPOSE_FILES)}): it is not a stack")
        for service in folders:
            problem = _compose_file_problem(next(self.services_dir / service / c for c in COMPOSE_FILES
                                                 if (self.services_dir / service / c).is_file()))
            if problem:
                out.append(f"{service}: compose cannot read {problem}")
            if service not in listed:
                out.append(f"{service}: no line in SERVICE_VOLUME_PATHS_AND_OWNERS: only its stack folder is backed "
                           f"up, and no directory of its dataset is made or owned; add one per data directory "
                           f"('{service}/data:REMAPPED_ROOT_UID'), or `make adopt SERVICE_NAME={service}` once the "
                           "stack has run (it moves its volumes onto the dataset and writes the lines)")
        return out

    def dataset(self, service: str) -> str:
        return f"{self.zfs_parent_dataset}/{service}"

    def mountpoint(self, service: str) -> Path:
        return self.zfs_base_mountpoint / service

    def repo(self, service: str) -> str:
        return f"{self.borg_repo_base_path.rstrip('/')}/{service}"

    def retention(self, service: str) -> dict[str, str]:
        merged = dict(self.retention_default)
        merged.update(self.retention_overrides.get(service, {}))
        return merged

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in output (masked by the runner and the CLI)."""
        set_secrets = [(s, getattr(self, s.name)) for s in SETTINGS if s.secret]
        out = [value for _, value in set_secrets if value and isinstance(value, str)]
        for s, value in set_secrets:
            if value:
                out.extend(s.kind.secret_extras(value))
        return tuple(out)

    def rows(self) -> list[tuple[str, str, str]]:
        """(key, value as text with secrets replaced, documentation) of every setting, in the
        order of the declaration, for `config show`. A family of keys gives one row per key."""
        out = [("ENV_FILE", str(self.env_file), "The settings file read (--env-file).")]
        for s in SETTINGS:
            value = getattr(self, s.name)
            if s.family:
                out.extend((key, s.kind.show(v), s.described) for key, v in value.items())
            else:
                out.append((s.key, ("***" if value else "") if s.secret else s.kind.show(value), s.described))
        return out

    def masked(self) -> dict[str, str]:
        """Every setting as text, secrets replaced: {key: value}."""
        return {key: value for key, value, _ in self.rows()}


def _field(s: Setting) -> tuple[str, Any, dataclasses.Field]:
    typ, hashable = s.kind.type, s.kind.hashable
    if s.family:
        typ, hashable = dict[str, typ], False
    elif not s.required and s.default is None:
        typ = typ | None
    return s.name, typ, dataclasses.field(repr=not s.secret, hash=None if hashable else False)


Settings = dataclasses.make_dataclass(
    "Settings",
    [("env_file", Path), *(_field(s) for s in SETTINGS)],
    bases=(_SettingsMethods,),
    frozen=True,
)
Settings.__module__ = __name__
Settings.__doc__ = "Every setting's value (attributes named after the keys, in lower case); see SETTINGS."
