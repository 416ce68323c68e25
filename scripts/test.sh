#!/usr/bin/env bash
# The one test command (`npm test`): what a fresh clone needs, then the checks that take a minute
# (type check, lint, bundle, unit tests) while the lab image builds beside them, and only then the
# real-ZFS integration tests in the lab VMs, so a broken build fails before the lab boots.
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

# The lab image (about 6 minutes when its recipe changed, a cache lookup otherwise) builds while
# the checks run: its downloads and single-threaded steps leave a core free. In a session of its
# own, so that a failed check stops the whole build at once (its EXIT trap unmounts the chroot).
image_pid=
if ((${#integration[@]} > 0)); then
    image_log=$(mktemp /tmp/zbm-image-build-XXXX.log)
    setsid bash lab/image/build.sh >/dev/null 2>"$image_log" &
    image_pid=$!
    trap '[[ -n $image_pid ]] && kill -TERM -- "-$image_pid" 2>/dev/null; wait; rm -f "$image_log"' EXIT
fi

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

step "lab image"
image_rc=0
wait "$image_pid" || image_rc=$?
image_pid=
trap - EXIT
cat "$image_log" >&2
rm -f "$image_log"
((image_rc == 0)) || exit "$image_rc"

# Boots two labs on fresh overlays of the image, runs the integration tests in them, and always
# stops the VMs.
step "real-ZFS integration tests in the lab (${#integration[@]} files)"
exec bash scripts/lab-tests.sh "${integration[@]}"
