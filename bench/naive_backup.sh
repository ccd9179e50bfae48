#!/usr/bin/env bash
# The obvious nightly backup script a homelab user writes, used as a baseline by bench.py.
# For each stack, one after another: stop it, snapshot its dataset, clone the snapshot to a
# dated path (zfs-fuse has no .zfs/snapshot dir; on OpenZFS users read .zfs/snapshot/<date>,
# which is a new path every night too), borg create from there, start the stack again, prune,
# and remove the clone and the snapshot.
#
# Settings come from the environment (bench.py sets them):
#   SERVICES_DIR     one folder per compose stack (folder name = project = dataset name)
#   PARENT_DATASET   <pool>/<parent>; each stack's data is PARENT_DATASET/<stack>
#   CLONE_PARENT     dataset the dated clones go under (outside PARENT_DATASET)
#   REPO_BASE        one borg repository per stack at REPO_BASE/<stack> (already initialised)
#   BORG_PASSPHRASE  (and BORG_BASE_DIR) for borg
#   NIGHT            the date in the clone path and archive name (default: today)
#   CLONE_ROOT       where the dated clones are mounted (default /run/naive)
set -u
: "${SERVICES_DIR:?}" "${PARENT_DATASET:?}" "${CLONE_PARENT:?}" "${REPO_BASE:?}"
NIGHT=${NIGHT:-$(date +%Y-%m-%d)}
CLONE_ROOT=${CLONE_ROOT:-/run/naive}
status=0

for dir in "$SERVICES_DIR"/*/; do
  svc=$(basename "$dir")
  snap="$PARENT_DATASET/$svc@naive-$NIGHT"
  clone="$CLONE_PARENT/$svc-$NIGHT"
  path="$CLONE_ROOT/$svc-$NIGHT"
  echo "== $svc"
  docker compose -p "$svc" -f "$dir/compose.yaml" stop || status=1
  zfs snapshot "$snap" || { status=1; docker compose -p "$svc" -f "$dir/compose.yaml" start; continue; }
  zfs clone -o readonly=on -o mountpoint="$path" "$snap" "$clone" || status=1
  borg create --compression zstd,3 "$REPO_BASE/$svc::$svc-$NIGHT" "$path" || status=1
  docker compose -p "$svc" -f "$dir/compose.yaml" start || status=1
  borg prune --keep-daily 7 --keep-weekly 4 --keep-monthly 6 "$REPO_BASE/$svc" || status=1
  zfs unmount "$clone"
  for _ in 1 2 3 4 5; do zfs destroy "$clone" 2>/dev/null && break; sleep 0.5; done
  zfs destroy "$snap" || status=1
done
exit $status
