#!/usr/bin/env bash
# The one test command (`npm test`): what a fresh clone needs, then the checks that take a minute
# (type check, lint, bundle, unit tests), and only then the real-ZFS integration tests in the lab
# VMs, so a broken build fails before the lab boots.
#
#   npm test                      everything
#   npm test -- <file.test.ts>... only these files (unit files here, integration files in the lab)
set -euo pipefail
cd "$(dirname "$0")/.."

# A fresh clone (or a changed lock file) gets its npm packages first, as `npm ci` would.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
    npm ci --no-audit --no-fund
fi

unit=() integration=()
if (($# == 0)); then
    mapfile -t unit < <(find test/unit -name '*.test.ts' | sort)
    mapfile -t integration < <(find test/integration -name '*.test.ts' | sort)
else
    for f in "$@"; do
        case $f in
        test/integration/*) integration+=("$f") ;;
        *) unit+=("$f") ;;
        esac
    done
fi

step() { printf '\n[npm test +%ds] %s\n' "$SECONDS" "$*" >&2; }
step "type check, lint, bundle"
npm run --silent typecheck
npm run --silent lint
npm run --silent build
if ((${#unit[@]} > 0)); then
    step "unit tests (${#unit[@]} files)"
    # One file per core (node's default leaves one core idle): 94 s become 71 s on 2 cores.
    node --import tsx --test --test-concurrency="$(nproc)" --test-reporter=dot "${unit[@]}"
fi
((${#integration[@]} > 0)) || exit 0

# Builds the lab image if its recipe changed (cached under /var/cache/zbm-lab), boots two labs on
# fresh overlays, runs the integration tests in them, and always stops the VMs.
step "real-ZFS integration tests in the lab (${#integration[@]} files)"
exec bash scripts/lab-tests.sh "${integration[@]}"
