#!/usr/bin/env bash
# Runs integration test files in the real-ZFS lab: ZBM_LABS labs (default 2) side by side, each a
# main VM and a replica VM of its own (lab/vm.sh with), taking files from one queue, longest first
# (by the durations of the last run on this machine, kept in the lab's cache), so that the two
# finish together. Under software emulation a lab keeps about one host core busy, so two labs on
# two cores run the suite in about half the time. Output is prefixed with the lab's number; at the
# end, scripts/test-report.mjs prints where the time went. Exit status: 0 when every file passed.
#
#   bash scripts/lab-tests.sh <integration test file>...
set -euo pipefail
cd "$(dirname "$0")/.."
(($# > 0)) || { echo "usage: lab-tests.sh <integration test file>..." >&2; exit 2; }

labs=${ZBM_LABS:-2}
((labs >= 1)) || { echo "ZBM_LABS must be 1 or more" >&2; exit 2; }
((labs <= $#)) || labs=$#
cache=${ZBM_LAB_CACHE:-/var/cache/zbm-lab}
known=$cache/test-durations.tsv
# A file this machine has not run yet (its first run, or a targeted run before) is placed by the
# durations of a run recorded in the repository.
seed=test/integration/durations.tsv

report=$(mktemp -d /tmp/zbm-test-report-XXXX)
export ZBM_TEST_REPORT_DIR=$report
queue=$report/queue
# Longest first; files without a recorded duration (new ones) before all others.
for f in "$@"; do
    d=
    for order in "$known" "$seed"; do
        [[ -z $d && -f $order ]] && d=$(awk -F'\t' -v f="$(basename "$f")" '$1 == f { d = $2 } END { print d }' "$order")
    done
    printf '%s\t%s\n' "${d:-999999}" "$f"
done | sort -t$'\t' -k1,1nr | cut -f2 >"$queue"

started=$SECONDS
pids=()
for ((i = 1; i <= labs; i++)); do
    (
        set -o pipefail
        ZBM_LAB_ID=$i bash lab/vm.sh with "${ZBM_LAB_STATE:-/tmp/zbm-lab}-$i-XXXX" \
            bash scripts/run-tests.sh --queue "$queue" 2>&1 | sed -u "s/^/[lab $i] /"
    ) &
    pids+=("$!")
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done

node scripts/test-report.mjs "$report" "$((SECONDS - started))" "$known" || rc=1
exit "$rc"
