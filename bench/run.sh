#!/usr/bin/env bash
# zbm's benchmark suite: `npm run bench` (or `bash bench/run.sh`) from the repository root.
#
#   bench/run.sh [--quick] [--guests N] [--stream-mib M] [--big-stream-mib M] [--samples N]
#                [--wan-stream-mib M] [--wan-rate-mbit R] [--lan-stream-mib M]
#                [--skip startup,fixed,cycles,datapath,wan,lan]
#
# Boots a lab (lab/vm.sh with /tmp/zbm-bench-XXXX), installs dist/zbm.cjs in it, runs the
# scenarios of bench/vm/scenarios.ts inside the main VM and the planning benchmarks
# (bench/planning.ts) here, then prints the table and writes bench/results/<date>[-quick].json/.md.
# Every figure is a ratio or a count against a baseline measured in the same run.
#
# --quick: 2 guests, a 64 MiB stream (and 256 MiB once, for memory), a 32 MiB increment over the
# WAN and 64 MiB over the LAN, smaller planning sizes.
# Without it: 30 guests × 2 disks, a 256 MiB stream and a 1 GiB one, 128 MiB over the WAN (24
# Mbit/s, 40 ms, 0.1 % loss, to the replica VM) and 256 MiB over the LAN (the same link unshaped,
# pushed to the replica VM and pulled from it)
# (what the README reports); the data path's, the WAN's and the LAN's measurements, and the idle
# cycle's zbm and syncoid -r, are taken 3 times each (--samples), in turn; under the lab's software
# emulation syncoid needs 4-8 s per dataset and pass (2026-12-01), so this takes a long time.
# With LAB_STATE set (a lab already started with `lab/vm.sh start`), that lab is used and left on.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=full
vm_args=()
plan_args=()
while (($# > 0)); do
    case $1 in
    --quick) mode=quick ;;
    --guests | --stream-mib | --skip | --scale-guests | --bw-stream-mib | --bwlimit-mib | --big-stream-mib | --samples | \
        --wan-stream-mib | --wan-rate-mbit | --lan-stream-mib)
        vm_args+=("$1" "$2")
        shift
        ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "bench/run.sh: unknown option $1 (try --help)" >&2
        exit 2
        ;;
    esac
    shift
done
if [[ $mode == full && ${#vm_args[@]} -gt 0 ]]; then
    mode=custom # not the published configuration: named apart in bench/results
fi
if [[ $mode == quick ]]; then
    vm_args=(--guests 2 --scale-guests 1 --stream-mib 64 --bw-stream-mib 16 --big-stream-mib 256 --wan-stream-mib 32 --lan-stream-mib 64 "${vm_args[@]}")
    plan_args=(--sizes "1000,10000" --guests "100,1000")
fi

if [[ -z ${LAB_STATE:-} ]]; then
    npm run --silent build
    args=()
    [[ $mode == quick ]] && args+=(--quick)
    exec bash lab/vm.sh with /tmp/zbm-bench-XXXX bash bench/run.sh "${args[@]}" "${vm_args[@]}"
fi

# The replica VM is used by the WAN and LAN sections only: without them, it is stopped, so that it
# takes no CPU from the measurements (idle, it takes about 2 % of one core).
skips=$(printf '%s\n' "${vm_args[@]}" | awk 'p {print} {p = ($0 == "--skip")}' | tr '\n' ',')
if [[ ,$skips, != *,wan,* || ,$skips, != *,lan,* ]] && [[ -f $LAB_STATE/replica/qemu.pid ]]; then
    echo "[bench] the replica VM stays up for the WAN and LAN sections" >&2
elif [[ -f $LAB_STATE/replica/qemu.pid ]]; then
    bash lab/vm.sh stop "$LAB_STATE/replica" || true
fi

out=$(mktemp -d /tmp/zbm-bench-out-XXXX)
echo "[bench] raw results in $out" >&2
node_modules/.bin/esbuild bench/vm/scenarios.ts --bundle --platform=node --format=esm --target=node20 \
    --outfile="$out/scenarios.mjs" --log-level=warning
bash lab/vm.sh copy "$LAB_STATE" dist/zbm.cjs /usr/local/bin/zbm
bash lab/vm.sh copy "$LAB_STATE" "$out/scenarios.mjs" /root/bench-scenarios.mjs
bash lab/vm.sh ssh "$LAB_STATE" chmod 755 /usr/local/bin/zbm

echo "[bench] planning (on this host)" >&2
node --expose-gc --import tsx bench/planning.ts "${plan_args[@]}" >"$out/planning.json"
echo "[bench] lab scenarios (in the VM)" >&2
bash lab/vm.sh ssh "$LAB_STATE" node /root/bench-scenarios.mjs "${vm_args[@]}" >"$out/vm.json"
node --import tsx bench/report.ts --vm "$out/vm.json" --planning "$out/planning.json" --mode "$mode" \
    --out bench/results
# The results are part of the tree: keep them as `npm run lint` wants them.
node_modules/.bin/biome check --write bench/results >/dev/null 2>&1 || true
