"""A restored stack as a throwaway, isolated stack: the boot drill's compose model. Pure.

From compose's resolved model of the *archived* stack folder it makes one that can run beside
the live stacks without touching them:

- its own project name; every container_name changed (the old name stays an alias, so the
  app still finds its database by it);
- every bind below the service's own dataset re-pointed into the restored copy; binds in the
  stack folder are already in the copy (compose resolved them there); every named volume,
  every writable bind elsewhere (another dataset, a host path, the Docker socket) replaced by
  a fresh empty directory: no live data is ever mounted; read-only host files (/etc/localtime)
  kept;
- no published ports; one internal network (no egress, shared with nothing);
- local images only (`pull_policy: never`, no build), no restart policy.

A stack on the host's network cannot be isolated: `NotBootable` says so.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from management.errors import ValidationError


class NotBootable(ValidationError):
    """The stack cannot run in isolation (host networking)."""


def _under(path: str, base: Path) -> PurePosixPath | None:
    try:
        return PurePosixPath(path).relative_to(PurePosixPath(base))
    except ValueError:
        return None


def sandbox_model(model: dict, *, project: str, base: Path, dataset_dir: Path, restored: Path, stack_copy: Path,
                  fresh: Callable[[str], Path]) -> dict:
    """The isolated model. `dataset_dir` is the service's live mountpoint (its paths are mapped
    into `restored`, the extracted dataset), `base` ZFS_BASE_MOUNTPOINT (nothing else below it is
    mounted, not even read-only); `stack_copy` the restored stack folder; `fresh(key)` gives an
    empty directory for a mount that must not reach live data."""
    out = copy.deepcopy(model)
    out["name"] = project
    network = f"{project}_net"
    for name, svc in (out.get("services") or {}).items():
        mode = str(svc.get("network_mode") or "")
        if mode == "host":
            raise NotBootable(f"service {name!r} uses the host's network: it cannot be booted in isolation")
        aliases = [a for a in [svc.get("container_name")] if a]
        for net in (svc.get("networks") or {}).values() if isinstance(svc.get("networks"), dict) else []:
            aliases += list((net or {}).get("aliases") or [])
        svc["container_name"] = f"{project}-{name}"
        svc.pop("ports", None)
        svc.pop("build", None)
        svc["pull_policy"] = "never"
        svc["restart"] = "no"
        if not mode.startswith(("service:", "container:")):
            svc.pop("network_mode", None)
            svc["networks"] = {network: {"aliases": sorted(set(aliases))} if aliases else None}
        svc["volumes"] = [_mount(v, name, base, dataset_dir, restored, stack_copy, fresh)
                          for v in svc.get("volumes") or []]
    out["networks"] = {network: {"name": network, "internal": True}}
    out["volumes"] = {}
    return out


def _mount(vol: dict, service: str, base: Path, dataset_dir: Path, restored: Path, stack_copy: Path,
           fresh: Callable[[str], Path]) -> dict:
    vol = dict(vol)
    kind, source, target = vol.get("type"), str(vol.get("source") or ""), str(vol.get("target") or "")
    if kind == "tmpfs":
        return vol
    if kind == "bind":
        rel = _under(source, dataset_dir)
        if rel is not None:
            return {**vol, "source": str(restored / rel)}
        if _under(source, stack_copy) is not None or (vol.get("read_only") and _under(source, base) is None):
            return vol
    key = f"{service}{target}".replace("/", "_")
    return {"type": "bind", "source": str(fresh(key)), "target": target,
            **({"read_only": True} if vol.get("read_only") else {})}
