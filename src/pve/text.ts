import { ZbmError } from '../errors.ts';

/** A PVE file zbm cannot read the way PVE would: refuse rather than guess which disks it means. */
export class PveFormatError extends ZbmError {
  override name = 'PveFormatError';
}

const SHOWN = 80;

/** The error for line n (1-based) of what; the line is quoted so that control characters stay visible. */
export function lineError(what: string, n: number, line: string, problem: string): PveFormatError {
  const shown = line.length > SHOWN ? `${line.slice(0, SHOWN)}…` : line;
  return new PveFormatError(`${what} line ${n}: ${problem}: ${JSON.stringify(shown)}`);
}

/** Lines without their terminators; files edited on Windows end lines with CRLF. */
export function splitLines(text: string): string[] {
  return text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
}

/** PVE's boolean spellings (JSONSchema `boolean`); null when value is none of them. */
export function parseBool(value: string | undefined): boolean | null {
  if (value === undefined) return null;
  const v = value.toLowerCase();
  if (v === '1' || v === 'yes' || v === 'on' || v === 'true') return true;
  if (v === '0' || v === 'no' || v === 'off' || v === 'false') return false;
  return null;
}

/** Compares keys like scsi2 and scsi10 by their numbers, so that scsi2 sorts first. */
export function compareNatural(a: string, b: string): number {
  const ta = a.match(/\d+|\D+/g) ?? [];
  const tb = b.match(/\d+|\D+/g) ?? [];
  for (let i = 0; i < Math.min(ta.length, tb.length); i++) {
    const x = ta[i] as string;
    const y = tb[i] as string;
    if (x === y) continue;
    if (/^\d/.test(x) && /^\d/.test(y)) {
      // Compare as numbers without Number's precision limit: shorter (after leading zeros) is smaller.
      const nx = x.replace(/^0+(?=\d)/, '');
      const ny = y.replace(/^0+(?=\d)/, '');
      if (nx.length !== ny.length) return nx.length - ny.length;
      if (nx !== ny) return nx < ny ? -1 : 1;
      continue;
    }
    return x < y ? -1 : 1;
  }
  if (ta.length !== tb.length) return ta.length - tb.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The parts of a PVE property string (`a=1,b="x,y"`), raw (quotes kept), split at commas outside double quotes. */
export function splitPropertyParts(value: string): string[] {
  const parts: string[] = [];
  let part = '';
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i] as string;
    if (ch === '\\' && quoted && i + 1 < value.length) {
      part += ch + value[++i];
    } else if (ch === '"') {
      quoted = !quoted;
      part += ch;
    } else if (ch === ',' && !quoted) {
      parts.push(part);
      part = '';
    } else {
      part += ch;
    }
  }
  parts.push(part);
  return parts;
}
