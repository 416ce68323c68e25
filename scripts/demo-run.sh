#!/usr/bin/env bash
# Runs inside `lab/vm.sh with` (see scripts/demo.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
lab() { bash lab/vm.sh ssh "$LAB_STATE" "$@"; }
bold=$'\e[1m' dim=$'\e[2m' off=$'\e[0m'
[[ -t 1 ]] || { bold='' dim='' off=''; }
say() { printf '\n%s== %s ==%s\n' "$bold" "$*" "$off"; }
# Shows and runs a command on one of the lab's hosts, as an admin would type it there.
on() { # host command...
    local host=$1
    shift
    printf '%s%s#%s %s\n' "$bold" "$host" "$off" "$*"
    lab ssh "$host" "$(printf '%q ' "$@")" || printf '%s(exit code %s)%s\n' "$dim" "$?" "$off"
}

bash lab/vm.sh copy "$LAB_STATE" dist/zbm.mjs /usr/local/bin/zbm
lab lab-reset 2>/dev/null

say "The lab: one VM standing for a Proxmox node (pve1), a backup server (zbm-dest) and an offsite replica (zbm-replica)"
on pve1 zbm --version
on pve1 cat /etc/pve/.vmlist
on pve1 cat /etc/pve/qemu-server/100.conf
on pve1 zfs list -o name,type,used,volsize -r rpool/data

say "1. First backup of every guest on pve1: full sends"
on pve1 zbm backup-pve --remote zbm-dest --prefix bak-zbm- --local-zfs-root rpool/data \
    --remote-zfs-root main/bak-zbm --remote-metadata-dir /root/backups_metadata -y

say "A guest writes 1 MiB into its disk"
on pve1 dd if=/dev/urandom of=/dev/zvol/rpool/data/vm-100-disk-0 bs=1M count=1 seek=4 conv=notrunc status=none

say "2. Second backup: incremental, only the changed blocks travel"
on pve1 zbm backup-pve --remote zbm-dest --prefix bak-zbm- --local-zfs-root rpool/data \
    --remote-zfs-root main/bak-zbm --remote-metadata-dir /root/backups_metadata -y

say "3. Replicate the backup server to the offsite replica"
on zbm-dest zbm replicate --remote zbm-replica --remote-zfs-root main/bak-zbm --local-zfs-root main/bak-zbm

say "4. Prune on the backup server, keeping what the replica still needs"
on zbm-dest zbm prune --local-zfs-root main/bak-zbm --prefix bak-zbm- --keep-last 2 --keep-hourly 2 \
    --remote zbm-replica --remote-zfs-root main/bak-zbm -y

say "5. Verify the backups"
on zbm-dest zbm verify --local-zfs-root main/bak-zbm --prefix bak-zbm- --max-age-days 1 --min-snapshots 20

say "Result: snapshot trees"
on pve1 zfs list -t all -o name,used,refer -r rpool/data/vm-100-disk-0
on zbm-dest zfs list -t all -o name,used,refer -r main
on zbm-dest zfs holds -r main/bak-zbm/vm-100-disk-0
on zbm-dest find /root/backups_metadata -type f
