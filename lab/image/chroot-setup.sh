#!/bin/bash
# Runs INSIDE the image's chroot (called by build.sh): kernel, OpenZFS, tools,
# services. Output goes to the build log.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

# --no-install-recommends keeps the image (and the build) small; everything
# the lab needs is named explicitly. confold: keep files we placed.
APT=(apt-get -y -q --no-install-recommends
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

echo "== apt-get update"
apt-get -q update

echo "== kernel, headers, dkms"
# zstd: initramfs-tools then compresses with zstd instead of gzip, which the
# emulated CPU unpacks faster at every boot.
"${APT[@]}" install linux-image-amd64 linux-headers-amd64 initramfs-tools \
    build-essential dkms zstd
kver=$(find /lib/modules -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)
[[ -n $kver ]] || { echo "no kernel under /lib/modules" >&2; exit 1; }
echo "kernel: $kver"

echo "== OpenZFS from bookworm-backports"
# zfs-dkms builds for the kernels found under /lib/modules (not the build
# host's uname -r); checked below anyway.
"${APT[@]}" install -t bookworm-backports zfs-dkms zfsutils-linux

echo "== tools for tests and benchmarks"
# sanoid brings syncoid (a peer to measure against); pv/mbuffer are what such
# tools pipe through.
"${APT[@]}" install pv mbuffer sanoid jq util-linux coreutils psmisc

# zbm files reads guest file systems with 7-Zip; the others build those file
# systems for its tests without mounting anything.
"${APT[@]}" install 7zip fdisk dosfstools mtools xfsprogs ntfs-3g

zver=$(dpkg-query -W -f='${Version}' zfs-dkms)
zver=${zver%%-*}
if ! find "/lib/modules/$kver" -name 'zfs.ko*' | grep -q .; then
    echo "== zfs module missing for $kver: dkms install zfs/$zver"
    dkms install "zfs/$zver" -k "$kver"
fi
find "/lib/modules/$kver" -name 'zfs.ko*' | grep -q . ||
    { echo "zfs module still missing for $kver" >&2; exit 1; }
depmod -a "$kver"
update-initramfs -u -k "$kver" || update-initramfs -c -k "$kver"

# A hostid makes pools owned by this "host" (multihost/import checks).
rm -f /etc/hostid
zgenhostid

echo "== services"
systemctl enable systemd-networkd.service ssh.service
# Nothing that wakes up during a test run or slows the boot: apt and
# housekeeping timers, sanoid's own schedule, wait-online (nothing needs it).
systemctl mask apt-daily.timer apt-daily-upgrade.timer apt-daily.service \
    apt-daily-upgrade.service e2scrub_all.timer e2scrub_reap.service fstrim.timer \
    dpkg-db-backup.timer sanoid.timer sanoid.service sanoid-prune.service \
    systemd-networkd-wait-online.service modprobe@drm.service 2>&1
# No pool exists at boot (lab-reset makes them on file vdevs) and the module
# comes from modules-load.d, so ZFS's boot services only cost time: they pull
# in systemd-udev-settle, which alone took ~7 s of the boot under emulation.
# logind: no pam_systemd here, it would only chew on device events.
systemctl mask zfs-import-cache.service zfs-import-scan.service \
    zfs-load-module.service zfs-mount.service zfs-share.service \
    zfs-volume-wait.service zfs-scrub-monthly@.timer zfs-trim-monthly@.timer \
    systemd-udev-settle.service systemd-logind.service 2>&1

# Facts for build.sh and the README.
mkdir -p /etc/lab
echo "$kver" >/etc/lab/kernel-version
echo "$zver" >/etc/lab/zfs-version
echo "== chroot setup done: kernel $kver, zfs $zver"
