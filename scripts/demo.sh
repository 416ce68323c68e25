#!/usr/bin/env bash
# The README's demo: builds what is missing, boots the lab VM (a Proxmox node, a backup server and
# an offsite replica in one VM), runs the original design's workflow there with its exact commands,
# shows the resulting snapshot trees, and shuts the VM down.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -d node_modules ]] || npm ci
npm run --silent build
exec bash lab/vm.sh with "${ZBM_LAB_STATE:-/tmp/zbm-demo-XXXX}" bash scripts/demo-run.sh
