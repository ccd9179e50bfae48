"""The key of compose's model of one stack across runs: a digest of everything `compose config`
could read to print it, so that `status` and `check-stacks` at 100 stacks need not start 100
compose processes when nothing changed (issue 38). Compose stays the only parser: this module
never reads what a file means, only which files and variables a model could depend on, and it
over-approximates. A miss costs one `config`, as without a cache; a stale hit would be wrong,
so whatever it cannot pin down makes the stack uncacheable (None).

What goes into the key:
- the compose program: the executables that would run (`docker` and every compose plugin on
  docker's plugin path, or `docker-compose`), by path, size and mtime: an upgrade is a miss;
- the stack folder's path, and every entry directly in it: files by name, size, mtime and (up to
  1 MiB) content, folders by name. Compose files, overrides, `.env`, COMPOSE_FILE's targets in the
  folder: all are there;
- every file that a string in any of those YAML files names (relative to the stack folder or to
  the file naming it), by content, and recursively for YAML files (an `include:`, an `extends:`
  file, an `env_file:` anywhere);
- the variables compose could interpolate or obey: every `$NAME` / `${NAME` written in any input
  file, every COMPOSE_* and DOCKER_* variable, PATH and HOME, with their values.

Uncacheable: a compose file YAML cannot parse (compose may still: its own error then comes
from compose), a `$` inside a value that names a file (env_file, include, extends, label_file,
...: the file is known only after interpolation), or a remote include (git, oci, http).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path

import yaml

CONTENT_LIMIT = 1 << 20  # bytes of a file hashed by content; a bigger one by size and mtime
DEPTH = 5  # YAML files naming YAML files, at most this deep
FILE_KEYS = frozenset({"env_file", "include", "extends", "file", "path", "label_file", "project_directory",
                       "env_files"})
VAR_RE = re.compile(rb"\$\{?([A-Za-z_][A-Za-z0-9_]*)")
REMOTE_RE = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|git@|oci:)", re.IGNORECASE)
PLUGIN_DIRS = ("/usr/local/lib/docker/cli-plugins", "/usr/local/libexec/docker/cli-plugins",
               "/usr/lib/docker/cli-plugins", "/usr/libexec/docker/cli-plugins")
YAML_SUFFIXES = (".yaml", ".yml")
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's: 100 stacks' files in ms, not a second


class Uncacheable(Exception):
    pass


def model_key(folder: Path, base: tuple[str, ...], env: Mapping[str, str]) -> str | None:
    """The key of the model `base config` prints in `folder` with environment `env`, or None."""
    try:
        parts: list[str] = [f"folder {folder.resolve()}", *_programs(base, env)]
        seen: dict[Path, bytes] = {}
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.is_dir():
                parts.append(f"dir {entry.name}")
            elif entry.is_file():
                parts.append(f"file {entry.name} {_file_digest(Path(entry.path), seen)}")
        for path in list(seen):
            if path.suffix in YAML_SUFFIXES:
                _follow(path, folder, seen, parts, DEPTH)
        dotenv = seen.get((folder / ".env").resolve(), b"")
        for value in _compose_file_settings(dotenv):  # COMPOSE_FILE=a.yaml:more/b.yaml, in .env
            _name(value, folder, folder, seen, parts, DEPTH)
        names: set[str] = set()
        for content in seen.values():
            names.update(n.decode() for n in VAR_RE.findall(content))
        names.update(k for k in env if k.startswith(("COMPOSE_", "DOCKER_")) or k in ("PATH", "HOME"))
        parts += [f"var {n}={env[n]!r}" if n in env else f"var {n} unset" for n in sorted(names)]
    except Uncacheable:
        return None
    except OSError:
        return None  # a file vanished under us: compose will say what it sees
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _compose_file_settings(dotenv: bytes) -> Iterator[str]:
    """The paths `.env` gives compose itself (COMPOSE_FILE, COMPOSE_ENV_FILES, ...), one by one."""
    for line in dotenv.decode(errors="replace").splitlines():
        name, _, value = line.strip().removeprefix("export ").partition("=")
        if name.strip() in ("COMPOSE_FILE", "COMPOSE_ENV_FILES", "COMPOSE_PROJECT_DIRECTORY"):
            value = value.strip().strip("\"'")
            if "$" in value:
                raise Uncacheable(f".env: {name}={value}")
            yield from (v for v in re.split(r"[:;,]", value) if v)


def _programs(base: tuple[str, ...], env: Mapping[str, str]) -> list[str]:
    path = env.get("PATH", os.defpath)
    found = [shutil.which(base[0], path=path)]
    if base[0] == "docker":
        home = env.get("HOME", "")
        dirs = ([f"{home}/.docker/cli-plugins"] if home else []) + list(PLUGIN_DIRS)
        found += [str(Path(d) / "docker-compose") for d in dirs if (Path(d) / "docker-compose").exists()]
    out = []
    for program in found:
        if program is None:
            raise Uncacheable(f"{base[0]} not found")
        st = os.stat(program)
        out.append(f"program {program} {st.st_size} {st.st_mtime_ns}")
    return out


def _file_digest(path: Path, seen: dict[Path, bytes]) -> str:
    st = path.stat()
    if st.st_size > CONTENT_LIMIT:
        return f"{st.st_size} {st.st_mtime_ns} {st.st_ino}"
    content = path.read_bytes()
    seen[path.resolve()] = content
    return hashlib.sha256(content).hexdigest()


def _follow(path: Path, folder: Path, seen: dict[Path, bytes], parts: list[str], depth: int) -> None:
    """Every file a string of the YAML file `path` names, into `seen` and `parts`; YAML ones
    followed in turn."""
    if path not in seen:
        return  # past CONTENT_LIMIT: hashed by size and mtime, not read
    try:
        docs = list(yaml.load_all(seen[path], Loader=SAFE_LOADER))
    except yaml.YAMLError:
        if path.parent == folder.resolve():
            raise Uncacheable(f"{path} does not parse") from None
        return  # a file named .yml that is not YAML: hashed, not followed
    for key, value in _strings(docs):
        if key in FILE_KEYS and ("$" in value or REMOTE_RE.match(value)):
            raise Uncacheable(f"{path}: {key}: {value}")
        if value and "\n" not in value and "\0" not in value and len(value) <= 4096:
            _name(value, folder, path.parent, seen, parts, depth)


def _name(value: str, folder: Path, here: Path, seen: dict[Path, bytes], parts: list[str], depth: int) -> None:
    """`value` as a file, relative to the stack folder or to the file that names it."""
    for base in dict.fromkeys((folder, here)):  # the compose file's own folder is the stack folder
        try:
            target = base / value
            if not target.is_file():
                continue
            resolved = target.resolve()
        except (OSError, ValueError):
            continue
        if resolved in seen:
            continue
        parts.append(f"named {resolved} {_file_digest(resolved, seen)}")
        if resolved.suffix in YAML_SUFFIXES and depth > 0:
            _follow(resolved, folder, seen, parts, depth - 1)


def _strings(node, key: str | None = None) -> Iterator[tuple[str | None, str]]:
    """(the nearest mapping key above it, the string) for every string in a YAML document."""
    if isinstance(node, str):
        yield key, node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from _strings(v, str(k))
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v, key)
