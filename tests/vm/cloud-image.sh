#!/usr/bin/env bash
# The provisioning scenario's image: the services-VM image (build-image.sh) plus what a Debian
# cloud image carries and the playbook's apt tasks ask for, so the guest boots as a user's new
# VM does (cloud-init reads the NoCloud seed, creates the admin user) and `make fleet-apply`
# finds every package present (the guest has no route to a mirror).
#
#   bash tests/vm/cloud-image.sh BASE_IMAGE_DIR    # prints the image directory on its last line
#
# A copy of the base root.img with the packages installed in a chroot from the mirror: about a
# minute, where adding them to build-image.sh would rebuild OpenZFS by DKMS (10-20 min) and
# change the image every other scenario boots. cloud-init is configured to look for a NoCloud
# seed only (a vfat/iso9660 disk labelled cidata): without one, ds-identify disables it. It
# leaves the network to the image's systemd-networkd. Cached next to the base, keyed by the
# base's directory name and this script; an older key is removed once a new one is complete.
set -euo pipefail
base="$(cd "$1" && pwd)"
MIRROR="${VM_MIRROR:-http://deb.debian.org/debian}"
# cloud-init and sudo: a cloud image's own; rsync (ansible.posix.synchronize), ufw (role
# firewall), python3-apt (ansible's apt modules): what role admin_user installs.
EXTRA=(cloud-init sudo rsync ufw python3-apt)

log() { echo "cloud-image: $*" >&2; }
die() { log "$*"; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (mount, chroot)"
[ -f "$base/complete" ] || die "$base is not a complete image (tests/vm/build-image.sh)"
suite=$(sed -n 's/^suite //p' "$base/times")
key=$( { echo "$(basename "$base") $MIRROR ${EXTRA[*]}"; cat "$0"; } | sha256sum | cut -c1-12)
cache="$(dirname "$base")"
out="$cache/$suite-cloud-$key"
exec 9>"$cache/build.lock"
flock -w 3600 9 || die "another build held $cache/build.lock for an hour"
if [ -f "$out/complete" ]; then
  log "cached: $out"
  echo "$out"; exit 0
fi

work="$out.tmp"
rm -rf "$work"; mkdir -p "$work/mnt"
started=$(date +%s)
cp --sparse=always "$base/root.img" "$work/root.img"
for f in vmlinuz initrd.img id_ed25519 id_ed25519.pub zfs-version versions; do cp "$base/$f" "$work/$f"; done
mnt="$work/mnt"
cleanup() {
  for m in dev/pts dev proc sys ""; do umount "$mnt/$m" 2>/dev/null || true; done
}
trap cleanup EXIT
mount -o loop "$work/root.img" "$mnt"
mount -t proc proc "$mnt/proc"; mount -t sysfs sys "$mnt/sys"
mount --bind /dev "$mnt/dev"; mount --bind /dev/pts "$mnt/dev/pts"
resolv=$(mktemp); cp -a "$mnt/etc/resolv.conf" "$resolv" 2>/dev/null || : > "$resolv"
rm -f "$mnt/etc/resolv.conf"; cp /etc/resolv.conf "$mnt/etc/resolv.conf"
echo "deb $MIRROR $suite main contrib" > "$mnt/etc/apt/sources.list.d/cloud-image.list"
printf '#!/bin/sh\nexit 101\n' > "$mnt/usr/sbin/policy-rc.d"; chmod +x "$mnt/usr/sbin/policy-rc.d"  # start nothing in the chroot
{
  chroot "$mnt" apt-get -q update
  chroot "$mnt" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-unsafe-io "${EXTRA[@]}"
  chroot "$mnt" apt-get clean
} > "$work/build.log" 2>&1 || { tail -n 30 "$work/build.log" >&2; die "apt-get in the image failed (log: $work/build.log)"; }
rm -f "$mnt/usr/sbin/policy-rc.d" "$mnt/etc/apt/sources.list.d/cloud-image.list"
rm -rf "$mnt/var/lib/apt/lists/"*
rm -f "$mnt/etc/resolv.conf"; cp -a "$resolv" "$mnt/etc/resolv.conf"; rm -f "$resolv"
cat > "$mnt/etc/cloud/cloud.cfg.d/90-orchestrator-vm.cfg" <<'CFG'
# The VM lab: a NoCloud seed disk (label cidata) or nothing (cloud-init then stays disabled);
# the network is systemd-networkd's (DHCP), as the image has it.
datasource_list: [ NoCloud ]
network: {config: disabled}
locale: C.UTF-8
CFG
{ cat "$base/versions"
  for pkg in "${EXTRA[@]}"; do echo "$pkg $(chroot "$mnt" dpkg-query -W -f '${Version}' "$pkg")"; done
} > "$work/versions"
cleanup; trap - EXIT
rmdir "$mnt"
printf 'suite %s\nbase %s\ncloud %ss\n' "$suite" "$(basename "$base")" $(( $(date +%s) - started )) > "$work/times"
touch "$work/complete"
for old in "$cache/$suite-cloud-"*; do
  [ "$old" = "$work" ] || [ "$old" = "$out" ] || rm -rf "$old"
done
rm -rf "$out"; mv "$work" "$out"
log "built $out in $(( $(date +%s) - started ))s"
echo "$out"
