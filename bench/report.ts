/**
 * Combines one run's raw measurements into the published figures: prints the table (markdown)
 * and writes bench/results/<date>[-quick].json and .md.
 *
 *   node --import tsx bench/report.ts --vm <vm.json> --planning <planning.json> --mode full|quick
 *        [--out bench/results] [--machine <text>]
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import {
  cycleRows,
  datapathRows,
  fixedRows,
  lanRows,
  markdownTable,
  memoryRows,
  type PlanningRaw,
  planningRows,
  type Row,
  startupRows,
  type VmRaw,
  wanRows,
} from './lib/report.ts';

function opt(name: string, fallback?: string): string {
  const i = process.argv.indexOf(name);
  const v = i >= 0 ? process.argv[i + 1] : fallback;
  if (v === undefined) throw new Error(`missing ${name}`);
  return v;
}

/** Every --vm file, merged: sections measured by separate invocations of the same lab session. */
function opts(name: string): string[] {
  return process.argv.flatMap((a, i) =>
    a === name && process.argv[i + 1] ? [process.argv[i + 1] as string] : [],
  );
}
const vmFiles = opts('--vm');
if (vmFiles.length === 0) throw new Error('missing --vm');
const parts = await Promise.all(vmFiles.map(async (f) => JSON.parse(await readFile(f, 'utf8')) as VmRaw));
const vm = Object.assign({}, ...parts) as VmRaw;
const planning = JSON.parse(await readFile(opt('--planning'), 'utf8')) as PlanningRaw;
const mode = opt('--mode', 'full');
const outDir = opt('--out', 'bench/results');

const rows: Row[] = [
  ...(vm.startup ? startupRows(vm.startup) : []),
  ...(vm.fixed ? fixedRows(vm.fixed) : []),
  ...(vm.cycles ? cycleRows(vm.cycles, vm.wrapper.perCallMs) : []),
  ...(vm.datapath ? datapathRows(vm.datapath) : []),
  ...(vm.wan ? wanRows(vm.wan) : []),
  ...(vm.lan ? lanRows(vm.lan) : []),
  ...memoryRows(vm.cycles, vm.datapath),
  ...planningRows(planning),
];

const now = new Date();
const date = now.toISOString().slice(0, 10);
const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
const machine = {
  host: `${os.cpus().length} cores (${cpu}), ${Math.round(os.totalmem() / 1024 ** 3)} GiB, ${os.type()} ${os.release()}`,
  vm: `lab VM under qemu TCG (software emulation): ${JSON.stringify(vm.vm)}`,
};
const missed = rows.filter((r) => r.met === false);
const header =
  `zbm benchmarks (${mode}${vm.cycles ? `, ${vm.cycles.guests} guests × 2 disks` : ''}${vm.datapath ? `, ${vm.datapath.streamMiB} MiB stream` : ''}), ${now.toISOString()}\n\n` +
  `Host: ${machine.host}\nVM: ${machine.vm}\n` +
  `Logging wrapper cost per zfs/ssh call: ${vm.wrapper.perCallMs.toFixed(0)} ms (zfs call ${vm.wrapper.realMs.toFixed(0)} ms unwrapped)\n` +
  `Suite wall time in the VM: ${parts.map((p) => `${p.elapsedS} s`).join(' + ')}\n\n`;
const table = markdownTable(rows);
const footer = missed.length
  ? `\nTargets missed: ${missed.length} (${missed.map((r) => r.what).join('; ')})\n`
  : '\nEvery target met.\n';

await mkdir(outDir, { recursive: true });
const base = `${outDir}/${date}${mode === 'full' ? '' : `-${mode}`}`;
await writeFile(
  `${base}.json`,
  `${JSON.stringify({ date: now.toISOString(), mode, machine, rows, raw: { vm, planning } }, null, 2)}\n`,
);
await writeFile(`${base}.md`, header + table + footer);
process.stdout.write(header + table + footer);
process.stdout.write(`\nwritten: ${base}.json, ${base}.md\n`);
