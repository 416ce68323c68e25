// Bundles the CLI and every runtime dependency into one file, so that copying
// dist/zbm.cjs to a Proxmox node that has `node` is the whole install. The file is
// scripts/launcher.cjs followed by the bundle as one string, which the launcher runs through V8's
// code cache. The licence of each bundled package goes into the file with it: the bundle is a copy
// of their code, and their licences ask that the notice travel with every copy.
import { createHash } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { build } from 'esbuild';

const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8'));
// `node scripts/build.mjs [outfile]`: the unit tests build their own copy, to run what users run.
const outfile = process.argv[2] ?? 'dist/zbm.cjs';

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
  format: 'cjs',
  define: { __ZBM_VERSION__: JSON.stringify(pkg.version) },
  // Licence comments in the bundled code itself go to the end of the file, as comments.
  legalComments: 'external',
  metafile: true,
  write: false,
  logLevel: 'warning',
});

const code = result.outputFiles.find((f) => f.path.endsWith(outfile.replace(/^.*\//, '')))?.text;
const legal = result.outputFiles.find((f) => f.path.endsWith('.LEGAL.txt'))?.text ?? '';
if (code === undefined) throw new Error(`esbuild wrote no ${outfile}`);
const hash = createHash('sha256').update(code).digest('hex').slice(0, 16);
const launcher = await readFile(new URL('launcher.cjs', import.meta.url), 'utf8');
// esbuild writes nothing itself here (write: false), so a fresh clone has no dist/ yet.
await mkdir(dirname(outfile), { recursive: true });
await writeFile(
  outfile,
  [
    '#!/usr/bin/env node',
    launcher.trimEnd(),
    `runBundle(${JSON.stringify(code)}, ${JSON.stringify(hash)});`,
    await licences(),
    legal.trim(),
    '',
  ].join('\n'),
);

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
