#!/usr/bin/env bash
# Builds the Debian package dist/zbm_<version>_all.deb from the repository, in one command:
#   npm run deb
# Contents: the bundled zbm as /usr/bin/zbm, the man page zbm(8) (made from --help and the prose in
# scripts/man.mjs), bash completion, the README and docs/ that --help refers to, example configs of
# a node, a backup server and a replica. systemd units are made per job by `zbm install-timers`;
# the maintainer scripts stop and remove those on removal/purge. Runs lintian when it is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(node -p 'require("./package.json").version')
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
npm run --silent build
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/zbm
install -d "$root/DEBIAN" "$root/usr/bin" "$root/usr/share/man/man8" "$root/usr/share/doc/zbm/examples" \
    "$root/usr/share/doc/zbm/docs" "$root/usr/share/bash-completion/completions"
# Debian's and NodeSource's nodejs packages both install /usr/bin/node.
sed '1s|^#!/usr/bin/env node$|#!/usr/bin/node|' dist/zbm.cjs > "$root/usr/bin/zbm"
chmod 755 "$root/usr/bin/zbm"
node scripts/man.mjs dist/zbm.cjs | gzip -9n > "$root/usr/share/man/man8/zbm.8.gz"
node dist/zbm.cjs completion bash > "$root/usr/share/bash-completion/completions/zbm"
install -m 644 packaging/zbm.yaml packaging/backup-server.yaml packaging/replica.yaml "$root/usr/share/doc/zbm/examples/"
# The README's links (docs/serve.md, docs/restore.md) stay true where it is installed.
install -m 644 README.md "$root/usr/share/doc/zbm/README.md"
install -m 644 docs/*.md "$root/usr/share/doc/zbm/docs/"
dep_version() { node -p "require('./node_modules/$1/package.json').version"; }
sed -e "s/@COMMANDER_VERSION@/$(dep_version commander)/" -e "s/@YAML_VERSION@/$(dep_version yaml)/" \
    packaging/copyright > "$root/usr/share/doc/zbm/copyright"
chmod 644 "$root/usr/share/doc/zbm/copyright"
printf 'zbm (%s) unstable; urgency=medium\n\n  * Release %s.\n\n -- zbm maintainers <zbm@example.org>  %s\n' \
    "$version" "$version" "$(date -u -R -d "@$SOURCE_DATE_EPOCH")" | gzip -9n > "$root/usr/share/doc/zbm/changelog.gz"
installed_size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@SIZE@/$installed_size/" packaging/control > "$root/DEBIAN/control"
install -m 755 packaging/prerm packaging/postrm "$root/DEBIAN/"
install -D -m 644 packaging/lintian-overrides "$root/usr/share/lintian/overrides/zbm"
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
out=dist/zbm_${version}_all.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$out" >/dev/null
echo "$out"
if command -v lintian >/dev/null; then
    lintian --fail-on error "$out" >&2
fi
