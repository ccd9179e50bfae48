"""Walking directory trees: the change digest of a view, the manifest of a stack folder, and the
entry-by-entry comparison a restore drill makes between a snapshot and an extracted archive.

The walkers only read (os.scandir/lstat/readlink/open). Copies are made by `cp -a`, through
management.tools.files.
Symlinks are never followed; names that are not UTF-8 are kept as bytes via surrogateescape.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

CHUNK = 1 << 20


def walk(root: Path, skip_top: frozenset[str] = frozenset()) -> Iterator[tuple[str, os.stat_result]]:
    """(relative path, lstat) of every entry below `root`, depth first in name order; `root`
    itself comes first as '.'. Top-level names in `skip_top` are left out with everything below."""
    yield ".", os.lstat(root)
    stack = [(Path(root), "")]
    while stack:
        here, prefix = stack.pop()
        with os.scandir(here) as entries:
            found = sorted(entries, key=lambda e: e.name)
        subdirs = []
        for entry in found:
            if not prefix and entry.name in skip_top:
                continue
            rel = prefix + entry.name
            st = entry.stat(follow_symlinks=False)
            yield rel, st
            if stat.S_ISDIR(st.st_mode):
                subdirs.append((Path(entry.path), rel + "/"))
        stack.extend(reversed(subdirs))


def tree_manifest(root: Path, taken_at: float, skip_top: frozenset[str] = frozenset()) -> tuple[str, bool]:
    """A digest of every entry under `root`: path, type, size, inode, mode, owner, mtime, ctime,
    symlink target. Any write, chmod, chown, rename or delete changes it. Returns (digest,
    settled): not settled when an entry changed within a second of `taken_at` (1-second
    timestamps cannot tell a later change in the same second), and then it is not trusted."""
    digest, settled = hashlib.sha256(), True
    for rel, st in walk(root, skip_top):
        if rel == ".":
            continue
        target = os.readlink(os.path.join(root, rel)) if stat.S_ISLNK(st.st_mode) else ""
        digest.update(f"{rel}\0{st.st_mode}\0{st.st_size}\0{st.st_ino}\0{st.st_uid}\0{st.st_gid}\0"
                      f"{st.st_mtime_ns}\0{st.st_ctime_ns}\0{target}\n".encode(errors="surrogateescape"))
        if st.st_ctime >= taken_at - 1.0:
            settled = False
    return digest.hexdigest(), settled


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISREG, "file"), (stat.S_ISDIR, "dir"), (stat.S_ISLNK, "symlink"),
                       (stat.S_ISFIFO, "fifo"), (stat.S_ISCHR, "char device"), (stat.S_ISBLK, "block device"),
                       (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "other"


def file_hash(path: str, key: bytes = b"") -> str:
    h = hashlib.blake2b(key=key, digest_size=20)
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def stack_manifest(root: Path, key: bytes) -> dict[str, str]:
    """rel path -> 'type mode uid gid size target hash' for a stack folder (small: compose files,
    `.env`, Caddyfile). Content hashes are keyed (`key` lives in STATE_DIR, mode 0600), so the
    record of a `.env` says nothing about the secrets in it. mtimes are left out: a restore
    drill compares what a user would see differ; a `touch` alone is not a change."""
    out: dict[str, str] = {}
    for rel, st in walk(root):
        path = os.path.join(root, rel)
        kind = _kind(st.st_mode)
        target = os.readlink(path) if kind == "symlink" else ""
        digest = file_hash(path, key) if kind == "file" else ""
        size = st.st_size if kind == "file" else 0
        out[rel] = f"{kind} {stat.S_IMODE(st.st_mode):o} {st.st_uid} {st.st_gid} {size} {target!r} {digest}"
    return out


def manifest_differences(expected: dict[str, str], actual: dict[str, str]) -> list[str]:
    """What differs between two stack manifests, one line per path (no content, no hash)."""
    names = ("type", "mode", "uid", "gid", "size", "target", "content")
    diffs = []
    for rel in sorted(set(expected) | set(actual)):
        if rel not in actual:
            diffs.append(f"{rel}: missing")
        elif rel not in expected:
            diffs.append(f"{rel}: not in the original")
        elif expected[rel] != actual[rel]:
            a, b = expected[rel].split(" ", 6), actual[rel].split(" ", 6)
            what = [n for n, x, y in zip(names, a, b, strict=False) if x != y]
            diffs.append(f"{rel}: {', '.join(what)} differ")
    return diffs


@dataclass
class Comparison:
    entries: int = 0
    bytes: int = 0
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences


def _same_content(a: str, b: str) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(CHUNK), fb.read(CHUNK)
            if x != y:
                return False
            if not x:
                return True


def compare_trees(expected: Path, actual: Path, skip_top: frozenset[str] = frozenset()) -> Comparison:
    """Every entry of `expected` (a snapshot's view) against `actual` (an extracted archive):
    type, mode, owner, group, size, content byte for byte, symlink target, and hard links
    (paths that share an inode in one tree share one in the other). Entries only in `actual`
    count as differences too. Top-level names in `skip_top` are left out of `actual`."""
    result = Comparison()
    seen: set[str] = set()
    links_expected: dict[tuple[int, int], list[str]] = {}
    links_actual: dict[str, tuple[int, int]] = {}
    for rel, st in walk(expected):
        seen.add(rel)
        result.entries += 1
        a_path = os.path.join(actual, rel)
        try:
            other = os.lstat(a_path)
        except FileNotFoundError:
            result.differences.append(f"{rel}: missing")
            continue
        kind, other_kind = _kind(st.st_mode), _kind(other.st_mode)
        if kind != other_kind:
            result.differences.append(f"{rel}: {kind} became {other_kind}")
            continue
        what = []
        if rel != "." and stat.S_IMODE(st.st_mode) != stat.S_IMODE(other.st_mode):
            what.append(f"mode {stat.S_IMODE(st.st_mode):o} != {stat.S_IMODE(other.st_mode):o}")
        if rel != "." and (st.st_uid, st.st_gid) != (other.st_uid, other.st_gid):
            what.append(f"owner {st.st_uid}:{st.st_gid} != {other.st_uid}:{other.st_gid}")
        e_path = os.path.join(expected, rel)
        if kind == "symlink" and os.readlink(e_path) != os.readlink(a_path):
            what.append("symlink target")
        if kind == "file":
            if st.st_size != other.st_size:
                what.append(f"size {st.st_size} != {other.st_size}")
            elif not _same_content(e_path, a_path):
                what.append("content")
            result.bytes += st.st_size
            if st.st_nlink > 1:
                links_expected.setdefault((st.st_dev, st.st_ino), []).append(rel)
                links_actual[rel] = (other.st_dev, other.st_ino)
        if what:
            result.differences.append(f"{rel}: {', '.join(what)}")
    for group in links_expected.values():
        if len(group) > 1 and len({links_actual[r] for r in group}) != 1:
            result.differences.append(f"{group[0]}: hard links to {', '.join(group[1:])} were not kept")
    for rel, _st in walk(actual, skip_top):
        if rel not in seen:
            result.differences.append(f"{rel}: not in the snapshot")
    return result
