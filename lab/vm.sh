#!/usr/bin/env bash
# zbm lab: runs the real-ZFS test VM (qemu, software emulation).
#
#   vm.sh start <statedir>          build the image if needed, boot a fresh
#                                   overlay, wait for ssh, run lab-reset
#   vm.sh ssh   <statedir> <cmd...> run a command in the VM as root (joined
#                                   into one shell command line, like ssh)
#   vm.sh copy  <statedir> <local> <remote>   copy a file into the VM
#   vm.sh stop  <statedir>          stop the VM, drop its overlay (idempotent)
#   vm.sh with  <statedir> <cmd...> start, run <cmd> on the host with
#                                   LAB_SSH_PORT/LAB_SSH_KEY/LAB_STATE exported,
#                                   always stop; exits with <cmd>'s status
#
# <statedir> may end in XXXX (e.g. /tmp/zbm-lab-XXXX) for a fresh mktemp
# directory; `start` prints the one it made. <statedir>/env holds the LAB_*
# lines; console.log is the VM's serial console.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BOOT_TIMEOUT=${ZBM_LAB_BOOT_TIMEOUT:-300}
# The emulated CPU. Not `max`: with AVX, AVX2 and AVX-512 offered, glibc, node and ssh pick vector
# code that TCG emulates slowly (measured here: reading a zvol 3x, an idle backup-pve 1.4x slower
# than with Westmere). Westmere has SSE4.2 and AES-NI (ssh's aes128-gcm) and nothing wider.
CPU=${ZBM_LAB_CPU:-Westmere}
SMP=${ZBM_LAB_SMP:-2}

log() { printf '[lab-vm] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2; }

# Options shared by every ssh call from the host. The VM's host key changes
# with every image, so it is neither checked nor remembered. aes128-gcm is the
# fastest cipher under emulation and curve25519 the cheapest key exchange for
# the emulated sshd. The master connection makes later calls cheap.
ssh_opts() { # statedir
    SSH_OPTS=(-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
        -o LogLevel=ERROR -o BatchMode=yes -o IdentitiesOnly=yes
        -o Ciphers=aes128-gcm@openssh.com -o KexAlgorithms=curve25519-sha256
        -o ControlMaster=auto -o "ControlPath=$1/ssh.sock" -o ControlPersist=300
        -o ConnectTimeout=10 -o ServerAliveInterval=15 -o ServerAliveCountMax=8
        -i "$LAB_SSH_KEY" -p "$LAB_SSH_PORT")
}

load_env() { # statedir
    [[ -f $1/env ]] || die "$1 has no running lab VM (no env file); use: vm.sh start $1"
    # shellcheck source=/dev/null
    source "$1/env"
    ssh_opts "$1"
}

# The pid in qemu.pid, if it is alive and really our qemu.
qemu_pid() { # statedir
    local pid
    [[ -f $1/qemu.pid ]] || return 1
    pid=$(<"$1/qemu.pid")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/cmdline ]] || return 1
    # Pid reuse: only a qemu-system process using this statedir counts.
    [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == */qemu-system-* ]] || return 1
    tr '\0' '\n' <"/proc/$pid/cmdline" | grep -qF "file=$1/overlay.qcow2," || return 1
    echo "$pid"
}

# A loopback TCP port nobody listens on. qemu's bind may still lose a race,
# so start retries with another port.
free_port() {
    local port
    if ! command -v ss >/dev/null; then
        echo $((20000 + RANDOM % 40000))
        return 0
    fi
    for _ in $(seq 50); do
        port=$((20000 + RANDOM % 40000))
        if ! ss -Hltn "sport = :$port" | grep -q .; then
            echo "$port"
            return 0
        fi
    done
    return 1
}

# Waits until process pid is gone, at most tenths/10 seconds; fails if it is still there.
wait_gone() { # pid tenths
    local i
    for ((i = 0; i < $2; i++)); do
        [[ -e /proc/$1 ]] || return 0
        sleep 0.1
    done
    [[ ! -e /proc/$1 ]]
}

# A VM saved right after its boot (saved_boot), usable by this qemu: its disk, its RAM and devices.
saved_ok() { # saved dir
    [[ -f $1/disk.qcow2 && -f $1/state && -f $1/qemu-version ]] &&
        [[ $(<"$1/qemu-version") == "$(qemu-system-x86_64 --version | head -n 1)" ]]
}

# Boots one VM on a fresh overlay of image in state and waits for its ssh. Unless `fresh` is
# given, a VM of this memory size saved after its boot (saved_boot) is resumed instead: seconds
# instead of the kernel's and systemd's minute and a half under emulation.
boot_vm() { # statedir image memory-MiB [fresh]
    local state=$1 image=$2 mem=$3 port attempt booted backing=$2/base.qcow2 incoming=()
    local saved=$2/booted-$3
    mkdir -p "$state"
    rm -f "$state/overlay.qcow2" "$state/qemu.pid" "$state/env" "$state/ssh.sock" "$state/console.log" "$state/qmp.sock"
    if [[ -z ${4:-} ]] && saved_ok "$saved"; then
        backing=$saved/disk.qcow2
        incoming=(-incoming "exec:cat $(printf %q "$saved/state")")
    fi
    # A fresh copy-on-write overlay: every run starts from the pristine base (or the disk as it was
    # when the saved VM stopped, which its RAM expects).
    qemu-img create -q -f qcow2 -F qcow2 -b "$backing" "$state/overlay.qcow2"

    for attempt in 1 2 3 4 5; do
        port=$(free_port) || die "no free loopback port found"
        # hostfwd on 127.0.0.1 only: the VM is never reachable from outside.
        if qemu-system-x86_64 -name zbm-lab \
            -machine q35 -accel tcg,thread=multi,tb-size=512 -cpu "$CPU" -smp "$SMP" -m "$mem" \
            -kernel "$image/vmlinuz" -initrd "$image/initrd.img" \
            -append "root=/dev/vda rw console=ttyS0 mitigations=off" \
            -drive "file=$state/overlay.qcow2,if=virtio,format=qcow2,cache=unsafe" \
            -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$port-:22" \
            -device virtio-net-pci,netdev=n0 -device virtio-rng-pci \
            -display none -serial "file:$state/console.log" \
            -qmp "unix:$state/qmp.sock,server=on,wait=off" "${incoming[@]}" \
            -daemonize -pidfile "$state/qemu.pid" 2>"$state/qemu.err"; then
            break
        fi
        log "qemu failed to start (attempt $attempt, port $port): $(head -c 300 "$state/qemu.err")"
        ((attempt < 5)) || die "qemu would not start"
    done

    cat >"$state/env" <<EOF
LAB_SSH_PORT=$port
LAB_SSH_KEY=$image/id_ed25519
LAB_STATE=$state
EOF
    load_env "$state"
    log "booting $state (pid $(<"$state/qemu.pid"), ssh on 127.0.0.1:$port)"
    booted=$SECONDS

    # Boot under emulation takes 25-45 s; poll ssh until it answers.
    until ssh "${SSH_OPTS[@]}" -o ControlMaster=no -o ConnectTimeout=5 root@127.0.0.1 true \
        2>/dev/null; do
        if ! qemu_pid "$state" >/dev/null; then
            log "qemu exited during boot; console tail:"
            tail -n 40 "$state/console.log" >&2 || true
            die "boot failed"
        fi
        if ((SECONDS - booted >= BOOT_TIMEOUT)); then
            log "no ssh after ${BOOT_TIMEOUT}s; console tail:"
            tail -n 40 "$state/console.log" >&2 || true
            cmd_stop "$state"
            die "boot timed out"
        fi
        sleep 1
    done
    log "ssh up $((SECONDS - booted)) s after qemu started${incoming[*]:+ (resumed from $saved)}: $state"
    if ((${#incoming[@]} > 0)); then
        # The resumed VM's clock is where it was saved.
        lab_ssh "$state" "date -s @$(date +%s.%N) >/dev/null" || die "cannot set the resumed VM's clock"
    fi
}

# Saves, once per image and memory size, a VM just booted (systemd done), so that boot_vm can
# resume it instead of booting: its disk as it stopped, and its RAM and devices (lab/qmp.mjs).
# Two labs starting together: the first one saves, the other waits for it. ZBM_LAB_SAVED_BOOT=0
# boots every VM afresh.
saved_boot() { # image memory-MiB
    local image=$1 mem=$2 saved=$1/booted-$2 tmp pid lock
    [[ ${ZBM_LAB_SAVED_BOOT:-1} == 1 ]] || return 0
    exec {lock}>"$image/.booted-$mem.lock"
    flock "$lock"
    if ! saved_ok "$saved"; then
        rm -rf "$saved"
        tmp=$(mktemp -d "$image/.booted-$mem.XXXX")
        # Whatever fails, the half-made save and its VM go (cmd_stop does nothing once qemu is gone).
        give_up() { cmd_stop "$tmp"; rm -rf "$tmp"; die "$1"; }
        log "saving a booted VM ($mem MiB) for later runs: $saved"
        (boot_vm "$tmp" "$image" "$mem" fresh) || give_up "the VM to save did not boot"
        # Boot finished (timers and one-shot units done), the disk written: nothing is half done
        # in a VM resumed from here.
        lab_ssh "$tmp" 'timeout 120 systemctl is-system-running --wait >/dev/null; sync' || true
        ssh -o "ControlPath=$tmp/ssh.sock" -O exit root@127.0.0.1 >/dev/null 2>&1 || true
        pid=$(qemu_pid "$tmp") || give_up "the VM to save is gone"
        node "$HERE/qmp.mjs" "$tmp/qmp.sock" "$tmp/state" || give_up "could not save the booted VM"
        wait_gone "$pid" 300 || give_up "the saved VM did not stop"
        mv "$tmp/overlay.qcow2" "$tmp/disk.qcow2"
        chmod 444 "$tmp/disk.qcow2" "$tmp/state"
        qemu-system-x86_64 --version | head -n 1 >"$tmp/qemu-version"
        rm -f "$tmp/env" "$tmp/qemu.pid" "$tmp/qmp.sock" "$tmp/ssh.sock" "$tmp/qemu.err" "$tmp/console.log"
        mv "$tmp" "$saved"
        log "saved $saved ($(du -sh "$saved" | cut -f1))"
    fi
    exec {lock}>&-
}

# boot_vm from the saved VM, or afresh when resuming it failed (the saved VM is then dropped).
boot_any() { # statedir image memory-MiB
    (boot_vm "$@") && return 0
    log "resuming the saved VM failed; booting afresh (the saved VM is dropped)"
    cmd_stop "$1" >/dev/null 2>&1 || true
    rm -rf "$2/booted-$3"
    (boot_vm "$@" fresh)
}

# Two VMs: the main one stands for pve1 and zbm-dest; the offsite replica zbm-replica has a VM of
# its own, because the original design's commands use the pool name `main` on both the backup
# server and the replica (and the same metadata directory), which one kernel cannot hold twice.
cmd_start() { # statedir
    local state=$1 image pid started=$SECONDS rport mport p1 p2
    if [[ $state == *XXXX ]]; then
        state=$(mktemp -d "$state")
        log "state dir: $state"
    fi
    mkdir -p "$state"
    state=$(cd "$state" && pwd)
    if pid=$(qemu_pid "$state"); then
        die "a lab VM already runs for $state (pid $pid); stop it first"
    fi

    image=$(bash "$HERE/image/build.sh")
    saved_boot "$image" 4096 &
    p1=$!
    saved_boot "$image" 2048 &
    p2=$!
    wait "$p1" || log "no saved main VM to resume: booting it afresh"
    wait "$p2" || log "no saved replica VM to resume: booting it afresh"
    boot_any "$state" "$image" 4096 &
    p1=$!
    boot_any "$state/replica" "$image" 2048 &
    p2=$!
    wait "$p1" || die "the main VM did not boot"
    wait "$p2" || die "the replica VM did not boot"
    rport=$(sed -n 's/^LAB_SSH_PORT=//p' "$state/replica/env")

    # zbm-replica, seen from the main VM: the host's forwarded port of the replica VM, through
    # qemu's user network (10.0.2.2 is the host's loopback). A block placed first wins.
    lab_ssh "$state" "{ printf 'Host zbm-replica\\n    HostName 10.0.2.2\\n    Port %s\\n\\n' $rport; cat /root/.ssh/config; } > /root/.ssh/config.new && mv /root/.ssh/config.new /root/.ssh/config" ||
        die "cannot point zbm-replica at the replica VM"
    # And the other way round, for replicate --pull: from the replica, pve1 and zbm-dest are the
    # main VM's forwarded port.
    mport=$(sed -n 's/^LAB_SSH_PORT=//p' "$state/env")
    lab_ssh "$state/replica" "{ printf 'Host pve1 zbm-dest\\n    HostName 10.0.2.2\\n    Port %s\\n\\n' $mport; cat /root/.ssh/config; } > /root/.ssh/config.new && mv /root/.ssh/config.new /root/.ssh/config" ||
        die "cannot point zbm-dest at the main VM from the replica VM"
    lab_ssh "$state/replica" 'hostname zbm-replica && echo zbm-replica > /etc/hostname' ||
        die "cannot name the replica VM"
    # In each VM: the lab's scripts as they are in this checkout (the image's copies may be older:
    # they are not part of its recipe), and no address space layout randomisation: qemu's
    # translation cache is keyed by virtual address, so with ASLR every new process (zfs, ssh, sh,
    # node) puts its libraries somewhere else and has them translated again. Measured 2026-11-30
    # in one lab: an idle backup-pve of the lab's guests 14-17 s instead of 28-33 s, `zfs list` of
    # one dataset 0.04 s of user time instead of 0.2. It holds for every process started after.
    for vm in "$state" "$state/replica"; do
        tar -C "$HERE/guest/usr/local" --owner=0 --group=0 -cf - . |
            lab_ssh "$vm" 'tar -C /usr/local -xf - && sysctl -qw kernel.randomize_va_space=0' ||
            die "cannot install the lab's scripts or turn ASLR off in $vm"
    done

    # One-time setup of the run: fresh pools and guests on the node, empty pools on the replica,
    # side by side.
    lab_ssh "$state" lab-reset >&2 &
    p1=$!
    lab_ssh "$state/replica" lab-reset --empty >&2 &
    p2=$!
    wait "$p1" || die "lab-reset failed in the VM (left running for a look: vm.sh ssh/stop $state)"
    wait "$p2" || die "lab-reset failed in the replica VM (vm.sh ssh/stop $state/replica)"
    lab_ssh "$state" 'test "$(ssh zbm-replica hostname)" = zbm-replica' ||
        die "zbm-replica does not reach the replica VM"
    lab_ssh "$state/replica" 'test "$(ssh zbm-dest hostname)" = pve1' ||
        die "zbm-dest does not reach the main VM from the replica VM"
    log "ready after $((SECONDS - started)) s: $state"
    echo "$state"
}

lab_ssh() { # statedir cmd...
    local state=$1
    shift
    load_env "$state"
    # Like ssh itself: the words are joined into one remote shell command line.
    ssh "${SSH_OPTS[@]}" root@127.0.0.1 -- "$@"
}

cmd_copy() { # statedir local remote
    local state=$1 src=$2 dst=$3 mode
    [[ -f $src ]] || die "no such file: $src"
    mode=$(stat -c %a "$src")
    # ssh + cat reuses the master connection (scp would need its own setup).
    lab_ssh "$state" "cat > $(printf %q "$dst") && chmod $mode $(printf %q "$dst")" <"$src"
}

cmd_stop() { # statedir
    local state=$1 pid
    [[ -d $state ]] || return 0
    state=$(cd "$state" && pwd)
    [[ -d $state/replica ]] && cmd_stop "$state/replica"
    if [[ -S $state/ssh.sock ]]; then
        ssh -o "ControlPath=$state/ssh.sock" -O exit root@127.0.0.1 >/dev/null 2>&1 || true
    fi
    if pid=$(qemu_pid "$state"); then
        kill -TERM "$pid" 2>/dev/null || true
        if ! wait_gone "$pid" 100; then
            log "qemu $pid ignored TERM; killing"
            kill -KILL "$pid" 2>/dev/null || true
            wait_gone "$pid" 50 || true
        fi
        log "stopped qemu $pid"
    fi
    rm -f "$state/overlay.qcow2" "$state/qemu.pid" "$state/env" "$state/ssh.sock" "$state/qmp.sock"
}

cmd_with() { # statedir cmd...
    local state=$1 rc=0 child=
    shift
    (($# > 0)) || usage
    if [[ $state == *XXXX ]]; then
        state=$(mktemp -d "$state")
    fi
    mkdir -p "$state"
    state=$(cd "$state" && pwd)
    # Someone else's VM in this dir: refuse before the trap could stop it.
    if qemu_pid "$state" >/dev/null; then
        die "a lab VM already runs for $state; use another state dir"
    fi
    # Stop on every way out, including a start that fails half way.
    trap 'cmd_stop "$state"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    cmd_start "$state" >/dev/null
    # shellcheck source=/dev/null
    source "$state/env"
    export LAB_SSH_PORT LAB_SSH_KEY LAB_STATE
    # The command runs in the background and we wait for it: a TERM sent to
    # this script alone is then handled at once (bash defers traps until a
    # foreground child ends), the child is ended, and the VM always stops.
    # (|| true: under set -e the child's 143 would otherwise be our status.)
    trap 'kill -TERM "$child" 2>/dev/null; wait "$child" || true; exit 130' INT
    trap 'kill -TERM "$child" 2>/dev/null; wait "$child" || true; exit 143' TERM
    # <&0: a background job would otherwise get /dev/null as its stdin.
    "$@" <&0 &
    child=$!
    wait "$child" || rc=$?
    exit "$rc"
}

# Braces: parsed whole before running, so editing this file while `with` runs
# a long test suite cannot change what happens at its end.
{
(($# >= 2)) || usage
cmd=$1
state=$2
shift 2
case $cmd in
start) (($# == 0)) || usage; cmd_start "$state" ;;
ssh) (($# > 0)) || usage; lab_ssh "$state" "$@" ;;
copy) (($# == 2)) || usage; cmd_copy "$state" "$1" "$2" ;;
stop) (($# == 0)) || usage; cmd_stop "$state" ;;
with) cmd_with "$state" "$@" ;;
*) usage ;;
esac
exit
}
