#!/usr/bin/env bash
# Builds the VM image of the zbm ZFS lab, or finds it in the cache.
#
# The host kernel cannot load ZFS, so tests run against a real OpenZFS inside a
# qemu (TCG) VM. Building that VM takes ~5 minutes, so the result is cached
# under $ZBM_LAB_CACHE/<recipe hash>/ and rebuilt only when the recipe changes
# (this script, anything under lab/image/ or lab/guest/, or the host's node).
#
# Output (stdout): the cache directory, holding vmlinuz, initrd.img,
# base.qcow2, id_ed25519(.pub) and build.log. Progress goes to stderr.
set -euo pipefail

# Bash reads a script while it runs it: the braces make it parse the whole body
# first, so editing this file (a git checkout) during a build is harmless.
{
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB=$(dirname "$HERE")
CACHE_ROOT=${ZBM_LAB_CACHE:-/var/cache/zbm-lab}
# Only Debian's own mirror is reachable from this workplace.
MIRROR=${ZBM_LAB_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
# The root fs also holds the pools' file vdevs (3 x 1 GiB sparse) and whatever
# tests write, so leave several GiB free. ext4 + qcow2 keep it sparse on disk.
IMAGE_SIZE=6G
# How many finished images to keep; older recipes are pruned after a build.
KEEP_IMAGES=${ZBM_LAB_KEEP_IMAGES:-2}

START=$SECONDS
log() { printf '[lab-build +%3ds] %s\n' "$((SECONDS - START))" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $EUID -eq 0 ]] || die "must run as root (debootstrap, chroot, mounts)"

# --- host packages -----------------------------------------------------------
# Installed only when missing, so a warm run stays a few dpkg queries long.
HOST_PACKAGES=(qemu-system-x86 qemu-utils debootstrap e2fsprogs openssh-client)
ensure_host_packages() {
    local missing=() p
    for p in "${HOST_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return 0
    local aptlog=/var/log/zbm-lab-host-packages.log
    log "installing host packages: ${missing[*]} (log: $aptlog)"
    # A fresh machine may have no package lists at all: update first.
    if ! { apt-get update -q &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            "${missing[@]}"; } >"$aptlog" 2>&1; then
        tail -n 20 "$aptlog" >&2
        die "installing host packages failed"
    fi
}
ensure_host_packages

NODE_BIN=$(command -v node || true)
[[ -n $NODE_BIN ]] || die "host has no node binary to copy into the image"
NODE_BIN=$(readlink -f "$NODE_BIN")

# --- recipe hash ---------------------------------------------------------------
# File names and contents under image/ and guest/ (this script included) plus the
# node version: any change gives a new cache directory, never a stale image. The
# lab's own scripts (guest/usr/local: lab-reset, the qm fake, the zfs and ssh
# wrappers) are left out: vm.sh copies them into every VM it starts, so editing
# them needs no rebuild.
recipe_hash() {
    {
        "$NODE_BIN" --version
        cd "$LAB"
        find image guest -type f ! -path 'guest/usr/local/*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
    } | sha256sum | cut -c1-16
}
HASH=$(recipe_hash)
OUT=$CACHE_ROOT/$HASH

if [[ -f $OUT/.complete ]]; then
    log "image is cached (recipe $HASH)"
    echo "$OUT"
    exit 0
fi

# --- lock -----------------------------------------------------------------------
# Two test runs starting at once must not both build (or half-see a build).
mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/.lock"
if ! flock -n 9; then
    log "another build holds $CACHE_ROOT/.lock; waiting"
    flock 9
fi
if [[ -f $OUT/.complete ]]; then
    log "image was built meanwhile (recipe $HASH)"
    echo "$OUT"
    exit 0
fi
# Leftovers of killed builds: safe to remove while we hold the lock, but only
# if nothing is still mounted inside them (rm -rf through a /dev bind would
# delete the host's device nodes).
for stale in "$CACHE_ROOT"/.build-*; do
    [[ -e $stale ]] || continue
    if findmnt -rn -o TARGET | grep -q "^$stale/"; then
        log "WARNING: $stale still has mounts; leaving it alone"
    else
        rm -rf --one-file-system "$stale"
    fi
done

WORK=$(mktemp -d "$CACHE_ROOT/.build-$HASH.XXXXXX")
ROOTFS=$WORK/rootfs
STAGE=$WORK/out
LOGFILE=$WORK/build.log
# .deb files are kept between builds: a recipe change then re-downloads nothing.
DEBCACHE=$CACHE_ROOT/debs
mkdir -p "$STAGE" "$DEBCACHE"
: >"$LOGFILE"
log "building recipe $HASH in $WORK (log: $LOGFILE)"

MOUNTS=()
mount_chroot() {
    # Non-recursive binds so that unmounting is exact and complete.
    # Each mount is recorded right after it succeeds, so a failure half way
    # still unmounts what was mounted.
    mount -t proc proc "$ROOTFS/proc"
    MOUNTS+=("$ROOTFS/proc")
    mount -t sysfs sysfs "$ROOTFS/sys"
    MOUNTS+=("$ROOTFS/sys")
    mount --bind /dev "$ROOTFS/dev"
    MOUNTS+=("$ROOTFS/dev")
    mount --bind /dev/pts "$ROOTFS/dev/pts"
    MOUNTS+=("$ROOTFS/dev/pts")
    mkdir -p "$ROOTFS/var/cache/apt/archives"
    mount --bind "$DEBCACHE" "$ROOTFS/var/cache/apt/archives"
    MOUNTS+=("$ROOTFS/var/cache/apt/archives")
}
umount_chroot() {
    local i
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        umount "${MOUNTS[i]}" 2>/dev/null || umount -l "${MOUNTS[i]}" || true
    done
    MOUNTS=()
}
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    local rc=$?
    umount_chroot
    if ((rc != 0)); then
        cp "$LOGFILE" "$CACHE_ROOT/build-failed-$HASH.log" 2>/dev/null || true
        log "FAILED (exit $rc); last log lines:"
        tail -n 30 "$LOGFILE" >&2 || true
        log "full log: $CACHE_ROOT/build-failed-$HASH.log"
    fi
    if findmnt -rn -o TARGET | grep -q "^$WORK/"; then
        log "WARNING: mounts remain under $WORK; not deleting it"
    else
        rm -rf --one-file-system "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
# Turn signals into a normal exit so that the EXIT trap unmounts everything.
trap 'exit 130' INT
trap 'exit 143' TERM

# Runs a command with its output in the build log only.
quiet() { "$@" >>"$LOGFILE" 2>&1; }

# --- 1. base system -------------------------------------------------------------
log "phase 1/5: debootstrap $SUITE (~1 min)"
quiet debootstrap --variant=minbase --cache-dir="$DEBCACHE" \
    --include=systemd-sysv,udev,kmod,dbus,iproute2,procps,openssh-server,ca-certificates,less \
    "$SUITE" "$ROOTFS" "$MIRROR"

# Sources only inside the VM's root fs: the host's apt setup stays untouched.
# contrib carries zfs-dkms; bookworm-backports has OpenZFS 2.3.
rm -f "$ROOTFS/etc/apt/sources.list"
cat >"$ROOTFS/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: bookworm bookworm-updates bookworm-backports
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
# No daemon may start inside the chroot (it would run on the build host).
printf '#!/bin/sh\nexit 101\n' >"$ROOTFS/usr/sbin/policy-rc.d"
chmod 755 "$ROOTFS/usr/sbin/policy-rc.d"
# The VM is node "pve1" of the fake cluster; PVE names nodes by hostname.
echo pve1 >"$ROOTFS/etc/hostname"
cat >"$ROOTFS/etc/hosts" <<'EOF'
127.0.0.1	localhost
127.0.1.1	pve1
::1	localhost ip6-localhost ip6-loopback
EOF
# apt in the chroot resolves names with the host's resolver.
cp -L /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
# Root is /dev/vda (no partition table); fsck pass 0: the base is clean and
# every run gets a fresh overlay.
echo '/dev/vda / ext4 rw,noatime 0 0' >"$ROOTFS/etc/fstab"

# --- 2. kernel, ZFS, tools (inside the chroot) ------------------------------------
log "phase 2/5: kernel + dkms + OpenZFS from bookworm-backports (~5 min)"
mount_chroot
install -m 755 "$HERE/chroot-setup.sh" "$ROOTFS/tmp/chroot-setup.sh"
quiet chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive /bin/bash /tmp/chroot-setup.sh
rm -f "$ROOTFS/tmp/chroot-setup.sh"

# --- 3. lab files, node, keys ---------------------------------------------------------
log "phase 3/5: lab files, node, ssh keys"
# tar instead of cp -a: owner root regardless of the checkout's owner, and
# --no-overwrite-dir keeps modes of existing dirs (/root must stay 0700).
tar -C "$LAB/guest" --owner=0 --group=0 -cf - . |
    tar -C "$ROOTFS" --no-overwrite-dir -xf -
chmod 755 "$ROOTFS"/usr/local/sbin/* "$ROOTFS"/usr/local/bin/*
install -m 755 "$NODE_BIN" "$ROOTFS/usr/local/bin/node"
mkdir -p "$ROOTFS/var/log/lab" "$ROOTFS/etc/lab/agent" "$ROOTFS/var/tmp/lab"

# Key for host -> VM access (vm.sh), kept beside the image.
ssh-keygen -q -t ed25519 -N '' -C zbm-lab-host -f "$STAGE/id_ed25519"
# Key for VM -> itself under the aliases pve1/zbm-dest/zbm-replica.
install -d -m 700 "$ROOTFS/root/.ssh"
rm -f "$ROOTFS/root/.ssh/id_ed25519" "$ROOTFS/root/.ssh/id_ed25519.pub"
ssh-keygen -q -t ed25519 -N '' -C root@pve1 -f "$ROOTFS/root/.ssh/id_ed25519"
cat "$STAGE/id_ed25519.pub" "$ROOTFS/root/.ssh/id_ed25519.pub" \
    >"$ROOTFS/root/.ssh/authorized_keys"
# Pre-seeded known_hosts: no "Permanently added" warnings on stderr that
# tests might trip over. All aliases reach 127.0.0.1:22.
hostkey=$(cat "$ROOTFS/etc/ssh/ssh_host_ed25519_key.pub")
printf '127.0.0.1 %s\nlocalhost %s\n' "$hostkey" "$hostkey" >"$ROOTFS/root/.ssh/known_hosts"
chmod 600 "$ROOTFS/root/.ssh/config" "$ROOTFS/root/.ssh/authorized_keys" \
    "$ROOTFS/root/.ssh/known_hosts"
chown -R 0:0 "$ROOTFS/root/.ssh"

# The copied node must run on the image's libc: check now, not at test time.
node_version=$(chroot "$ROOTFS" /usr/local/bin/node --version)
log "node $node_version runs in the image"
umount_chroot
# No DNS in the VM: it needs none, and lookups must not leave the machine.
echo '# zbm lab: no DNS on purpose' >"$ROOTFS/etc/resolv.conf"
# The VM itself may start services if a test installs something.
rm -f "$ROOTFS/usr/sbin/policy-rc.d"
# Installed packages are done; the lab never runs apt at boot.
rm -rf "$ROOTFS/var/lib/apt/lists/"* "$ROOTFS/var/cache/apt/"*.bin

# --- 4. kernel + initrd out, disk image -------------------------------------------------
log "phase 4/5: disk image ($IMAGE_SIZE ext4 -> qcow2)"
kver=$(cat "$ROOTFS/etc/lab/kernel-version")
cp "$ROOTFS/boot/vmlinuz-$kver" "$STAGE/vmlinuz"
cp "$ROOTFS/boot/initrd.img-$kver" "$STAGE/initrd.img"
# mkfs.ext4 -d fills the fs from a directory: no loop devices needed.
# -m 0: no reserved blocks, the vdevs need the room.
quiet mkfs.ext4 -q -F -m 0 -L zbm-lab -d "$ROOTFS" "$WORK/base.raw" "$IMAGE_SIZE"
quiet qemu-img convert -f raw -O qcow2 "$WORK/base.raw" "$STAGE/base.qcow2"
rm -f "$WORK/base.raw"
# The base must never change under an overlay.
chmod 444 "$STAGE/base.qcow2"

# --- 5. publish atomically ---------------------------------------------------------------
log "phase 5/5: publishing"
{
    echo "recipe=$HASH"
    echo "kernel=$kver"
    echo "zfs=$(cat "$ROOTFS/etc/lab/zfs-version")"
    echo "node=$node_version"
    echo "built=$(date -u +%FT%TZ)"
    echo "seconds=$((SECONDS - START))"
} >"$STAGE/.complete.tmp"
cp "$LOGFILE" "$STAGE/build.log"
mv "$STAGE/.complete.tmp" "$STAGE/.complete"
mv -T "$STAGE" "$OUT"

# Keep the newest images only; a running VM keeps its open base file anyway.
mapfile -t old < <(find "$CACHE_ROOT" -mindepth 2 -maxdepth 2 -name .complete -printf '%T@ %h\n' |
    sort -rn | tail -n +"$((KEEP_IMAGES + 1))" | cut -d' ' -f2-)
for d in "${old[@]}"; do
    [[ $d == "$OUT" ]] || { log "pruning old image $d"; rm -rf --one-file-system "$d"; }
done

log "done in $((SECONDS - START)) s: $OUT"
echo "$OUT"
exit 0
}
