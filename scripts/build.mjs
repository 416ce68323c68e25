// Bundles the CLI and every runtime dependency into one file, so that copying
// dist/zbm.mjs to a Proxmox node that has `node` is the whole install.
import { chmod, readFile } from 'node:fs/promises';
import { build } from 'esbuild';

const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8'));

await build({
  entryPoints: ['src/main.ts'],
  outfile: 'dist/zbm.mjs',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  banner: {
    js: "#!/usr/bin/env node\nimport { createRequire as __zbmCreateRequire } from 'node:module';\nconst require = __zbmCreateRequire(import.meta.url);",
  },
  define: { __ZBM_VERSION__: JSON.stringify(pkg.version) },
  legalComments: 'none',
  logLevel: 'warning',
});
await chmod('dist/zbm.mjs', 0o755);
