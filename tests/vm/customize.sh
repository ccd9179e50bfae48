#!/usr/bin/env bash
# mmdebstrap --customize-hook for the services-VM image: $1 the root filesystem, $2 the public
# key root logs in with, $3 the compose v2 plugin binary to install (empty: the suite's own
# docker-compose package is compose v2). Runs on the host, with mmdebstrap's /proc, /sys and
# /dev mounted in the chroot.
set -euo pipefail
root="$1" pubkey="$2" compose="${3:-}"

kver=$(basename "$(ls -d "$root"/lib/modules/*/ | head -n1)")
echo "$kver" > "$root/etc/orchestrator-vm-kernel"
# OpenZFS for the image's kernel, built natively here (the chroot's compilers, the host's
# CPUs). zfs-dkms's own postinst builds for the running (host) kernel only when it has headers.
zfsver=$(chroot "$root" dpkg-query -W -f '${Version}' zfs-dkms | sed 's/-.*//')
if ! chroot "$root" dkms status -k "$kver" "zfs/$zfsver" | grep -q installed; then
  chroot "$root" dkms install -j "$(nproc)" "zfs/$zfsver" -k "$kver"
fi
chroot "$root" depmod "$kver"
chroot "$root" modinfo -k "$kver" zfs >/dev/null
echo "OpenZFS $zfsver" > "$root/etc/orchestrator-vm-zfs"

echo servicesvm > "$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 servicesvm\n' > "$root/etc/hosts"
cat > "$root/etc/fstab" <<'FSTAB'
/dev/vda / ext4 defaults,errors=remount-ro 0 1
LABEL=borg /srv/borg ext4 defaults,nofail,x-systemd.device-timeout=20s 0 2
FSTAB
mkdir -p "$root/srv/borg"
# qemu's user-mode network: DHCP on whatever the NIC is called.
mkdir -p "$root/etc/systemd/network"
printf '[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n' > "$root/etc/systemd/network/80-dhcp.network"
chroot "$root" systemctl enable systemd-networkd.service ssh.service >/dev/null 2>&1
# Timers that would wake up a slow TCG guest for nothing.
chroot "$root" systemctl mask apt-daily.timer apt-daily-upgrade.timer man-db.timer e2scrub_all.timer fstrim.timer >/dev/null 2>&1 || true
install -d -m 0700 "$root/root/.ssh"
install -m 0600 "$pubkey" "$root/root/.ssh/authorized_keys"
[ -z "$compose" ] || install -D -m 0755 "$compose" "$root/usr/local/lib/docker/cli-plugins/docker-compose"
# What the image was built with, as Debian names it (the VM suite measures them in the guest too).
{ . "$root/etc/os-release"; echo "debian $VERSION_ID ($VERSION_CODENAME)"; echo "kernel $kver"
  for pkg in docker.io docker-compose zfsutils-linux zfs-zed borgbackup python3; do
    echo "$pkg $(chroot "$root" dpkg-query -W -f '${Version}' "$pkg" 2>/dev/null || echo -)"
  done
  [ -z "$compose" ] || echo "compose-plugin $("$compose" version --short 2>/dev/null || echo ?) (the lab's binary)"
} > "$root/etc/orchestrator-vm-versions"
# The guest has no route out (user networking with restrict=on): nothing to fetch at boot.
rm -f "$root/etc/apt/sources.list.d/"* 2>/dev/null || true
