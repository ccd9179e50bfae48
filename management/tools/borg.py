"""BorgBackupRepoManager: one encrypted borg repository per service dataset.

Repositories live at BORG_REPO_BASE_PATH/<service>, a local path or ssh://user@host:port/path.
The passphrase reaches borg through the environment (BORG_PASSPHRASE or BORG_PASSCOMMAND),
never argv; BORG_BASE_DIR is set explicitly so a run under sudo keeps borg's cache, config
and security dirs in one known place instead of scattering root-owned files in a home dir.

Every argv is built by a pure function below; everything runs through the Runner.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from management.config import SERVICE_NAME_RE, Settings
from management.errors import CommandError, ValidationError
from management.runner import Runner

ARCHIVE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,200}$")
ENCRYPTION = "repokey-blake2"
WARNING = 1  # borg's exit code for "finished with warnings"
# Where a service's stack folder (compose files, .env, Caddyfile...) sits in its archives, beside
# the data at the archive's root. A name no application uses; the backup refuses a dataset that has it.
STACK_PREFIX = ".orchestrator-stack"
NEVER_MATCHED = "never matched"  # borg's warning when a path given to extract is not in the archive


def check_service(service: str) -> str:
    if not SERVICE_NAME_RE.match(service or ""):
        raise ValidationError(f"service name {service!r} is not valid")
    return service


def check_archive(name: str) -> str:
    if not ARCHIVE_RE.match(name or ""):
        raise ValidationError(f"archive name {name!r} is not valid (letters, digits and _ . : + -)")
    return name


def archive_name(service: str, now: float) -> str:
    """`<service>-YYYY-mm-ddTHH:MM:SSZ` (UTC): sorts by time, and prune matches `<service>-*`."""
    return f"{check_service(service)}-{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(now))}"


def retention_args(policy: dict[str, str]) -> list[str]:
    order = ("within", "hourly", "daily", "weekly", "monthly", "yearly")
    return [f"--keep-{key}={policy[key]}" for key in order if policy.get(key) not in (None, "", "0")]


# --- pure argv builders ------------------------------------------------------------------------


def init_argv(repo: str) -> list[str]:
    return ["borg", "init", f"--encryption={ENCRYPTION}", "--make-parent-dirs", repo]


def info_argv(repo: str) -> list[str]:
    return ["borg", "info", "--json", repo]


def key_export_argv(repo: str, path: Path) -> list[str]:
    return ["borg", "key", "export", repo, str(path)]


def create_argv(repo: str, archive: str, *, compression: str, excludes: Path | None) -> list[str]:
    # --list --filter=AME names every file borg had to read (added, modified, error) on stderr:
    # that count proves the files cache works (an unchanged night reads nothing). --log-json
    # --progress: stderr is one JSON object per line (files, progress, log messages; parse_stderr).
    argv = ["borg", "create", "--json", "--list", "--filter=AME", "--log-json", "--progress", "--numeric-ids",
            "--one-file-system", f"--compression={compression}"]
    if excludes is not None:
        argv.append(f"--exclude-from={excludes}")
    # "." with cwd at the stable view path: archive paths are relative (restore-friendly) and the
    # files cache key (absolute path) is the same every night.
    return argv + [f"{repo}::{check_archive(archive)}", "."]


def prune_argv(repo: str, service: str, policy: dict[str, str]) -> list[str]:
    keep = retention_args(policy)
    if not keep:
        raise ValidationError(f"{service}: retention policy keeps nothing; refusing to prune")
    return ["borg", "prune", "--list", f"--glob-archives={check_service(service)}-*", *keep, repo]


def compact_argv(repo: str) -> list[str]:
    return ["borg", "compact", repo]


def list_argv(repo: str) -> list[str]:
    return ["borg", "list", "--json", repo]


KEEPING_RE = re.compile(r"^Keeping archive(?: \([^)]*\))?:\s+(\S+)")


def kept_by_prune(stderr: str) -> tuple[str, ...] | None:
    """The archives `borg prune --list` says it keeps ("Keeping archive (rule: daily #1):  name
    date [id]"), or None when a "Keeping" line does not read as that (then nothing is assumed)."""
    names = []
    for line in stderr.splitlines():
        if line.startswith("Keeping archive"):
            match = KEEPING_RE.match(line)
            if not match:
                return None
            names.append(match.group(1))
    return tuple(names)


def local_fingerprint(repo: str) -> str | None:
    """A local repository's id and last committed transaction, read from its files without
    borg (`config`'s id, the number of its one `index.N`). Every commit (create, prune, delete,
    compact, a rollback, another repository in its place) changes it; reading (list, extract)
    does not. None for a remote repository, one locked for writing, or a layout this does not
    know: then only borg can tell what it holds."""
    if "://" in repo or ":" in repo.split("/", 1)[0]:
        return None  # ssh://... or scp-style host:path
    root = Path(repo)
    try:
        if (root / "lock.exclusive").exists():
            return None
        config = configparser.ConfigParser()
        config.read_string((root / "config").read_text())
        repo_id = config.get("repository", "id", fallback="")
        numbers = [p.name[len("index."):] for p in root.glob("index.*")]
    except (OSError, configparser.Error, UnicodeDecodeError):
        return None
    if not repo_id or len(numbers) != 1 or not numbers[0].isdigit():
        return None
    return f"{repo_id}:{numbers[0]}"


def extract_argv(repo: str, archive: str, paths: tuple[str, ...] = (), excludes: tuple[str, ...] = (),
                 progress: bool = False, sparse: bool = False) -> list[str]:
    """Extract into the cwd. `paths`: only these archive paths (`pp:`: a path, never a pattern,
    whatever its characters); `excludes`: path prefixes left out; `sparse`: holes stay holes."""
    return ["borg", "extract", "--numeric-ids", *(["--sparse"] if sparse else []),
            *(["--log-json", "--progress"] if progress else []),
            *[f"--exclude=pp:{e}" for e in excludes], f"{repo}::{check_archive(archive)}",
            *(f"pp:{p}" for p in paths)]


def list_path_argv(repo: str, archive: str, path: str) -> list[str]:
    """`borg list --json-lines REPO::ARCHIVE pp:PATH`: the path and everything below it, one JSON
    object a line, read from the archive's metadata (no file content is read)."""
    return ["borg", "list", "--json-lines", f"{repo}::{check_archive(archive)}", f"pp:{path}"]


def mount_argv(repo: str, mountpoint: Path, archive: str | None = None) -> list[str]:
    """`borg mount` of the repository (every archive a folder) or one archive, read-only."""
    return ["borg", "mount", "-o", "ro", f"{repo}::{check_archive(archive)}" if archive else repo, str(mountpoint)]


def umount_argv(mountpoint: Path) -> list[str]:
    return ["borg", "umount", str(mountpoint)]


def delete_cache_argv(repo: str) -> list[str]:
    """Remove this machine's cache of the repository (borg rebuilds it on the next use); the
    repository itself is not touched."""
    return ["borg", "delete", "--cache-only", repo]


def info_last_argv(repo: str, service: str, last: int) -> list[str]:
    """`borg info --json` of the service's `last` newest archives: their file count and size, which
    borg stores in each archive's metadata (no chunk is read)."""
    return ["borg", "info", "--json", f"--glob-archives={check_service(service)}-*", f"--last={last}", repo]


# --- the backup server's authorized_keys (docs/security.md) -------------------------------------

PUBLIC_KEY_RE = re.compile(r"^((?:sk-)?ssh-ed25519(?:@openssh\.com)?|ssh-rsa|(?:sk-)?ecdsa-sha2-nistp\d+"
                           r"(?:@openssh\.com)?) ([A-Za-z0-9+/]+={0,3})(?:\s.*)?$")
SAFE_PATH_RE = re.compile(r"^[A-Za-z0-9_./@+:,=-]+$")


def served_path(repo: str) -> str:
    """The path `borg serve --restrict-to-path` must allow for an ssh:// repository URL, as borg
    serve resolves it: `/./x` and `/~/x` are x relative to the borg user's home (its working
    directory), anything else is absolute."""
    match = re.match(r"^ssh://[^/@\s]+@[^/\s]+(/.*)$", repo or "")
    if not match:
        raise ValidationError(f"BORG_REPO_BASE_PATH: {repo!r} is not ssh://user@host[:port]/path; an append-only key "
                              "needs the repositories on another machine, reached through borg serve")
    path = match.group(1)
    if path.startswith(("/./", "/~/")):
        path = path[3:]
    elif path.startswith("/~"):
        raise ValidationError(f"BORG_REPO_BASE_PATH: {repo!r}: /~user/ paths are not supported here; "
                              "write the path from / or from the borg user's home (/./path)")
    path = path.rstrip("/") or "/"
    if not SAFE_PATH_RE.match(path) or ".." in path.split("/"):
        raise ValidationError(f"BORG_REPO_BASE_PATH: the path {path!r} has characters an authorized_keys "
                              "command cannot carry safely (letters, digits and _ . / @ + : , = - only, no '..')")
    return path


def public_key(text: str, where: str) -> str:
    """`<type> <base64>` of an OpenSSH public key file's text. A private key is refused without
    echoing anything of it."""
    if "PRIVATE KEY" in text:
        raise ValidationError(f"{where} is a private key; give its public half (the .pub file)")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    match = PUBLIC_KEY_RE.match(lines[0]) if len(lines) == 1 else None
    if not match:
        raise ValidationError(f"{where} is not one OpenSSH public key line (ssh-ed25519 AAAA... comment)")
    return f"{match.group(1)} {match.group(2)}"


def identity_file(borg_rsh: str) -> Path | None:
    """The key file BORG_RSH hands to ssh (`-i PATH`, `-o IdentityFile=PATH`), or None."""
    try:
        words = shlex.split(borg_rsh or "")
    except ValueError:
        return None
    found = None
    for i, word in enumerate(words):
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if word == "-i":
            found = nxt
        elif word.startswith("-i") and len(word) > 2:
            found = word[2:]
        option = nxt if word == "-o" else word[2:] if word.startswith("-o") else ""
        key, _, value = option.replace(" ", "=", 1).partition("=")
        if key.lower() == "identityfile" and value:
            found = value
    return Path(os.path.expanduser(found)) if found else None


def authorized_keys_line(paths: Sequence[str], key: str, *, append_only: bool, comment: str) -> str:
    """One line of the backup server's ~/.ssh/authorized_keys: this key may only run borg serve,
    only on `paths`, append-only when asked; no pty, no forwarding (`restrict`). One key, one line:
    sshd uses the first line that matches a key, so every repository is one --restrict-to-path."""
    if not paths:
        raise ValidationError("no repository to allow: no service is configured")
    argv = ["borg", "serve", *(["--append-only"] if append_only else [])]
    for path in paths:
        if not SAFE_PATH_RE.match(path):
            raise ValidationError(f"repository path {path!r} cannot be carried in an authorized_keys command")
        argv += ["--restrict-to-path", path]
    if not PUBLIC_KEY_RE.match(key):
        raise ValidationError("not an OpenSSH public key")
    return f'command="{" ".join(argv)}",restrict {key} {comment}'


def read_public_key(path: Path, where: str) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as exc:
        raise ValidationError(f"{where}: cannot read {path}: {exc.strerror}") from None
    return public_key(text, f"{where} {path}")


def authorized_keys_lines(settings: Settings, vm_key: Path | None = None, trusted_key: Path | None = None) -> list[str]:
    """What the backup server's ~borg/.ssh/authorized_keys needs (docs/security.md): the VM's key
    (BORG_RSH's `-i` key's .pub unless `vm_key` is given) append-only on every service's
    repository; with `trusted_key`, the trusted machine's key with full access below
    BORG_REPO_BASE_PATH. Comment lines say which is which. Only public keys are read."""
    base = served_path(settings.borg_repo_base_path)
    services = list(settings.services)
    paths = [served_path(settings.repo(check_service(s))) for s in services]
    if vm_key is None:
        identity = identity_file(settings.borg_rsh or "")
        if identity is None:
            raise ValidationError("BORG_RSH names no key file (ssh -i PATH ...); give the VM's public key with "
                                  "PUBLIC_KEY=path.pub")
        vm_key = identity if identity.name.endswith(".pub") else identity.with_name(identity.name + ".pub")
        where = "BORG_RSH's key"
    else:
        where = "the VM's public key"
    lines = [f"# the VM's key: append-only, {len(services)} repositories ({', '.join(services)}); print this "
             "again after adding a service",
             authorized_keys_line(paths, read_public_key(vm_key, where), append_only=True,
                                  comment="orchestrator-vm-append-only")]
    if trusted_key is not None:
        lines += [f"# the trusted machine's key: full access below {base} (prune-trusted); never on the VM",
                  authorized_keys_line([base], read_public_key(trusted_key, "the trusted machine's public key"),
                                       append_only=False, comment="orchestrator-trusted-full-access")]
    return lines


def in_stack_copy(path: str) -> bool:
    """Whether an archive path (as borg create lists it, relative to the view) is in the stack
    folder's copy (STACK_PREFIX) rather than the dataset's data."""
    path = path.removeprefix("./")
    return path == STACK_PREFIX or path.startswith(STACK_PREFIX + "/")


class StderrReader:
    """Reads borg's `--log-json` stderr line by line as it comes: counts the files borg listed
    (read and chunked), feeds progress to `progress(done, total, files, path)`, keeps log
    messages as plain text (warnings and errors, for the summary) and anything that is not
    JSON (ssh's own words) as it is."""

    def __init__(self, progress: Callable[..., None] | None = None):
        self.progress = progress
        self.listed = 0
        # the data's files borg found added (a path its files cache did not know) or modified (a
        # known path whose size, ctime or inode changed), the stack folder's copy left out: it is
        # copied anew every night, so borg always finds it modified
        self.added = 0
        self.modified = 0

    def __call__(self, line: str) -> bool | str:
        if not line.startswith("{"):
            return False
        try:
            event = json.loads(line)
        except ValueError:
            return False
        kind = event.get("type")
        if kind == "file_status":
            status = event.get("status")
            self.listed += status in ("A", "M", "E")
            if status in ("A", "M") and not in_stack_copy(str(event.get("path") or "")):
                self.added += status == "A"
                self.modified += status == "M"
            return f"{event.get('status')} {event.get('path')}" if event.get("status") == "E" else True
        if kind == "log_message":
            return str(event.get("message", "")).rstrip()
        if self.progress is not None and not event.get("finished"):
            if kind == "archive_progress":
                self.progress(int(event.get("original_size") or 0), None, event.get("nfiles"), event.get("path", ""))
            elif kind == "progress_percent" and event.get("msgid") == "extract" and event.get("total"):
                info = event.get("info") or [""]
                self.progress(int(event.get("current") or 0), int(event["total"]), None, info[0])
        return True


def check_argv(repo: str, verify_data: bool = False, repository_only: bool = False) -> list[str]:
    """`borg check`: archives and repository; --repository-only checks every segment's CRC
    (on the server itself for an ssh:// repository: no data crosses the network);
    --verify-data also reads and verifies every chunk of every archive."""
    return ["borg", "check", *(["--repository-only"] if repository_only else []),
            *(["--verify-data"] if verify_data else []), repo]


@dataclass(frozen=True)
class Created:
    archive: str
    nfiles: int | None
    original_size: int | None
    deduplicated_size: int | None
    warning: str = ""
    files_read: int | None = None  # files borg read and chunked (not skipped by the files cache)
    repository: str = ""  # the repository's id, as borg create reported it
    added: int | None = None  # the data's files borg listed as added (A), the stack folder left out
    modified: int | None = None  # ... and as modified (M)


@dataclass(frozen=True)
class Listing:
    """What a repository holds, as `borg list --json` said: its id and its archives' names."""

    repository: str
    archives: tuple[str, ...]


class BorgBackupRepoManager:
    def __init__(self, settings: Settings, runner: Runner, clock=time.time):
        self.s = settings
        self.runner = runner
        self.clock = clock
        self.timeout = float(settings.borg_timeout)
        # service -> what its repository holds: as the preflight found it, then as this run's
        # create and prune left it
        self.listings: dict[str, Listing] = {}

    # -- environment -------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """What borg needs, secrets included: passed as the child's environment, never argv."""
        s = self.s
        env = {
            "BORG_BASE_DIR": str(s.borg_base_dir),
            # never silently accept a moved or unencrypted repository
            "BORG_RELOCATED_REPO_ACCESS_IS_OK": "no",
            "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "no",
            "BORG_CHECK_I_KNOW_WHAT_I_AM_DOING": "NO",
            "BORG_DELETE_I_KNOW_WHAT_I_AM_DOING": "NO",
            "LANG": "C.UTF-8",
        }
        if s.borg_passphrase:
            env["BORG_PASSPHRASE"] = s.borg_passphrase
        elif s.borg_passcommand:
            env["BORG_PASSCOMMAND"] = s.borg_passcommand
        elif s.borg_passphrase_file:
            env["BORG_PASSCOMMAND"] = shlex.join(["cat", str(s.borg_passphrase_file)])
        if s.borg_rsh:
            env["BORG_RSH"] = s.borg_rsh
        return env

    def repo(self, service: str) -> str:
        return self.s.repo(check_service(service))

    def _run(self, argv: list[str], *, mutating: bool = True, ok_codes=(0,), cwd: str | None = None,
             timeout: float | None = None, on_stderr=None):
        if self.s.borg_base_dir:
            os.makedirs(self.s.borg_base_dir, mode=0o700, exist_ok=True)
        extra = {"on_stderr": on_stderr} if on_stderr is not None else {}
        return self.runner.run(argv, mutating=mutating, env=self.env(), ok_codes=ok_codes, cwd=cwd,
                               timeout=timeout or self.timeout, **extra)

    # -- repositories ------------------------------------------------------------------------

    def is_initialised(self, service: str) -> bool:
        """True when the repository exists and opens with our passphrase (what it holds is kept
        in `listings`: one `borg list --json`, one ssh round trip). A missing repository is False;
        any other problem (unreachable, wrong passphrase) raises."""
        try:
            out = self._run(list_argv(self.repo(service)), mutating=False, timeout=min(self.timeout, 300)).stdout
            data = json.loads(out) if out.strip() else {}
            self.listings[service] = Listing(str((data.get("repository") or {}).get("id") or ""),
                                             tuple(str(a.get("name", "")) for a in data.get("archives") or []))
            return True
        except CommandError as exc:
            text = exc.stderr_tail or ""
            if exc.exit_code == 2 and ("does not exist" in text or "is not a valid repository" in text):
                if "is not a valid repository" in text and self._local_nonempty(service):
                    raise  # a directory with something else in it: never init over it
                return False
            raise

    def _local_nonempty(self, service: str) -> bool:
        repo = self.repo(service)
        if repo.startswith("ssh://"):
            return True
        p = Path(repo)
        return p.is_dir() and any(p.iterdir())

    def fingerprint(self, service: str) -> str | None:
        """See `local_fingerprint`: None for a remote repository."""
        return local_fingerprint(self.repo(service))

    def init_repo(self, service: str) -> bool:
        """Initialise the repository unless it exists (idempotent); export its key on init.
        Returns True when it was created."""
        if self.is_initialised(service):
            return False
        repo = self.repo(service)
        self._run(init_argv(repo), timeout=min(self.timeout, 600))
        self.listings[service] = Listing("", ())  # new and empty: no archive of ours is in it
        if not self.runner.dry_run:
            self.export_key(service)
        return True

    def key_path(self, service: str) -> Path:
        return self.s.borg_keys_dir / f"{check_service(service)}.key"

    def export_key(self, service: str) -> Path:
        """`borg key export` to borg_keys/<service>.key, mode 0600 from the first byte on."""
        keys = self.s.borg_keys_dir
        keys.mkdir(parents=True, exist_ok=True)
        os.chmod(keys, 0o700)
        path = self.key_path(service)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)
        os.chmod(path, 0o600)
        self._run(key_export_argv(self.repo(service), path), timeout=300)
        os.chmod(path, 0o600)
        return path

    # -- archives ----------------------------------------------------------------------------

    def create(self, service: str, path: Path | str, progress: Callable[..., None] | None = None) -> Created:
        archive = archive_name(service, self.clock())
        excludes = self.s.borg_excludes_file if self.s.borg_excludes_file and self.s.borg_excludes_file.exists() \
            else None
        argv = create_argv(self.repo(service), archive, compression=self.s.borg_compression, excludes=excludes)
        reader = StderrReader(progress)
        result = self._run(argv, ok_codes=(0, WARNING), cwd=str(path), on_stderr=reader)
        stats: dict = {}
        repository = ""
        if result.stdout.strip():
            try:
                data = json.loads(result.stdout)
                stats = data.get("archive", {}).get("stats", {})
                repository = str((data.get("repository") or {}).get("id") or "")
            except json.JSONDecodeError:
                stats = {}
        warning = ""
        if result.returncode == WARNING:
            lines = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
            warning = "borg warning: " + (self.runner.mask(lines[-1]) if lines else "exit code 1")
        known = self.listings.get(service)
        if known is not None and not result.skipped:
            self.listings[service] = Listing(repository or known.repository, (*known.archives, archive))
        return Created(archive, stats.get("nfiles"), stats.get("original_size"), stats.get("deduplicated_size"),
                       warning, reader.listed, repository, reader.added, reader.modified)

    def prune(self, service: str) -> int | None:
        """Prune by the service's retention. Returns how many of its archives remain (borg's
        `--list` names each one it keeps), so status can show it without asking borg."""
        result = self._run(prune_argv(self.repo(service), service, self.s.retention(service)))
        if self.runner.dry_run or result.skipped:
            return None
        kept = kept_by_prune(result.stderr)
        known = self.listings.pop(service, None)
        if kept is not None and known is not None:  # the others' archives stay; ours are what prune kept
            ours = f"{service}-"
            self.listings[service] = Listing(known.repository,
                                             (*(a for a in known.archives if not a.startswith(ours)), *kept))
        if kept is not None:
            return len(kept)
        return sum(1 for line in result.stderr.splitlines() if line.startswith("Keeping archive"))  # names unread

    def compact(self, service: str) -> None:
        self._run(compact_argv(self.repo(service)))

    def forget_cache(self, service: str) -> list[Path]:
        """After the repository was rolled back on the server (docs/security.md): drop this
        machine's cache of it and the manifest time borg remembered (which would otherwise call
        the older manifest a replay attack). Returns the files removed besides the cache."""
        repo = self.repo(service)
        self._run(delete_cache_argv(repo), timeout=min(self.timeout, 600))
        removed: list[Path] = []
        security = Path(self.s.borg_base_dir) / ".config" / "borg" / "security"
        for location in sorted(security.glob("*/location")) if not self.runner.dry_run else []:
            try:
                same = location.read_text().strip().rstrip("/") == repo.rstrip("/")
            except OSError:
                continue
            stamp = location.parent / "manifest-timestamp"
            if same and stamp.exists():
                stamp.unlink()
                removed.append(stamp)
        return removed

    def last_archives(self, service: str, last: int = 2) -> list[dict]:
        """The service's `last` newest archives, oldest first: name, nfiles and original_size."""
        out = self._run(info_last_argv(self.repo(service), service, last), mutating=False,
                        timeout=min(self.timeout, 600)).stdout
        archives = json.loads(out).get("archives", []) if out.strip() else []
        return [{"name": a.get("name", ""), "nfiles": (a.get("stats") or {}).get("nfiles"),
                 "original_size": (a.get("stats") or {}).get("original_size")} for a in archives]

    def list_archives(self, service: str) -> list[dict]:
        out = self._run(list_argv(self.repo(service)), mutating=False, timeout=min(self.timeout, 600)).stdout
        return json.loads(out).get("archives", []) if out.strip() else []

    def list_path(self, service: str, archive: str, path: str) -> list[dict]:
        """What `archive` holds at `path` (and below it): borg's items, [] when it holds nothing there."""
        out = self._run(list_path_argv(self.repo(service), archive, path), mutating=False, ok_codes=(0, WARNING),
                        timeout=min(self.timeout, 600)).stdout
        items = []
        for line in out.splitlines():
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(item, dict):
                items.append(item)
        return items

    def mount(self, service: str, mountpoint: Path, archive: str | None = None) -> None:
        self._run(mount_argv(self.repo(service), mountpoint, archive), timeout=min(self.timeout, 600))

    def umount(self, mountpoint: Path) -> None:
        self._run(umount_argv(mountpoint), timeout=min(self.timeout, 600))

    def extract(self, service: str, archive: str, destination: Path, *, force: bool = False,
                paths: tuple[str, ...] = (), excludes: tuple[str, ...] = (),
                progress: Callable[..., None] | None = None, sparse: bool = False) -> bool:
        """Extract an archive (or only `paths` of it, without `excludes`) into `destination`
        (created if missing). A non-empty destination is refused unless `force`: extracting over
        live files mixes two states. Returns False when none of `paths` is in the archive."""
        destination = Path(destination)
        if destination.exists() and not destination.is_dir():
            raise ValidationError(f"destination {destination} exists and is not a directory")
        if destination.is_dir() and any(destination.iterdir()) and not force:
            raise ValidationError(f"destination {destination} is not empty; choose an empty directory "
                                  "or pass --force to extract over what is there")
        if not self.runner.dry_run:
            destination.mkdir(parents=True, exist_ok=True)
        ok_codes = (0, WARNING) if paths else (0,)
        result = self._run(extract_argv(self.repo(service), archive, paths, excludes, progress=progress is not None,
                                        sparse=sparse),
                           ok_codes=ok_codes, cwd=str(destination) if destination.exists() else None,
                           on_stderr=StderrReader(progress) if progress is not None else None)
        if result.returncode == WARNING:
            if NEVER_MATCHED in result.stderr:
                return False
            tail = self.runner.mask("\n".join(result.stderr.strip().splitlines()[-5:]))
            raise CommandError(self.runner.mask(" ".join(result.argv)), WARNING, tail,
                               "borg extract finished with warnings")
        return True

    def check(self, service: str, verify_data: bool = False, repository_only: bool = False) -> None:
        self._run(check_argv(self.repo(service), verify_data, repository_only), mutating=False)


def latest_archive(archives: Sequence[dict], service: str, made_last: str | None = None) -> str | None:
    """The newest of the service's own archives (`<service>-<time>`): `made_last` when the
    repository holds it (the archive this machine's last good backup of the service made or
    found unchanged: its kept record), else the newest by borg's time. A night made while the
    clock ran ahead is dated after the real newest one (chaos campaign, seed 37), so the date
    alone would pick older data."""
    own = [a for a in archives if str(a.get("name", "")).startswith(f"{service}-")]
    if not own:
        return None
    if made_last and any(a["name"] == made_last for a in own):
        return made_last
    return max(own, key=lambda a: (a.get("time") or a.get("start") or "", a["name"]))["name"]
