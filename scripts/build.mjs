// Bundles the CLI and every runtime dependency into one file, so that copying
// dist/zbm.mjs to a Proxmox node that has `node` is the whole install. The licence of each bundled
// package goes into the file with it: the bundle is a copy of their code, and their licences ask
// that the notice travel with every copy.
import { chmod, readFile } from 'node:fs/promises';
import { build } from 'esbuild';

const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8'));
// `node scripts/build.mjs [outfile]`: the unit tests build their own copy, to run what users run.
const outfile = process.argv[2] ?? 'dist/zbm.mjs';

/** One legal comment per runtime dependency: name, version, licence, and its licence text. */
async function licences() {
  const blocks = [];
  for (const name of Object.keys(pkg.dependencies ?? {}).sort()) {
    const dir = new URL(`../node_modules/${name}/`, import.meta.url);
    const meta = JSON.parse(await readFile(new URL('package.json', dir), 'utf8'));
    const text = await readFile(new URL('LICENSE', dir), 'utf8').catch(() => {
      throw new Error(`${name} has no LICENSE file: its notice cannot be bundled`);
    });
    blocks.push(`/*! ${name} ${meta.version} (${meta.license})\n${text.trim().replaceAll('*/', '* /')}\n*/`);
  }
  return blocks.join('\n');
}

const result = await build({
  entryPoints: ['src/main.ts'],
  outfile,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  banner: {
    js: "#!/usr/bin/env node\nimport { createRequire as __zbmCreateRequire } from 'node:module';\nconst require = __zbmCreateRequire(import.meta.url);",
  },
  footer: { js: await licences() },
  define: { __ZBM_VERSION__: JSON.stringify(pkg.version) },
  // Any licence comment in the bundled code itself is kept too, at the end of the file.
  legalComments: 'eof',
  metafile: true,
  logLevel: 'warning',
});

// Every bundled package must be a declared dependency, so that its licence is in the footer.
const bundled = new Set(
  Object.keys(result.metafile.inputs)
    .map((p) => /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(p)?.[1])
    .filter(Boolean),
);
const undeclared = [...bundled].filter((n) => !(n in (pkg.dependencies ?? {})));
if (undeclared.length > 0)
  throw new Error(`bundled without a declared dependency (and licence): ${undeclared}`);
await chmod(outfile, 0o755);
