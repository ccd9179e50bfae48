"""doctor's checks of the secrets: the .env's mode, the borg keys exported and closed, and a
history that cannot be rewritten from this machine (an append-only key off it)."""

from __future__ import annotations

import stat

from management.host.doctor.check import FAIL, OK, WARN, Check, Host


def check_env_mode(host: Host) -> Check:
    path, name = host.settings.env_file, ".env mode"
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        return Check(WARN, name, f"cannot tell: {path}: {exc.strerror}", "run doctor as root")
    if mode & 0o077:
        holds = "holds secrets" if host.settings.secrets or host.settings.borg_passcommand else "holds the settings"
        return Check(FAIL, name, f"{path} is mode {mode:04o}: it {holds} and others can read or change it",
                     f"chmod 600 {path}")
    return Check(OK, name, f"{path} is mode {mode:04o}")


def check_history_protection(host: Host) -> Check:
    """docs/security.md: the history survives this machine only when the backup server holds it
    and this machine's key can only append (a compromised VM then cannot delete it)."""
    s, name = host.settings, "history off this machine"
    if not s.borg_repo_base_path.startswith("ssh://"):
        return Check(WARN, name, f"the repositories are on this machine ({s.borg_repo_base_path}): a dead disk or a "
                                 "compromised VM takes the history with the data",
                     "BORG_REPO_BASE_PATH=ssh://... on a backup server (docs/security.md)")
    if not s.borg_append_only:
        return Check(WARN, name, "this machine's key can delete every archive (BORG_APPEND_ONLY=0): a compromised "
                                 "VM can take the history with it",
                     "make authorized-keys, then BORG_APPEND_ONLY=1 and make prune-trusted on a trusted machine "
                     "(docs/security.md)")
    return Check(OK, name, "on the backup server, and this machine's key only appends (prune runs elsewhere)")


def check_borg_keys(host: Host) -> Check:
    s, name = host.settings, "borg keys exported"
    keys = s.borg_keys_dir
    absent, open_ = [], []
    for service in s.services:
        path = keys / f"{service}.key"
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            absent.append(service)
            continue
        except OSError as exc:
            return Check(WARN, name, f"cannot tell: {path}: {exc.strerror}", "run doctor as root")
        if mode & 0o077:
            open_.append(f"{path} ({mode:04o})")
    if open_:
        return Check(FAIL, name, f"readable by others: {', '.join(open_)}",
                     f"chmod 600 {' '.join(p.split(' ')[0] for p in open_)}")
    if absent:
        return Check(WARN, name, f"no exported key in {keys} for {', '.join(absent)}: a damaged repository "
                     "cannot be opened without it", "make init-repos exports the key of a repository it creates; "
                     f"for an existing one: borg key export <repo> {keys}/<service>.key && chmod 600 it; "
                     "keep a copy off this machine")
    return Check(OK, name, f"{len(s.services)} in {keys}, mode 0600 (keep a copy off this machine)")
