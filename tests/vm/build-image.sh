#!/usr/bin/env bash
# Build (or reuse) the services-VM image: a Debian root filesystem with the stock kernel,
# systemd, sshd, docker.io, compose v2, borg and OpenZFS, the OpenZFS kernel module compiled by DKMS
# inside the image's chroot for the image's own kernel (inside a TCG guest it would take
# hours). Cached under VM_CACHE keyed by every input, so a second run on the same machine
# reuses it; an older key is removed once a new image is complete.
#
#   bash tests/vm/build-image.sh                   # trixie (Debian 13), the main target
#   VM_SUITE=bookworm bash tests/vm/build-image.sh # Debian 12
# It prints the image directory on its last line.
#
# Two runs at once (`make test` starts one in the background while the host tests run) do not
# both build: the second waits for the first on a lock, then finds the image cached.
#
# The image directory holds root.img (raw ext4, never written: every VM boots a qcow2
# overlay on it), vmlinuz, initrd.img, the ssh key pair root logs in with, build.log, and
# `versions` (the Debian packages of docker, compose, OpenZFS, borg and Python in the image).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
SUITE="${VM_SUITE:-trixie}"
MIRROR="${VM_MIRROR:-http://deb.debian.org/debian}"
CACHE="${VM_CACHE:-/var/tmp/orchestrator-vm}"
COMPOSE_V2_PLUGIN=/usr/local/lib/docker/cli-plugins/docker-compose
# What a services VM runs: the kernel and its headers (for DKMS), OpenZFS and its event daemon
# (zfs-zed: zfsutils-linux only recommends it, and mmdebstrap installs no recommends), Docker (apparmor:
# without it every container fails to start), borg and its FUSE bindings (make mount), sshd, what `make install` needs, and
# busybox-static + caddy to build the test stacks' images locally (no registry is reachable).
PACKAGES=(systemd-sysv udev kmod dbus linux-image-amd64 linux-headers-amd64 zfs-dkms zfsutils-linux zfs-zed
  docker.io apparmor openssh-server borgbackup python3-llfuse python3 python3-venv make cron logrotate
  busybox-static caddy iproute2 e2fsprogs procps ca-certificates)
# Compose v2 as a user of each release gets it. trixie: Debian's own `docker-compose` (2.26,
# a docker CLI plugin in /usr/libexec/docker/cli-plugins, /usr/bin/docker-compose a symlink to
# it) and `docker-cli`, which docker.io only recommends there (mmdebstrap installs no
# recommends; `make install` does). bookworm's `docker-compose` is v1 (1.29): its image gets
# the lab's v2 plugin binary instead, in /usr/local/lib/docker/cli-plugins.
case "$SUITE" in
  bookworm) COMPOSE_PLUGIN="$COMPOSE_V2_PLUGIN" ;;
  *) PACKAGES+=(docker-cli docker-compose); COMPOSE_PLUGIN= ;;
esac

log() { echo "build-image: $*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (mmdebstrap, chroot, mkfs)"
for tool in mmdebstrap mkfs.ext4 sha256sum; do command -v "$tool" >/dev/null || die "$tool is missing (apt-get install mmdebstrap e2fsprogs)"; done
[ -z "$COMPOSE_PLUGIN" ] || [ -x "$COMPOSE_PLUGIN" ] || die "$COMPOSE_PLUGIN is missing: run 'bash tests/lab/lab.sh up' first (it installs compose v2)"

mkdir -p "$CACHE"
exec 9>"$CACHE/build.lock"
flock -w 3600 9 || die "another build held $CACHE/build.lock for an hour"

key=$( { echo "$SUITE $MIRROR ${PACKAGES[*]}"; cat "$0" "$here/customize.sh"; [ -z "$COMPOSE_PLUGIN" ] || sha256sum < "$COMPOSE_PLUGIN"; } \
       | sha256sum | cut -c1-12)
out="$CACHE/$SUITE-$key"
if [ -f "$out/complete" ]; then
  log "cached: $out"
  echo "$out"; exit 0
fi

work="$out.tmp"
rm -rf "$work"; mkdir -p "$work"
started=$(date +%s)
ssh-keygen -q -t ed25519 -N '' -C orchestrator-vm -f "$work/id_ed25519"
log "mmdebstrap $SUITE (${#PACKAGES[@]} packages, OpenZFS via DKMS): several minutes, log in $work/build.log"
components=main,contrib
# dpkg without fsync and without documentation: a throwaway image, built once.
mmdebstrap --variant=minbase --components="$components" --include="$(IFS=,; echo "${PACKAGES[*]}")" \
  --dpkgopt=force-unsafe-io --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
  --aptopt='Acquire::Languages "none"' \
  --customize-hook="bash '$here/customize.sh' \"\$1\" '$work/id_ed25519.pub' '$COMPOSE_PLUGIN'" \
  "$SUITE" "$work/rootfs" "$MIRROR" >"$work/build.log" 2>&1 || { tail -n 30 "$work/build.log" >&2; die "mmdebstrap failed (log: $work/build.log)"; }
built=$(date +%s)

kver=$(cat "$work/rootfs/etc/orchestrator-vm-kernel")
cp "$work/rootfs/boot/vmlinuz-$kver" "$work/vmlinuz"
cp "$work/rootfs/boot/initrd.img-$kver" "$work/initrd.img"
cp "$work/rootfs/etc/orchestrator-vm-zfs" "$work/zfs-version"
cp "$work/rootfs/etc/orchestrator-vm-versions" "$work/versions"
# An ext4 image straight from the directory; sparse, so 8G costs only what is written.
truncate -s 8G "$work/root.img"
mkfs.ext4 -q -L vmroot -d "$work/rootfs" "$work/root.img"
rm -rf "$work/rootfs"
printf 'suite %s\nkernel %s\nzfs %s\nmmdebstrap+dkms %ss\nimage %ss\n' "$SUITE" "$kver" "$(cat "$work/zfs-version")" \
  $((built - started)) $(( $(date +%s) - built )) > "$work/times"
touch "$work/complete"
for old in "$CACHE/$SUITE"-*; do
  [ "$old" = "$work" ] || [ "$old" = "$out" ] || rm -rf "$old"
done
rm -rf "$out"; mv "$work" "$out"
log "built $out in $(( $(date +%s) - started ))s (kernel $kver, $(cat "$out/zfs-version"))"
echo "$out"
