#!/usr/bin/env bash
# make demo: the nightly cycle on a sandbox, on a fresh Debian machine, as root.
#
# Installs what is missing (tests/lab/lab.sh up: zfs-fuse with a file-backed pool, dockerd with
# userns-remap, borg, locally built busybox/caddy images), builds a sandbox under
# /var/tmp/orchestrator-demo (its own .env, a services dir with a Caddy hub and two spokes, a
# local borg repository per dataset), runs the real backup-all, lists the archives, extracts
# one into a temp dir and compares it with the snapshot, file by file, owners included.
#
#   make demo         run it (again: it starts from a clean sandbox each time)
#   make demo-clean   remove the sandbox (the lab stays; `make lab-down` removes it)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEMO=${DEMO_DIR:-/var/tmp/orchestrator-demo}
PY=${PYTHON:-$ROOT/.venv/bin/python}
ENV_FILE=$DEMO/.env
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
orch() { echo "\$ orchestrator $*"; "$PY" "$ROOT/orchestrator.py" --env-file "$ENV_FILE" "$@"; }

clean() {
  [ -f "$ENV_FILE" ] && "$PY" "$ROOT/orchestrator.py" --env-file "$ENV_FILE" docker-down >/dev/null 2>&1 || true
  # also when an earlier demo ran from another DEMO_DIR: its containers carry the same names
  docker rm -f demo_central_hub demo_git demo_photo >/dev/null 2>&1 || true
  for net in demo_git_net demo_photo_net; do docker network rm "$net" >/dev/null 2>&1 || true; done
  if [ -n "${LAB_POOL:-}" ]; then
    for ds in "$LAB_POOL/demo-compare" "$LAB_POOL/demo-views" "$LAB_POOL/demo"; do
      if timeout 30 zfs list -H "$ds" >/dev/null 2>&1; then
        timeout 60 zfs unmount -f "$ds" 2>/dev/null || true
        for _ in 1 2 3 4 5; do timeout 120 zfs destroy -r -f "$ds" 2>/dev/null && break; sleep 1; done
      fi
    done
  fi
  rm -rf "$DEMO"
}

step "1. the lab: real zfs-fuse, dockerd (userns-remap), borg, images built locally"
bash tests/lab/lab.sh up
eval "$(bash tests/lab/lab.sh env | sed 's/^\([A-Z_]*\)=\(.*\)$/\1="\2"/')"
if [ "${1:-}" = clean ]; then clean; echo "demo sandbox removed ($DEMO, $LAB_POOL/demo)"; exit 0; fi
[ -x "$PY" ] || { python3 -m venv "$ROOT/.venv"; "$ROOT/.venv/bin/pip" install -q -r requirements.txt; }
clean

step "2. a sandbox: its own .env, services dir (hub + git + photo), local borg repositories"
mkdir -p "$DEMO/management" "$DEMO/services"
chmod 755 "$DEMO" "$DEMO/services"
umask 077
head -c 32 /dev/urandom | base64 >"$DEMO/passphrase"
umask 022
BASE=$LAB_POOL_MOUNTPOINT/demo
cat >"$ENV_FILE" <<EOF
ADMIN_USER=root
MANAGEMENT_DIR=$DEMO/management
VENV_DIR=$ROOT/.venv
SERVICES_DIR=$DEMO/services
HUB_SERVICE=reverseproxy
ZFS_PARENT_DATASET=$LAB_POOL/demo
ZFS_BASE_MOUNTPOINT=$BASE
VIEW_DATASET=$LAB_POOL/demo-views
VIEW_MOUNTPOINT=$DEMO/views
BORG_REPO_BASE_PATH=$DEMO/repos
BORG_PASSPHRASE_FILE=$DEMO/passphrase
LOCK_FILE=$DEMO/orchestrator.lock
STATE_DIR=$DEMO/state
REMAPPED_ROOT_UID=100000
REMAPPED_APP_UID=100999
SERVICE_VOLUME_PATHS_AND_OWNERS="
reverseproxy/data:REMAPPED_ROOT_UID
git/data:REMAPPED_APP_UID
photo/data:REMAPPED_APP_UID
"
BORG_RETENTION_OVERRIDES="
git:daily=365
photo:daily=90
"
EOF
chmod 600 "$ENV_FILE"
PORT=${DEMO_PORT:-8443}
"$PY" - "$DEMO/services" "$BASE" "$LAB_BUSYBOX_IMAGE" "$LAB_CADDY_IMAGE" "$PORT" <<'EOF'
import sys
from pathlib import Path
sys.path.insert(0, ".")
from tests.lab.stacks import write_services
services, base, busybox, caddy, port = sys.argv[1:]
write_services(Path(services), prefix="demo_", busybox_image=busybox, caddy_image=caddy, base=Path(base),
               spokes=["git", "photo"], port=int(port))
EOF
echo "wrote $ENV_FILE and $DEMO/services/{reverseproxy,git,photo}/compose.yaml"
orch config check

step "3. storage: datasets, directories owned by the remapped users"
orch setup-storage
"$PY" - "$BASE" <<'EOF'
import random, sys
from pathlib import Path
sys.path.insert(0, ".")
from tests.lab.stacks import seed
rng = random.Random(42)
for svc in ("git", "photo"):
    files = {"index.html": f"<h1>{svc} demo</h1>\n".encode()}
    files.update({f"album{i % 4}/item{i}.bin": rng.randbytes(rng.randint(1000, 200_000)) for i in range(40)})
    seed(Path(sys.argv[1]), svc, files)
print("seeded 41 files into each of git/data and photo/data")
EOF

step "4. the stacks: hub first, then the spokes"
orch docker-up
for svc in git photo; do
  printf '%s via the hub: ' "$svc"
  curl -sk --max-time 10 --resolve "$svc.lab.test:$PORT:127.0.0.1" "https://$svc.lab.test:$PORT/" | head -n1
done

# zfs-fuse keeps 1-second timestamps and borg never caches a file whose ctime is the newest of
# its run: one file written a second after everything else takes that role (docs/backup.md).
sleep 1.1
for d in git/data photo/data reverseproxy/data; do
  echo "newest file" >"$BASE/$d/stamp.txt"; chown "$(stat -c %u:%g "$BASE/$d")" "$BASE/$d/stamp.txt"
done

step "5. a snapshot to compare with later (the spokes never write, so it equals the backup's)"
timeout 60 zfs snapshot "$LAB_POOL/demo/git@demo-compare"

step "6. the nightly cycle: backup-all"
orch backup

step "7. the archives"
orch list-archives git
ARCHIVE=$("$PY" "$ROOT/orchestrator.py" --env-file "$ENV_FILE" list-archives git | tail -n1 | awk '{print $1}')

step "8. the next night, nothing changed: no borg run for the spokes, the first archive still holds them"
orch backup

step "8b. one new file in git, another night: borg reads it (and the stack folder's fresh copy) and nothing else"
sleep 1.1   # 1-second timestamps: a change must not share the snapshot's second
echo "a new page" >"$BASE/git/data/new.html"; chown "$(stat -c %u:%g "$BASE/git/data")" "$BASE/git/data/new.html"
sleep 1.1
orch backup

step "9. restore $ARCHIVE into a temp dir and compare with the snapshot"
RESTORE=$(mktemp -d /var/tmp/orchestrator-demo-restore.XXXXXX)
rmdir "$RESTORE"
orch extract-archive git "$ARCHIVE" "$RESTORE"
timeout 60 zfs clone -o readonly=on -o mountpoint="$DEMO/compare" "$LAB_POOL/demo/git@demo-compare" "$LAB_POOL/demo-compare"
# owner, mode and (for files) size of every entry; a directory's size is the filesystem's business
# (the stack folder rides along in the archive under .orchestrator-stack/; the data is beside it)
listing() { (cd "$1" && find . -path ./.orchestrator-stack -prune -o \( -type d -printf '%P %U:%G %m dir\n' \) \
  -o -printf '%P %U:%G %m %s\n' | sort); }
echo "stack folder in the archive: $(cd "$RESTORE/.orchestrator-stack" && ls -A | tr '\n' ' ')"
if diff -r -x .orchestrator-stack "$DEMO/compare" "$RESTORE" && diff <(listing "$DEMO/compare") <(listing "$RESTORE"); then
  echo "restored archive == snapshot: $(listing "$RESTORE" | wc -l) entries, same bytes, owners and modes"
  same=1
else
  echo "MISMATCH between the snapshot and the restored archive"; same=0
fi
timeout 60 zfs unmount "$LAB_POOL/demo-compare" || true
timeout 60 zfs destroy "$LAB_POOL/demo-compare" || true
rm -rf "$RESTORE"

step "10. the restore drill: each latest archive extracted to scratch, compared with its kept snapshot"
orch drill

step "done"
cat <<EOF
What happened: the stacks were stopped for seconds, one atomic 'zfs snapshot -r' froze
all three datasets, the stacks came back, and borg read the snapshot through read-only
views into one encrypted repository per dataset ($DEMO/repos/<service>).
Try:   $PY orchestrator.py --env-file $ENV_FILE backup        (unchanged; touch a file first, see it read)
       $PY orchestrator.py --env-file $ENV_FILE restore git <archive>   (data and stack folder)
       $PY orchestrator.py --env-file $ENV_FILE status
Clean: make demo-clean   (the sandbox)   and   make lab-down   (the lab itself)
EOF
[ "$same" = 1 ]
