#!/usr/bin/env bash
# apart.sh COMMAND...: run COMMAND in a mount namespace of its own that holds none of the host
# lab's mounts, so that it can run while the host lab works (make test runs the fleet this way,
# beside the host passes).
#
# Why: the fleet's systemd-nspawn machines start with a copy of their parent's mount table. A
# copy of a zfs-fuse dataset's mount keeps that dataset busy, and the host lab's teardown
# (`zfs destroy`) fails while the machine lives; copies of docker's overlay and netns mounts pin
# what dockerd removes. Here every such mount is detached from the new namespace first (lazily:
# nothing in it uses them), and the namespace is private, so what the host mounts later never
# reaches it. The host's own mounts are untouched.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 COMMAND..." >&2; exit 2; }
if [ "${APART_INSIDE:-}" != 1 ]; then
  exec env APART_INSIDE=1 unshare --mount --propagation private -- "$0" "$@"
fi
findmnt -rn -o TARGET,FSTYPE | while read -r target fstype; do
  case "$fstype:$target" in
    fuse.zfs:* | overlay:* | nsfs:* | *:/var/lib/docker* | *:/run/docker* | *:/var/tmp/orchestrator-lab*)
      printf '%s\n' "$target" ;;
  esac
done | sort -r | while read -r target; do
  umount -l "$(printf '%b' "$target")" 2>/dev/null || true
done
unset APART_INSIDE
exec "$@"
