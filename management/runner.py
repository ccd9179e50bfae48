"""The single place that runs an outside command.

Every manager builds an argv list with a pure function and hands it to `Runner.run`.
Here, and only here:
- commands run without a shell (an argv list, in their own session);
- secrets travel in the environment, never in argv, and are masked in every log line
  and error message;
- every call has a timeout;
- `dry_run` skips commands that change something, while read-only queries still run;
- failures become one `CommandError` carrying the masked command, exit code and stderr tail.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from management.errors import CommandError

log = logging.getLogger("orchestrator.runner")

MASK = "***"
MIN_SECRET_LEN = 3
STDERR_TAIL_LINES = 15
DEFAULT_TIMEOUT = 600.0


def mask(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of every secret in `text` with ***.

    Longer secrets are replaced first so a secret containing another is fully hidden.
    Secrets shorter than MIN_SECRET_LEN are ignored: masking single letters would
    garble every message (config validation rejects such passphrases anyway).
    """
    for secret in sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LEN}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def format_argv(argv: Sequence[str], secrets: Iterable[str] = ()) -> str:
    """A copy-pasteable, masked rendering of argv for logs and errors."""
    return mask(shlex.join(argv), secrets)


def tail(text: str, lines: int = STDERR_TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str = ""
    stderr: str = ""
    duration: float = 0.0
    skipped: bool = False  # True when dry-run skipped a mutating command


@dataclass
class Runner:
    """Runs outside commands. One instance per CLI invocation, shared by all managers."""

    dry_run: bool = False
    secrets: tuple[str, ...] = ()
    default_timeout: float = DEFAULT_TIMEOUT
    base_env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    _live: dict = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def add_secret(self, value: str | None) -> None:
        if value:
            self.secrets = tuple(self.secrets) + (value,)

    def mask(self, text: str) -> str:
        return mask(text, self.secrets)

    def environment(self, env: Mapping[str, str] | None = None, unset_env: Sequence[str] = ()) -> dict[str, str]:
        """The environment a command run with `env` and `unset_env` gets."""
        full_env = {k: v for k, v in self.base_env.items() if k not in unset_env}
        full_env.update(env or {})
        return full_env

    def run(
        self,
        argv: Sequence[str],
        *,
        mutating: bool = True,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        ok_codes: Sequence[int] = (0,),
        cwd: str | None = None,
        stdin: str | None = None,
        unset_env: Sequence[str] = (),
        on_stderr: Callable[[str], bool | str | None] | None = None,
    ) -> Result:
        """Run argv. Raises CommandError unless the exit code is in ok_codes.

        `mutating=False` marks a read-only query: it runs even under dry-run.
        `env` adds variables (for secrets such as BORG_PASSPHRASE) to the base environment;
        only their names are logged. `unset_env` names variables the command must not inherit.
        `on_stderr` sees each stderr line as it comes (progress): it returns True to consume the
        line, a string to keep instead of it, or None/False to keep it as is in the stderr.
        """
        argv = tuple(str(a) for a in argv)
        shown = format_argv(argv, self.secrets)
        env_note = f" [env: {', '.join(sorted(env))}]" if env else ""
        if self.dry_run and mutating:
            log.info("dry-run, not running: %s%s", shown, env_note)
            return Result(argv, 0, skipped=True)
        log.debug("running: %s%s", shown, env_note)

        full_env = self.environment(env, unset_env)
        limit = self.default_timeout if timeout is None else timeout
        program = shutil.which(argv[0], path=full_env.get("PATH", os.defpath))
        if program is None:
            raise CommandError(shown, None, "", reason=f"program not found: {argv[0]}")
        started = time.monotonic()
        try:
            # Own session: a Ctrl-C on the terminal reaches only us, and we decide what to
            # stop. Otherwise it would also kill a `docker compose start` mid-window.
            proc = subprocess.Popen(argv, executable=program, env=full_env, cwd=cwd, start_new_session=True,
                                    stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as exc:
            raise CommandError(shown, None, "", reason=f"cannot run {argv[0]}: {exc.strerror or exc}") from None
        with self._lock:
            self._live[id(proc)] = (argv, proc)
        try:
            if on_stderr is None:
                out, err = proc.communicate(None if stdin is None else stdin.encode(), timeout=limit)
                stderr = _decode(err)
            else:
                out, stderr = _stream(proc, stdin, on_stderr, limit)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise CommandError(shown, None, "", reason=f"timed out after {limit:g}s") from None
        except BaseException:
            # Interrupted (SIGINT/SIGTERM turned into an exception): do not leave the child behind.
            _terminate(proc)
            raise
        finally:
            with self._lock:
                self._live.pop(id(proc), None)
        duration = time.monotonic() - started
        if proc.returncode not in ok_codes:
            log.debug("failed (exit %s): %s", proc.returncode, shown)
            raise CommandError(shown, proc.returncode, tail(self.mask(stderr)))
        log.debug("exit %s in %.2fs: %s", proc.returncode, duration, shown)
        return Result(argv, proc.returncode, _decode(out), stderr, duration)

    def terminate_running(self, programs: Iterable[str]) -> int:
        """Terminate live commands whose program name is in `programs` (used on SIGINT/SIGTERM
        to stop borg runs in worker threads). Returns how many were signalled. zfs commands are
        never in this set: killing a zfs client mid-operation can wedge zfs-fuse."""
        wanted = set(programs)
        with self._lock:
            victims = [proc for argv, proc in self._live.values() if os.path.basename(argv[0]) in wanted]
        for proc in victims:
            _terminate(proc)
        return len(victims)


def _decode(data: bytes | str | None) -> str:
    if data is None:
        return ""
    if isinstance(data, str):
        return data
    return data.decode("utf-8", errors="replace")


def _stream(proc: subprocess.Popen, stdin: str | None, on_stderr: Callable, limit: float) -> tuple[bytes, str]:
    """Wait for proc while handing each stderr line to on_stderr as it comes (progress): it
    returns True to drop the line, a string to keep instead of it, or None/False to keep it."""
    out: list[bytes] = []
    kept: list[str] = []

    def read_out() -> None:
        out.append(proc.stdout.read())

    def read_err() -> None:
        for raw in iter(proc.stderr.readline, b""):
            text = _decode(raw)
            try:
                answer = on_stderr(text.rstrip("\n"))
            except Exception:  # a progress display must never lose the command's stderr
                log.debug("stderr handler failed", exc_info=True)
                answer = None
            if isinstance(answer, str):
                kept.append(answer + "\n")
            elif not answer:
                kept.append(text)

    readers = [threading.Thread(target=read_out, daemon=True), threading.Thread(target=read_err, daemon=True)]
    for reader in readers:
        reader.start()
    if stdin is not None:
        try:
            proc.stdin.write(stdin.encode())
        except BrokenPipeError:
            pass
        finally:
            proc.stdin.close()
    proc.wait(timeout=limit)
    for reader in readers:
        reader.join()
    return b"".join(out), "".join(kept)


def _terminate(proc: subprocess.Popen | None) -> None:
    """SIGTERM, up to 10 s to exit, then SIGKILL."""
    if proc is None or proc.poll() is not None:
        return
    try:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    except Exception:  # pragma: no cover - best effort while unwinding
        pass
