#!/usr/bin/env bash
# The one test command (`npm test`): static checks, the bundle, the unit tests, and the real-ZFS
# integration tests in the lab VM, in one node test run with one closing summary.
set -euo pipefail
cd "$(dirname "$0")/.."

npm run --silent typecheck
npm run --silent lint
npm run --silent build

# Builds the lab image if its recipe changed (cached under /var/cache/zbm-lab), boots a fresh
# overlay, runs the tests, and always stops the VM.
exec bash lab/vm.sh with "${ZBM_LAB_STATE:-/tmp/zbm-lab-XXXX}" bash scripts/run-tests.sh "$@"
