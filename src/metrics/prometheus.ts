/**
 * Metrics for node_exporter's textfile collector, in the Prometheus text exposition format
 * (version 0.0.4). The collector reads every `*.prom` file of its directory at each scrape, so a
 * file is replaced atomically (temporary file in the same directory, then rename) and never seen
 * half written.
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export type Labels = Readonly<Record<string, string>>;

export interface Sample {
  readonly name: string;
  readonly labels: Labels;
  readonly value: number;
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Collects gauges during a run; a command sets what it measured, the run adds its own. */
export class Metrics {
  readonly #help = new Map<string, string>();
  readonly #samples = new Map<string, Sample>();

  /** Sets one gauge (the last value for the same name and labels wins). */
  set(name: string, help: string, labels: Labels, value: number): void {
    if (!METRIC_NAME.test(name)) throw new Error(`invalid metric name ${JSON.stringify(name)}`);
    for (const l of Object.keys(labels)) {
      if (!LABEL_NAME.test(l) || l.startsWith('__'))
        throw new Error(`invalid label name ${JSON.stringify(l)}`);
    }
    this.#help.set(name, help);
    this.#samples.set(`${name}${renderLabels(labels)}`, { name, labels, value });
  }

  get samples(): readonly Sample[] {
    return [...this.#samples.values()];
  }

  help(name: string): string {
    return this.#help.get(name) ?? '';
  }
}

/** Label values escape backslash, double quote and line feed, as the text format requires. */
export function escapeLabelValue(v: string): string {
  return v.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n');
}

/** HELP text escapes backslash and line feed only. */
function escapeHelp(v: string): string {
  return v.replaceAll('\\', '\\\\').replaceAll('\n', '\\n');
}

function renderLabels(labels: Labels): string {
  const keys = Object.keys(labels).sort();
  if (keys.length === 0) return '';
  return `{${keys.map((k) => `${k}="${escapeLabelValue(labels[k] ?? '')}"`).join(',')}}`;
}

export function formatValue(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Number.POSITIVE_INFINITY) return '+Inf';
  if (n === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(n);
}

/** The file's text: per metric one HELP and one TYPE line, then its samples; all gauges. */
export function renderTextfile(m: Metrics): string {
  const byName = new Map<string, Sample[]>();
  for (const s of m.samples) byName.set(s.name, [...(byName.get(s.name) ?? []), s]);
  const out: string[] = [];
  for (const [name, samples] of byName) {
    out.push(`# HELP ${name} ${escapeHelp(m.help(name))}`, `# TYPE ${name} gauge`);
    for (const s of samples) out.push(`${name}${renderLabels(s.labels)} ${formatValue(s.value)}`);
  }
  return `${out.join('\n')}\n`;
}

/** The value of the first sample of a metric in a previous file's text (labels ignored), or null. */
export function previousValue(text: string, name: string): number | null {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== '{' && rest[0] !== ' ') continue;
    // The value follows the label set; label values may contain spaces, so cut after the last "}".
    const afterLabels = rest[0] === '{' ? rest.slice(rest.lastIndexOf('}') + 1) : rest;
    const value = Number(afterLabels.trim().split(/\s+/)[0]);
    if (Number.isFinite(value)) return value;
  }
  return null;
}

export async function readOptionalText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw err;
  }
}

/**
 * Replaces path atomically. The temporary name starts with a dot and does not end in `.prom`, so
 * the collector never reads it.
 */
export async function writeFileAtomicLocal(path: string, text: string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', 0o644);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
