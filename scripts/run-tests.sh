#!/usr/bin/env bash
# Runs inside `lab/vm.sh with` (see scripts/lab-tests.sh): installs the bundle in both VMs of this
# lab (the main one and the replica), then runs integration test files one at a time, as they
# share the VMs: the files given, or with --queue <file>, the next line of that file (shared by
# every lab of the run) until it is empty. Each file's tests and the lab calls they made are
# recorded in $ZBM_TEST_REPORT_DIR for scripts/test-report.mjs.
set -euo pipefail
cd "$(dirname "$0")/.."
queue=
if [[ ${1:-} == --queue ]]; then
    queue=$2
    shift 2
fi
[[ -n $queue || $# -gt 0 ]] || { echo "usage: run-tests.sh (--queue <file> | <test file>...)" >&2; exit 2; }
bash lab/vm.sh copy "$LAB_STATE" dist/zbm.cjs /usr/local/bin/zbm
bash lab/vm.sh copy "$LAB_STATE/replica" dist/zbm.cjs /usr/local/bin/zbm

next() { # prints the next file of the queue and takes it out, or nothing
    flock "$queue.lock" sh -c 'f=$(head -n 1 "$1"); [ -z "$f" ] || sed -i 1d "$1"; printf %s "$f"' next "$queue"
}

reporters=(--test-reporter=spec --test-reporter-destination=stdout)
[[ -n ${ZBM_TEST_REPORT_DIR:-} ]] &&
    reporters+=(--test-reporter=./test/support/durations-reporter.mjs --test-reporter-destination=stdout)
rc=0
run() {
    node --import tsx --test --test-force-exit "${reporters[@]}" "$1" || rc=1
}
if [[ -n $queue ]]; then
    while f=$(next) && [[ -n $f ]]; do run "$f"; done
else
    for f in "$@"; do run "$f"; done
fi
exit "$rc"
