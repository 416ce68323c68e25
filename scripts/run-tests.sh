#!/usr/bin/env bash
# Runs inside `lab/vm.sh with`: installs the bundle in both lab VMs (the main one and the replica),
# then every test file. Integration tests share the VMs, so files run one at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
bash lab/vm.sh copy "$LAB_STATE" dist/zbm.mjs /usr/local/bin/zbm
bash lab/vm.sh copy "$LAB_STATE/replica" dist/zbm.mjs /usr/local/bin/zbm
files=$(find test/unit test/integration -name '*.test.ts' | sort)
if (($# > 0)); then files="$*"; fi
# shellcheck disable=SC2086
exec node --import tsx --test --test-concurrency=1 --test-reporter=spec $files
