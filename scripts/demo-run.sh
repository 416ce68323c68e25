#!/usr/bin/env bash
# Runs inside `lab/vm.sh with` (see scripts/demo.sh): the original design's workflow with its exact
# commands, on the lab's three hosts: pve1 (Proxmox node), zbm-dest (backup server), zbm-replica
# (offsite replica, a VM of its own).
set -euo pipefail
cd "$(dirname "$0")/.."
lab() { bash lab/vm.sh ssh "$LAB_STATE" "$@"; }
bold='' dim='' off=''
if [[ -t 1 ]]; then bold=$'\e[1m' dim=$'\e[2m' off=$'\e[0m'; fi
say() { printf '\n%s== %s ==%s\n' "$bold" "$*" "$off"; }
# Shows and runs a command on one of the lab's hosts, as an admin would type it there.
on() { # host command...
    local host=$1 rc=0
    shift
    printf '%sroot@%s#%s %s\n' "$bold" "$host" "$off" "$*"
    lab ssh "$host" "$(printf '%q ' "$@")" || rc=$?
    ((rc == 0)) || printf '%s(exit code %s)%s\n' "$dim" "$rc" "$off"
}

bash lab/vm.sh copy "$LAB_STATE" dist/zbm.cjs /usr/local/bin/zbm
bash lab/vm.sh copy "$LAB_STATE/replica" dist/zbm.cjs /usr/local/bin/zbm

say "The lab: a Proxmox node (pve1) with five guests, a backup server (zbm-dest), an offsite replica (zbm-replica)"
on pve1 zbm --version
on pve1 cat /etc/pve/.vmlist
on pve1 cat /etc/pve/qemu-server/100.conf
on pve1 zfs list -o name,type,used,volsize -r rpool/data

say "1. First backup of every guest on pve1: full sends (a warning names the disk on non-ZFS storage)"
on pve1 zbm backup-pve --remote zbm-dest --prefix bak-zbm- --local-zfs-root rpool/data \
    --remote-zfs-root main/bak-zbm --remote-metadata-dir /root/backups_metadata -y

say "The guest web (VM 100) writes 1 MiB into its disk"
on pve1 dd if=/dev/urandom of=/dev/zvol/rpool/data/vm-100-disk-0 bs=1M count=1 seek=4 conv=notrunc status=none

say "2. Second backup: incremental, only the changed blocks travel (see the 'sent' column)"
on pve1 zbm backup-pve --remote zbm-dest --prefix bak-zbm- --local-zfs-root rpool/data \
    --remote-zfs-root main/bak-zbm --remote-metadata-dir /root/backups_metadata -y

say "3. Replicate the backup server to the offsite replica: every backup, and the guests' configs"
on zbm-dest zbm replicate --remote zbm-replica --remote-zfs-root main/bak-zbm --local-zfs-root main/bak-zbm

say "4. Prune on the backup server, never what the replica still needs"
on zbm-dest zbm prune --local-zfs-root main/bak-zbm --prefix bak-zbm- --keep-last 2 --keep-hourly 2 \
    --remote zbm-replica --remote-zfs-root main/bak-zbm -y

say "5. Prune on the replica, with longer rules"
on zbm-replica zbm prune --local-zfs-root main/bak-zbm --prefix bak-zbm- --keep-last 5 --keep-hourly 24 \
    --keep-daily 30 --keep-monthly 12 -y

say "6. Verify both tiers (monitoring-plugin output; 20 snapshots are not there yet: WARNING, exit code 1)"
on zbm-dest zbm verify --local-zfs-root main/bak-zbm --prefix bak-zbm- --max-age-days 1 --min-snapshots 20
on zbm-replica zbm verify --local-zfs-root main/bak-zbm --prefix bak-zbm- --max-age-days 1 --min-snapshots 2

say "7. Status per guest on the backup server, with the replication lag"
on zbm-dest zbm status --local-zfs-root main/bak-zbm --remote zbm-replica --remote-zfs-root main/bak-zbm

say "8. On the node: is every disk of every guest backed up and fresh? (the disk on non-ZFS storage is not)"
on pve1 zbm verify --pve --remote zbm-dest --remote-zfs-root main/bak-zbm --local-zfs-root rpool/data --max-age-hours 2

say "Result: snapshot trees on the three hosts"
on pve1 zfs list -t all -o name,used,refer -r rpool/data/vm-100-disk-0
on zbm-dest zfs list -t all -o name,used,refer -r main/bak-zbm/vm-100-disk-0
on zbm-replica zfs list -t all -o name,used,refer -r main/bak-zbm/vm-100-disk-0
on zbm-dest zfs holds main/bak-zbm/vm-100-disk-0@"$(lab ssh zbm-dest zfs list -H -o name -t snapshot main/bak-zbm/vm-100-disk-0 | tail -1 | cut -d@ -f2)"
on zbm-replica ls /root/backups_metadata/100

say "9. Restore drill: the restore points of guest web, then web restored from the replica alone as new guest 300"
on pve1 zbm list-backups --remote zbm-replica --remote-zfs-root main/bak-zbm --vmid 100
on pve1 zbm restore --remote zbm-replica --remote-zfs-root main/bak-zbm --vmid 100 --as-vmid 300 --new-macs -y
on pve1 cat /etc/pve/nodes/pve1/qemu-server/300.conf
on pve1 zfs list -o name,used,volsize -r rpool/data
on pve1 sh -c 'sha256sum < /dev/zvol/rpool/data/vm-100-disk-0; sha256sum < /dev/zvol/rpool/data/vm-300-disk-0'
